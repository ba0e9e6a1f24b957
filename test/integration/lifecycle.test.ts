import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import { until } from '../helpers/wait.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/redis.js';
import { basic } from '../helpers/web-client.js';

// The built CLI as an operator runs it: SIGHUP re-reads the file (a broken file changes nothing),
// SIGTERM lets a request in flight finish before the process exits 0.

const CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;
let dir: string;
let configPath: string;
let port: number;
let child: ChildProcess;
let output = '';
let slowHash: string;
let fastHash: string;

function config(users: string): string {
  return `
server: { addr: "127.0.0.1:${port}" }
token: { issuer: lifecycle, services: [registry], generatedKeyDir: keys }
log: { level: info }
users:
${users}
acl:
  - { match: { account: "/.+/" }, actions: [pull] }
`;
}

const token = (user: string, pw: string) => fetch(`http://127.0.0.1:${port}/auth?service=registry&scope=repository:a/b:pull`, { headers: { authorization: basic(user, pw) } });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-lifecycle-'));
  port = await freePort();
  configPath = join(dir, 'berth.yaml');
  fastHash = await hash('first-pw', 4);
  slowHash = await hash('slow-pw', 13);
  writeFileSync(configPath, config(`  first: { password: "${fastHash}" }\n  slow: { password: "${slowHash}" }`));
  child = spawn(process.execPath, [CLI, 'serve', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  expect(await until(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.status === 200, 15_000), output).toBe(true);
}, 30_000);

afterAll(() => {
  if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('signals', () => {
  it('SIGHUP picks up a changed file without dropping the listener', async () => {
    expect((await token('second', 'second-pw')).status).toBe(401);
    writeFileSync(configPath, config(`  first: { password: "${fastHash}" }\n  second: { password: "${await hash('second-pw', 4)}" }\n  slow: { password: "${slowHash}" }`));
    child.kill('SIGHUP');
    expect(await until(async () => (await token('second', 'second-pw')).status === 200, 5000), output).toBe(true);
    expect(output).toContain('configuration reloaded');
  });

  it('SIGHUP with a broken file keeps the running configuration and says why', async () => {
    writeFileSync(configPath, config(`  first: { password: "${fastHash}" }`).replace('acl:', 'acl:\n  - { match: { team: x }, actions: [pull] }'));
    child.kill('SIGHUP');
    expect(await until(async () => output.includes('configuration reload failed'), 5000)).toBe(true);
    expect(output).toContain('unknown key');
    expect((await token('second', 'second-pw')).status).toBe(200);
  });

  it('SIGTERM finishes the request in flight, then exits 0', async () => {
    const inFlight = token('slow', 'slow-pw');
    await new Promise((r) => setTimeout(r, 50));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect((await inFlight).status).toBe(200);
    expect(await exited).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });
});

describe('--watch-config', () => {
  it('reloads when the file is replaced, as editors and config management do', async () => {
    const wdir = mkdtempSync(join(tmpdir(), 'berth-watch-'));
    const wport = await freePort();
    const file = join(wdir, 'berth.yaml');
    const text = (users: string) => config(users).replace(`127.0.0.1:${port}`, `127.0.0.1:${wport}`);
    writeFileSync(file, text(`  first: { password: "${fastHash}" }`));
    const proc = spawn(process.execPath, [CLI, 'serve', '--config', file, '--watch-config'], { stdio: 'ignore' });
    try {
      const tokenW = (user: string, pw: string) => fetch(`http://127.0.0.1:${wport}/auth?service=registry&scope=repository:a/b:pull`, { headers: { authorization: basic(user, pw) } });
      expect(await until(async () => (await tokenW('first', 'first-pw').catch(() => null))?.status === 200, 15_000)).toBe(true);
      expect((await tokenW('third', 'third-pw')).status).toBe(401);
      // Write a new file and move it over the old one.
      writeFileSync(`${file}.tmp`, text(`  first: { password: "${fastHash}" }\n  third: { password: "${await hash('third-pw', 4)}" }`));
      renameSync(`${file}.tmp`, file);
      expect(await until(async () => (await tokenW('third', 'third-pw')).status === 200, 5000)).toBe(true);
    } finally {
      proc.kill('SIGKILL');
      rmSync(wdir, { recursive: true, force: true });
    }
  });
});
