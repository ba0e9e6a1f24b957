import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
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

  it('stops at once when the PAT is revoked, also on the other replica', async () => {
    expect((await tokenOf(b, pat)).status).toBe(200);
    const list = (await (await fetch(`${a.url}/api/v1/tokens`, { headers: { authorization: `Bearer ${pat}` } })).json()) as { tokens: { id: string }[] };
    expect((await fetch(`${a.url}/api/v1/tokens/${list.tokens[0]!.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${pat}` } })).status).toBe(204);
    const started = Date.now();
    let status = 200;
    while (status === 200 && Date.now() - started < 1000) {
      status = (await tokenOf(b, pat)).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe(401);
  });
});
