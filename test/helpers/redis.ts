import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { redisReachable } from '../../src/store/redis.js';

let started: ChildProcess | null = null;
let resolvedUrl: Promise<string> | null = null;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}


/**
 * A Redis URL for tests: REDIS_URL (default redis://127.0.0.1:6379) when it answers, else a
 * redis-server started on a free loopback port. Tests isolate themselves with uniqueKeyPrefix().
 */
export function redisUrl(): Promise<string> {
  resolvedUrl ??= (async () => {
    const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    if (await redisReachable(url)) return url;
    if (spawnSync('redis-server', ['--version']).status !== 0) throw new Error(`Redis is not reachable at ${url} and redis-server is not installed: apt-get install redis-server, or set REDIS_URL`);
    const port = await freePort();
    started = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    process.once('exit', () => started?.kill());
    const own = `redis://127.0.0.1:${port}`;
    for (let i = 0; i < 50; i++) {
      if (await redisReachable(own)) return own;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('started redis-server but it did not answer');
  })();
  return resolvedUrl;
}

export function uniqueKeyPrefix(label = 't'): string {
  return `berth-test:${label}:${randomBytes(6).toString('hex')}:`;
}

/** Deletes every key under a prefix (tests call it in afterAll). */
export async function cleanPrefix(prefix: string): Promise<void> {
  const c = new Redis(await redisUrl());
  try {
    let cursor = '0';
    do {
      const [next, keys] = await c.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await c.del(...keys);
    } while (cursor !== '0');
  } finally {
    c.disconnect();
  }
}
