import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { startServer } from '../../src/server.js';
import { redisReachable, RedisStore } from '../../src/store/redis.js';
import { freePort } from '../helpers/redis.js';
import { until } from '../helpers/wait.js';

// Issue 17 item 1: a missing subscription is never silent. Here Redis answers every command but
// refuses SUBSCRIBE (an ACL user without channel rights, as a hardened Redis may be set up): the
// store is reachable, yet revocations from other replicas would go unheard, so /readyz says
// not ready and why, and the log says it once.

let dir: string;
let port: number;
let redis: ChildProcess;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-readyz-'));
  port = await freePort();
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  expect(await until(() => redisReachable(`redis://127.0.0.1:${port}`), 10_000)).toBe(true);
  const admin = new Redis({ port, host: '127.0.0.1' });
  // Every key and command, no pub/sub channel.
  await admin.call('ACL', 'SETUSER', 'berth', 'on', '>berth-pw', '~*', '+@all', 'resetchannels');
  admin.disconnect();
});

afterAll(() => {
  redis?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('/readyz and the revocation subscriptions', () => {
  it('is not ready while SUBSCRIBE is refused, though the store answers, and says why', async () => {
    const warnings: string[] = [];
    const log = createLogger('silent');
    const store = new RedisStore({ url: `redis://berth:berth-pw@127.0.0.1:${port}`, keyPrefix: 'readyz:', log: { info: () => {}, warn: (o: object) => warnings.push((o as { reason: string }).reason) } });
    await store.open();
    const text = 'token: { issuer: readyz, services: [registry], generatedKeyDir: keys }\n';
    const server = await startServer(await loadConfigText(text, dir), { store, port: 0, host: '127.0.0.1', log });
    try {
      await store.set('reachable', 'yes', 10);
      expect(await until(async () => warnings.length > 0, 5000)).toBe(true);
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { checks: { store: string; pubsub: string } };
      expect(body.checks.store).toBe('ok');
      expect(body.checks.pubsub).toMatch(/SUBSCRIBE failed: NOPERM/);
      expect(warnings[0]).toMatch(/SUBSCRIBE failed: NOPERM/);
      // Retried every 2 s on the same connection, but logged once.
      await new Promise((r) => setTimeout(r, 4500));
      expect(warnings).toHaveLength(1);
    } finally {
      await server.close();
      await store.close();
    }
  });
});
