import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeKeyPair } from '../../src/tokens/keygen.js';
import { cleanPrefix, freePort, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';
import { basic, WebClient } from '../helpers/web-client.js';

// Two real Berth processes (the built CLI) behind no load balancer at all, sharing one Redis: a
// client may land on either for any request.

const CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;
let dir: string;
let prefix: string;
const procs: ChildProcess[] = [];
const urls: string[] = [];

async function startReplica(configPath: string, port: number): Promise<string> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BERTH_TEST_ENC: 'replica-test-encryption-key-0123456789' } });
  procs.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`replica exited: ${out}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return url;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`replica did not become ready: ${out}`);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-replicas-'));
  prefix = uniqueKeyPrefix('replicas');
  const keys = await writeKeyPair(join(dir, 'keys'), 'ES256');
  const redis = await redisUrl();
  const pw = await hash('ops-pw', 4);
  for (const name of ['a', 'b']) {
    const port = await freePort();
    const path = join(dir, `${name}.yaml`);
    writeFileSync(
      path,
      `
server: { addr: "127.0.0.1:${port}", publicURL: "http://127.0.0.1:${port}" }
token: { issuer: replicas, services: [registry], key: ${keys.keyPath}, certificate: ${keys.certPath} }
store: { type: redis, redis: { url: "${redis}", keyPrefix: "${prefix}" } }
secrets: { encryptionKey: "\${env:BERTH_TEST_ENC}" }
log: { level: warn }
users:
  ops: { password: "${pw}", labels: { groups: [ops] } }
acl:
  - { match: { labels: { groups: ops } }, actions: ["*"] }
`,
    );
    urls.push(await startReplica(path, port));
  }
}, 60_000);

afterAll(async () => {
  await Promise.all(procs.map((p) => new Promise<void>((resolve) => (p.exitCode !== null ? resolve() : (p.once('exit', () => resolve()), p.kill('SIGTERM'))))));
  await cleanPrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
});

const token = (base: string, pat: string) => fetch(`${base}/auth?service=registry&scope=repository:x/y:pull`, { headers: { authorization: basic('ops', pat) } });

describe('two replicas sharing Redis', () => {
  it('shares sessions, PATs and revocation, and publishes the same signing key', async () => {
    const [a, b] = urls as [string, string];
    const onA = new WebClient(a);
    expect((await onA.signInLocal('ops', 'ops-pw')).status).toBe(200);
    // The same browser session, sent to the other replica.
    const page = await fetch(`${b}/tokens`, { headers: { cookie: onA.cookieHeader() }, redirect: 'manual' });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Signed in as ops');
    const pat = await onA.createPat('replicated');
    expect((await token(b, pat)).status).toBe(200);

    const listed = (await (await fetch(`${b}/api/v1/tokens`, { headers: { authorization: `Bearer ${pat}` } })).json()) as { tokens: { id: string; name: string }[] };
    const id = listed.tokens.find((t) => t.name === 'replicated')!.id;
    expect((await fetch(`${a}/api/v1/tokens/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${pat}` } })).status).toBe(204);
    const started = Date.now();
    let status = 0;
    while (Date.now() - started < 1000) {
      status = (await token(b, pat)).status;
      if (status === 401) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(401);
    expect(Date.now() - started).toBeLessThan(1000);

    const [ja, jb] = await Promise.all([a, b].map(async (u) => (await fetch(`${u}/.well-known/jwks.json`)).json()));
    expect(ja).toEqual(jb);
  });

  it('shares failed-authentication counts between replicas', async () => {
    const [a, b] = urls as [string, string];
    const wrong = (base: string, i: number) => fetch(`${base}/auth?service=registry`, { headers: { authorization: basic('ghost', `wrong-${i}`) } });
    for (let i = 0; i < 5; i++) expect((await wrong(a, i)).status).toBe(401);
    for (let i = 5; i < 10; i++) expect((await wrong(b, i)).status).toBe(401);
    expect((await wrong(a, 99)).status).toBe(429);
    expect((await wrong(b, 98)).status).toBe(429);
  });

  it('both replicas hold their revocation subscriptions: /readyz says so and Redis counts them', async () => {
    for (const u of urls) {
      const ready = await fetch(`${u}/readyz`);
      expect(ready.status).toBe(200);
      expect(((await ready.json()) as { checks: { pubsub: string } }).checks.pubsub).toBe('ok');
    }
    const r = new Redis(await redisUrl());
    try {
      const reply = (await r.call('PUBSUB', 'NUMSUB', ...['pat-revoked', 'robot-changed', 'account-changed'].map((c) => prefix + c))) as (string | number)[];
      // One subscriber connection per replica, whatever the number of channels or reloads.
      expect(reply.filter((_, i) => i % 2 === 1).map(Number)).toEqual([2, 2, 2]);
    } finally {
      r.disconnect();
    }
  });

  it('stops on SIGTERM after finishing, and exits 0', async () => {
    const p = procs[1]!;
    const exit = new Promise<number | null>((resolve) => p.once('exit', (code) => resolve(code)));
    p.kill('SIGTERM');
    expect(await exit).toBe(0);
  });
});
