import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { configWarnings } from '../../src/app/config-warnings.js';
import { ConfigError } from '../../src/config/errors.js';

// Settings that load but are probably wrong: check-config says so (exit 0), so does the server log.

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-warnings-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const load = (server: string) => loadConfigText(`server: ${server}\ntoken: { issuer: w, generatedKeyDir: keys }\nusers: { "": {} }\nacl: []\n`, dir);

describe('config warnings', () => {
  it('warn when publicURL and the listener disagree on the scheme', async () => {
    expect((configWarnings(await load('{ publicURL: "https://berth.example" }'))).join('\n')).toMatch(/publicURL is https but Berth listens over http/);
    expect(configWarnings(await load('{ publicURL: "http://berth.example" }'))).toEqual([]);
    // Behind a declared TLS-terminating proxy, https over a plain listener is the normal setup.
    expect(configWarnings(await load('{ publicURL: "https://berth.example", trustedProxies: [10.0.0.0/8] }'))).toEqual([]);
  });

  it('call trustProxy alone deprecated and point at trustedProxies', async () => {
    const w = configWarnings(await load('{ trustProxy: true, publicURL: "https://berth.example" }'));
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/trustProxy without server.trustedProxies is deprecated/);
  });

  it('refuse trustedProxies entries that are not CIDRs in standard form', async () => {
    const err = await load('{ trustedProxies: ["10.0.0.0/8", "010.0.0.0/8", "167772160", "10.0.0.0/40"] }').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const text = (err as ConfigError).problems.join('\n');
    expect(text).toMatch(/trustedProxies\[1\]/);
    expect(text).toMatch(/trustedProxies\[2\]/);
    expect(text).toMatch(/trustedProxies\[3\]/);
    expect(text).not.toMatch(/trustedProxies\[0\]/);
  });

  it('are printed by berth check-config, which still exits 0', () => {
    const file = join(dir, 'mixed.yml');
    writeFileSync(file, 'server: { publicURL: "https://berth.example" }\ntoken: { issuer: w, generatedKeyDir: keys }\nusers: { "": {} }\nacl: []\n');
    const main = resolve(import.meta.dirname, '../../dist/cli/main.js');
    const r = spawnSync(process.execPath, [main, 'check-config', file], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/: ok/);
    expect(r.stderr).toMatch(/warning: server.publicURL is https but Berth listens over http/);
  });
});
