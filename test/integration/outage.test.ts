import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import { Redis } from 'ioredis';
import { until } from '../helpers/wait.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { freePort } from '../helpers/redis.js';
import { basic, WebClient } from '../helpers/web-client.js';

// A Redis of the test's own (so it can be paused and killed) with AOF on, so that a restart keeps
// what was stored: Berth must answer 503 fast while it is gone, keep serving static users, and
// recover by itself without losing anything.

let dir: string;
let port: number;
let redis: ChildProcess | null = null;
let berth: RunningServer;
let pat: string;
let web: WebClient;
/** A PAT never presented to /auth: nothing about it is remembered, so verifying it needs Redis. */
const unseenPat = (name: string) => web.createPat(name);

async function startRedis(): Promise<void> {
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir], { stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    const c = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.ping();
      c.disconnect();
      return;
    } catch {
      c.disconnect();
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error('redis-server did not start');
}

async function stopRedis(): Promise<void> {
  const r = redis;
  if (!r || r.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    r.once('exit', () => resolve());
    r.kill('SIGKILL');
  });
}

// A new repository each time: an identical repeat could be answered from the reuse window.
let n = 0;
const token = (user: string, pw: string) => fetch(`${berth.url}/auth?service=registry&scope=repository:team/app-${n++}:pull`, { headers: { authorization: basic(user, pw) } });

/** Berth on the test's own Redis, with one static user `ops`. */
async function outageConfig() {
  return loadConfigText(
    `
token: { issuer: outage, services: [registry], generatedKeyDir: keys }
store: { type: redis, redis: { url: "redis://127.0.0.1:${port}", keyPrefix: "outage:" } }
secrets: { encryptionKey: "outage-test-encryption-key-0123456789abcdef" }
users:
  ops: { password: "${await hash('ops-pw', 4)}" }
acl:
  - { match: { account: "/.+/" }, actions: [pull] }
`,
    dir,
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-outage-'));
  port = await freePort();
  await startRedis();
  berth = await startServer(await outageConfig(), { port: 0, host: '127.0.0.1', log: createLogger('silent') });
  web = new WebClient(berth.url);
  expect((await web.signInLocal('ops', 'ops-pw')).status).toBe(200);
  pat = await web.createPat('outage');
  expect((await token('ops', pat)).status).toBe(200);
});

afterAll(async () => {
  if (redis?.exitCode === null) redis.kill('SIGCONT');
  await berth?.close();
  await stopRedis();
  rmSync(dir, { recursive: true, force: true });
});

describe('Redis outage', () => {
  it('answers 503 with the registry error JSON within a second while Redis hangs, and serves static users', async () => {
    const unseen = await unseenPat('outage-hang');
    expect((await token('ops', pat)).status).toBe(200);
    redis!.kill('SIGSTOP');
    try {
      // Verified a moment ago: remembered for token.reuseWindow, so it needs no Redis.
      expect((await token('ops', pat)).status).toBe(200);
      const started = Date.now();
      const res = await token('ops', unseen);
      const took = Date.now() - started;
      expect(res.status).toBe(503);
      expect(took).toBeLessThan(1000);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('UNAVAILABLE');

      const s = await token('ops', 'ops-pw');
      expect(s.status).toBe(200);
      const ready = await fetch(`${berth.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { checks: { store: string } }).checks.store).toBe('unreachable');
    } finally {
      redis!.kill('SIGCONT');
    }
    expect(await until(async () => (await token('ops', pat)).status === 200, 5000)).toBe(true);
  });

  it('starts while Redis is down, serves static users, and becomes ready when Redis comes up', async () => {
    await stopRedis();
    const config = await outageConfig();
    const started = Date.now();
    const second = await startServer(config, { port: 0, host: '127.0.0.1', log: createLogger('silent') });
    try {
      expect(Date.now() - started).toBeLessThan(5000);
      expect((await fetch(`${second.url}/readyz`)).status).toBe(503);
      const s = await fetch(`${second.url}/auth?service=registry&scope=repository:a/b:pull`, { headers: { authorization: basic('ops', 'ops-pw') } });
      expect(s.status).toBe(200);
      await startRedis();
      expect(await until(async () => (await fetch(`${second.url}/readyz`)).status === 200, 10_000)).toBe(true);
    } finally {
      await second.close();
    }
  });

  it('recovers without a restart after Redis is killed and comes back, with nothing lost', async () => {
    const unseen = await unseenPat('outage-kill');
    await stopRedis();
    const down = await token('ops', unseen);
    expect(down.status).toBe(503);
    expect((await token('ops', 'ops-pw')).status).toBe(200);
    await startRedis();
    expect(await until(async () => (await token('ops', unseen)).status === 200, 10_000)).toBe(true);
    const ready = await fetch(`${berth.url}/readyz`);
    expect(ready.status).toBe(200);
  });
});
