import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisReachable, RedisStore } from '../../src/store/redis.js';
import { freePort } from '../helpers/redis.js';
import { until } from '../helpers/wait.js';

// The store's Sentinel and Cluster settings against real topologies started here from the
// redis-server binary: a master watched by a Sentinel, and a three-master cluster.

let dir: string;
const procs: ChildProcess[] = [];

function redis(args: string[]): ChildProcess {
  const p = spawn('redis-server', args, { stdio: 'ignore' });
  procs.push(p);
  return p;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-topologies-'));
});

afterAll(() => {
  for (const p of procs) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function roundTrip(store: RedisStore): Promise<void> {
  await store.open();
  await store.set('k', 'v', 30);
  expect(await store.get('k')).toBe('v');
  // Keys in different hash slots: a cluster must still answer a multi-key read.
  for (const k of ['a', 'b', 'c', 'd']) await store.set(k, k.toUpperCase(), 30);
  expect(await store.mget(['a', 'b', 'missing', 'c', 'd'])).toEqual(['A', 'B', null, 'C', 'D']);
  await store.sadd('set', 'x');
  expect(await store.smembers('set')).toEqual(['x']);
  expect(await store.incr('n', 30)).toBe(1);
  expect(await store.take('k')).toBe('v');
  expect(await store.get('k')).toBeNull();
  await store.close();
}

describe('Redis topologies', () => {
  it('finds the master through Sentinel', async () => {
    const master = await freePort();
    const sentinel = await freePort();
    redis(['--port', String(master), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
    expect(await until(() => redisReachable(`redis://127.0.0.1:${master}`), 10_000)).toBe(true);
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(conf, `port ${sentinel}\nbind 127.0.0.1\nsentinel monitor berthmaster 127.0.0.1 ${master} 1\n`);
    redis([conf, '--sentinel']);
    expect(await until(() => redisReachable(`redis://127.0.0.1:${sentinel}`), 10_000)).toBe(true);
    await roundTrip(new RedisStore({ keyPrefix: 'sentinel-test:', sentinels: [{ host: '127.0.0.1', port: sentinel }], name: 'berthmaster' }));
  });

  it('spreads keys over a cluster', async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    for (const port of ports) {
      const nodeDir = join(dir, `node-${port}`);
      spawnSync('mkdir', ['-p', nodeDir]);
      redis(['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(nodeDir, 'nodes.conf'), '--save', '', '--appendonly', 'no', '--dir', nodeDir]);
    }
    for (const port of ports) expect(await until(() => redisReachable(`redis://127.0.0.1:${port}`), 10_000)).toBe(true);
    const made = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-yes'], { encoding: 'utf8' });
    expect(made.status, made.stdout + made.stderr).toBe(0);
    // The cluster is usable once every slot is served.
    expect(
      await until(async () => {
        const info = spawnSync('redis-cli', ['-p', String(ports[0]), 'cluster', 'info'], { encoding: 'utf8' }).stdout;
        return info.includes('cluster_state:ok');
      }, 15_000),
    ).toBe(true);
    await roundTrip(new RedisStore({ keyPrefix: 'cluster-test:', cluster: ports.map((port) => ({ host: '127.0.0.1', port })) }));
  });
});
