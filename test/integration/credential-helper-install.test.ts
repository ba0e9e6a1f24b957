import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/build.js';

// The helper installed the way docs/credential-helper.md says: `npm run build`, then
// dist/credential-helper/main.js linked onto PATH as docker-credential-berth (what `npm install -g`
// does too), and docker finding it by that name.

const BINS = ['dist/credential-helper/main.js', 'dist/cli/main.js'];
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'berth-helper-install-'));
  // tsc writes new files 0644 and keeps an existing file's mode: start from non-executable files so
  // that only the build step can make them executable.
  for (const bin of BINS) if (existsSync(join(ROOT, bin))) chmodSync(join(ROOT, bin), 0o644);
  await promisify(execFile)('npm', ['run', 'build'], { cwd: ROOT, timeout: 280_000 });
}, 300_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('npm run build', () => {
  it('leaves both bins executable, with a shebang', () => {
    for (const bin of BINS) {
      const path = join(ROOT, bin);
      expect(readFileSync(path, 'utf8').split('\n')[0], bin).toBe('#!/usr/bin/env node');
      expect(statSync(path).mode & 0o777, bin).toBe(0o755);
    }
  });

  it('docker-credential-berth runs from PATH by that name: version, and a hint for a registry it does not serve', () => {
    const bin = join(work, 'bin');
    mkdirSync(bin);
    symlinkSync(join(ROOT, 'dist/credential-helper/main.js'), join(bin, 'docker-credential-berth'));
    const home = mkdtempSync(join(work, 'home-'));
    // Only the link and node itself on PATH (the shebang runs `env node`).
    const env = { PATH: `${bin}:${dirname(process.execPath)}:/usr/bin:/bin`, HOME: home, XDG_CONFIG_HOME: join(home, 'config') };
    const version = spawnSync('docker-credential-berth', ['version'], { env, encoding: 'utf8' });
    expect(version.error).toBeUndefined();
    expect({ status: version.status, stdout: version.stdout }).toEqual({ status: 0, stdout: 'docker-credential-berth (berth) 0.1.0\n' });

    const get = spawnSync('docker-credential-berth', ['get'], { env, input: 'registry.example.com\n', encoding: 'utf8' });
    expect({ status: get.status, stdout: get.stdout }).toEqual({ status: 1, stdout: 'credentials not found in native keychain\n' });
    expect(get.stderr).toBe(`docker-credential-berth: no Berth is configured for registry.example.com; add it to "registries" in ${join(home, 'config', 'berth', 'helper.json')} (or set BERTH_URL and BERTH_REGISTRIES)\n`);
  });
});
