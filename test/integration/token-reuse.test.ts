import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { cleanPrefix, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';
import { basic, WebClient } from '../helpers/web-client.js';

// Identical repeated GETs (a docker push asks several times) get the same token back; nothing that
// changes the answer may be hidden by that: revocation on another replica, another scope, another
// credential.

let dir: string;
let prefix: string;
let a: RunningServer;
let b: RunningServer;
let pat: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-reuse-'));
  prefix = uniqueKeyPrefix('reuse');
  const text = `
token: { issuer: reuse, services: [registry], generatedKeyDir: keys }
store: { type: redis, redis: { url: "${await redisUrl()}", keyPrefix: "${prefix}" } }
secrets: { encryptionKey: "reuse-test-encryption-key-0123456789abcdef" }
users:
  ops: { password: "${await hash('ops-pw', 4)}" }
acl:
  - { match: { account: ops }, actions: [pull] }
`;
  a = await startServer(await loadConfigText(text, dir), { port: 0, host: '127.0.0.1', log: createLogger('silent') });
  b = await startServer(await loadConfigText(text, dir), { port: 0, host: '127.0.0.1', log: createLogger('silent') });
  const web = new WebClient(a.url);
  await web.signInLocal('ops', 'ops-pw');
  pat = await web.createPat('reuse');
});

afterAll(async () => {
  await a.close();
  await b.close();
  await cleanPrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
});

async function tokenOf(server: RunningServer, pw: string, scope = 'repository:x/y:pull'): Promise<{ status: number; token?: string }> {
  const res = await fetch(`${server.url}/auth?service=registry&scope=${scope}`, { headers: { authorization: basic('ops', pw) } });
  const body = (await res.json()) as { token?: string };
  return { status: res.status, ...(body.token ? { token: body.token } : {}) };
}

describe('reusing answers to identical requests', () => {
  it('answers an identical repeat with the same token, and anything else with a new one', async () => {
    const first = await tokenOf(b, pat);
    const again = await tokenOf(b, pat);
    expect(again.token).toBe(first.token);
    expect((await tokenOf(b, pat, 'repository:x/z:pull')).token).not.toBe(first.token);
    expect((await tokenOf(b, 'ops-pw')).token).not.toBe(first.token);
  });

  it('answers a repeat with the headers and fields of a fresh answer, and counts it', async () => {
    const counted = async () => {
      const text = await (await fetch(`${a.url}/metrics`)).text();
      const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
      return { granted: value(/^berth_token_requests_total\{outcome="granted",kind="pat"\} (\d+)$/m), reused: value(/^berth_token_reused_total\{kind="pat"\} (\d+)$/m) };
    };
    const before = await counted();
    const ask = () => fetch(`${a.url}/auth?service=registry&scope=repository:shape/check:pull`, { headers: { authorization: basic('ops', pat) } });
    const fresh = await ask();
    const repeat = await ask();
    for (const h of ['content-type', 'cache-control']) expect(repeat.headers.get(h)).toBe(fresh.headers.get(h));
    expect(repeat.headers.get('cache-control')).toBe('no-store');
    const f = (await fresh.json()) as Record<string, unknown>;
    const r = (await repeat.json()) as Record<string, unknown>;
    expect(Object.keys(r)).toEqual(Object.keys(f));
    expect(r.token).toBe(f.token);
    expect(r.access_token).toBe(r.token);
    expect(r.issued_at).toBe(f.issued_at);
    expect(r.expires_in as number).toBeLessThanOrEqual(f.expires_in as number);
    expect(r.expires_in as number).toBeGreaterThan((f.expires_in as number) - 5);
    expect(await counted()).toEqual({ granted: before.granted + 2, reused: before.reused + 1 });
  });

  it('never answers a POST or an offline request from the cache', async () => {
    const form = () => new URLSearchParams({ grant_type: 'password', service: 'registry', scope: 'repository:x/y:pull', client_id: 'test', username: 'ops', password: pat });
    const one = (await (await fetch(`${a.url}/auth`, { method: 'POST', body: form() })).json()) as { access_token: string };
    const two = (await (await fetch(`${a.url}/auth`, { method: 'POST', body: form() })).json()) as { access_token: string };
    expect(two.access_token).not.toBe(one.access_token);
    const offline = () => fetch(`${a.url}/auth?service=registry&scope=repository:x/y:pull&offline_token=true&client_id=test`, { headers: { authorization: basic('ops', pat) } }).then((r) => r.json() as Promise<{ token: string; refresh_token: string }>);
    const o1 = await offline();
    const o2 = await offline();
    expect(o1.refresh_token).toBeTruthy();
    expect(o2.refresh_token).not.toBe(o1.refresh_token);
    expect(o2.token).not.toBe(o1.token);
  });

  it('stops at once when the PAT is revoked, also on the other replica', async () => {
    expect((await tokenOf(b, pat)).status).toBe(200);
    const list = (await (await fetch(`${a.url}/api/v1/tokens`, { headers: { authorization: `Bearer ${pat}` } })).json()) as { tokens: { id: string }[] };
    expect((await fetch(`${a.url}/api/v1/tokens/${list.tokens[0]!.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${pat}` } })).status).toBe(204);
    // Both what b answers from its reuse cache (the same request again) and what it verified
    // moments ago (the same PAT with a new scope) must stop within a second.
    const started = Date.now();
    let repeat = 200;
    let fresh = 200;
    for (let i = 0; (repeat === 200 || fresh === 200) && Date.now() - started < 1000; i++) {
      repeat = (await tokenOf(b, pat)).status;
      fresh = (await tokenOf(b, pat, `repository:x/new-${i}:pull`)).status;
      if (repeat === 200 || fresh === 200) await new Promise((r) => setTimeout(r, 20));
    }
    expect(repeat).toBe(401);
    expect(fresh).toBe(401);
  });
});
