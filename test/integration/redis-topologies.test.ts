import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { redisReachable, RedisStore, type RedisStoreOptions } from '../../src/store/redis.js';
import { PAT_PREFIX } from '../../src/tokens/pats.js';
import { mintSecret } from '../../src/tokens/secret-format.js';
import { freePort } from '../helpers/redis.js';
import { until } from '../helpers/wait.js';
import { basic, WebClient } from '../helpers/web-client.js';

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
    // Not freePort(): a port above 55535 has no valid cluster bus port (+10000), and redis-server would not start.
    const ports = [await clusterPort(), await clusterPort(), await clusterPort()];
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

// Issue 17: two Berth replicas on each topology. A revocation on replica A must be refused by
// replica B within a second (pub/sub, not the reuse window), before and after the master fails;
// PUBSUB NUMSUB shows both replicas' subscribers; while the master is down, requests that need
// it get 503 fast.

const CHANNELS = ['pat-revoked', 'robot-changed', 'account-changed'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Asynchronous: the Berth replicas run in this process, and a spawnSync would stall their answers.
const cli = (port: number, ...args: string[]) =>
  promisify(execFile)('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).then(
    (r) => r.stdout,
    () => '', // not up (yet, or any more)
  );

/** A port whose cluster bus port (+10000) is free and valid too. */
async function clusterPort(): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (p > 55000) continue;
    const busFree = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(p + 10000, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (busFree) return p;
  }
}

function redisNode(port: number, extra: string[] = []): ChildProcess {
  // --dir: a replica's full sync writes an RDB file, which must not land in the working tree.
  return redis(['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra]);
}

interface Replica {
  server: RunningServer;
  store: RedisStore;
  warnings: string[];
}

async function berthReplica(storeOpts: Omit<RedisStoreOptions, 'keyPrefix' | 'log'>, keyPrefix: string): Promise<Replica> {
  const warnings: string[] = [];
  const log = { info: () => {}, warn: (o: object) => warnings.push((o as { reason: string }).reason) };
  const store = new RedisStore({ ...storeOpts, keyPrefix, log });
  await store.open();
  const text = `
token: { issuer: topologies, services: [registry], generatedKeyDir: keys }
secrets: { encryptionKey: "topologies-test-encryption-key-0123456789" }
limits: { failuresPerIP: 100000, failuresPerAccount: 100000 }
users:
  ops: { password: "${await hash('ops-pw', 4)}" }
acl:
  - { match: { account: ops }, actions: [pull] }
`;
  const server = await startServer(await loadConfigText(text, dir), { store, port: 0, host: '127.0.0.1', log: createLogger('silent') });
  return { server, store, warnings };
}

async function closeReplicas(rs: Replica[]): Promise<void> {
  for (const r of rs) {
    await r.server.close();
    await r.store.close();
  }
}

/** Both replicas subscribed, and writes to keys in every slot range answered. */
async function settled(rs: Replica[]): Promise<boolean> {
  return until(async () => {
    if (rs.some((r) => r.store.subscriptionProblem() !== null)) return false;
    try {
      for (const r of rs) for (let i = 0; i < 12; i++) await r.store.set(`settle-${i}`, 'x', 30);
      return true;
    } catch {
      return false;
    }
  }, 30_000, 200);
}

/** Subscribers per revocation channel, summed over the nodes (a cluster node counts only its own). */
async function numsub(ports: number[], prefix: string): Promise<number[]> {
  const sums = CHANNELS.map(() => 0);
  for (const port of ports) {
    const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => {});
    try {
      await c.connect();
      const reply = (await c.call('PUBSUB', 'NUMSUB', ...CHANNELS.map((ch) => prefix + ch))) as (string | number)[];
      reply.filter((_, i) => i % 2 === 1).forEach((n, i) => (sums[i]! += Number(n)));
    } catch {
      /* a node that is down has no subscribers */
    } finally {
      c.disconnect();
    }
  }
  return sums;
}

const tokenOf = (r: Replica, pw: string) => fetch(`${r.server.url}/auth?service=registry&scope=repository:revoke/me:pull`, { headers: { authorization: basic('ops', pw) } });

/** A PAT made on A, granted (and so remembered) by B, revoked on A: ms until B first refuses it. */
async function revocationDelay(a: Replica, b: Replica): Promise<number> {
  const web = new WebClient(a.server.url);
  expect((await web.signInLocal('ops', 'ops-pw')).status).toBe(200);
  const name = `revoke-${Date.now()}`;
  const pat = await web.createPat(name);
  expect((await tokenOf(b, pat)).status).toBe(200);
  expect((await tokenOf(b, pat)).status).toBe(200); // from B's reuse cache
  const listed = (await (await fetch(`${a.server.url}/api/v1/tokens`, { headers: { authorization: `Bearer ${pat}` } })).json()) as { tokens: { id: string; name: string }[] };
  const id = listed.tokens.find((t) => t.name === name)!.id;
  expect((await fetch(`${a.server.url}/api/v1/tokens/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${pat}` } })).status).toBe(204);
  const revokedAt = Date.now();
  for (;;) {
    const status = (await tokenOf(b, pat)).status;
    if (status === 401) return Date.now() - revokedAt;
    expect(status).toBe(200);
    if (Date.now() - revokedAt > 15_000) throw new Error('B never refused the revoked PAT');
    await sleep(10);
  }
}

/**
 * Kills the master, then keeps asking B with never-seen PATs (each needs a store read) until
 * `recovered()`; returns the latencies of the 503 answers among them, and of all answers (a
 * request held back until the failover is over is as bad as a slow 503).
 */
async function outage(b: Replica, kill: () => void, recovered: () => Promise<boolean>): Promise<{ l503: number[]; all: number[]; ms: number }> {
  const latencies: number[] = [];
  const all: number[] = [];
  const started = Date.now();
  kill();
  let done = false;
  // Watched beside the requests, so that checking the topology does not slow the probing.
  const watch = (async () => {
    while (!done && Date.now() - started < 30_000) {
      if (await recovered()) done = true;
      else await sleep(100);
    }
  })();
  while (!done && Date.now() - started < 30_000) {
    const t = Date.now();
    const res = await fetch(`${b.server.url}/auth?service=registry&scope=repository:outage/x:pull`, { headers: { authorization: basic('ops', mintSecret(PAT_PREFIX)) } });
    const took = Date.now() - t;
    all.push(took);
    if (res.status === 503) {
      latencies.push(took);
      expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('UNAVAILABLE');
    } else {
      expect(res.status).toBe(401);
      await res.arrayBuffer();
    }
  }
  await watch;
  expect(done, 'the topology did not recover').toBe(true);
  return { l503: latencies, all, ms: Date.now() - started };
}

const measured: string[] = [];
function report(topology: string, before: number, after: number, { l503, all, ms }: { l503: number[]; all: number[]; ms: number }): void {
  const sorted = [...l503].sort((x, y) => x - y);
  const slowest = Math.max(...all);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  const line = `${topology}: revocation on A -> refusal on B ${before} ms before failover, ${after} ms after; 503s during the outage: n=${sorted.length}, median ${at(0.5)} ms, p95 ${at(0.95)} ms, max ${sorted.at(-1)} ms; slowest of the ${all.length} answers in the ${ms} ms outage ${slowest} ms`;
  measured.push(line);
  console.log(line);
  expect(before).toBeLessThan(1000);
  expect(after).toBeLessThan(1000);
  expect(sorted.length, 'no request met the outage').toBeGreaterThan(0);
  expect(at(0.95)).toBeLessThan(500);
  expect(sorted.at(-1)!).toBeLessThan(1000);
  expect(slowest).toBeLessThan(1000);
}

afterAll(() => {
  if (measured.length) console.log(`measured:\n${measured.join('\n')}`);
});

describe('two Berth replicas on each topology: revocations cross, outages answer fast', () => {
  it('standalone Redis, restarted in the middle', async () => {
    const port = await freePort();
    let server = redisNode(port);
    expect(await until(() => redisReachable(`redis://127.0.0.1:${port}`), 10_000)).toBe(true);
    const prefix = 'standalone-pair:';
    const rs = [await berthReplica({ url: `redis://127.0.0.1:${port}` }, prefix), await berthReplica({ url: `redis://127.0.0.1:${port}` }, prefix)];
    const [a, b] = rs as [Replica, Replica];
    try {
      expect(await settled(rs)).toBe(true);
      expect(await numsub([port], prefix)).toEqual([2, 2, 2]);
      const before = await revocationDelay(a, b);
      const downSince = Date.now();
      const l503 = await outage(
        b,
        () => server.kill('SIGKILL'),
        async () => {
          // Down for two seconds, as a restart would be; /readyz says so meanwhile.
          if (Date.now() - downSince < 2000) {
            const ready = await fetch(`${b.server.url}/readyz`);
            expect(ready.status).toBe(503);
            return false;
          }
          if (server.exitCode !== null || server.signalCode !== null) server = redisNode(port);
          return redisReachable(`redis://127.0.0.1:${port}`);
        },
      );
      expect(b.warnings.some((w) => /subscriber connection lost/.test(w))).toBe(true);
      expect(await settled(rs)).toBe(true);
      expect(await numsub([port], prefix)).toEqual([2, 2, 2]);
      const after = await revocationDelay(a, b);
      report('standalone', before, after, l503);
    } finally {
      await closeReplicas(rs);
    }
  }, 90_000);

  it('Sentinel, with a failover to the replica', async () => {
    const [master, replica, sentinel] = [await freePort(), await freePort(), await freePort()];
    const masterProc = redisNode(master);
    redisNode(replica, ['--replicaof', '127.0.0.1', String(master)]);
    for (const p of [master, replica]) expect(await until(() => redisReachable(`redis://127.0.0.1:${p}`), 10_000)).toBe(true);
    expect(await until(async () => (await cli(replica, 'info', 'replication')).includes('master_link_status:up'), 10_000)).toBe(true);
    const conf = join(dir, 'sentinel-failover.conf');
    writeFileSync(conf, `port ${sentinel}\nbind 127.0.0.1\nsentinel monitor pairmaster 127.0.0.1 ${master} 1\nsentinel down-after-milliseconds pairmaster 1000\nsentinel failover-timeout pairmaster 5000\n`);
    redis([conf, '--sentinel']);
    expect(await until(async () => (await cli(sentinel, 'sentinel', 'replicas', 'pairmaster')).includes(String(replica)), 15_000)).toBe(true);
    const prefix = 'sentinel-pair:';
    const opts = { sentinels: [{ host: '127.0.0.1', port: sentinel }], name: 'pairmaster' };
    const rs = [await berthReplica(opts, prefix), await berthReplica(opts, prefix)];
    const [a, b] = rs as [Replica, Replica];
    try {
      expect(await settled(rs)).toBe(true);
      expect(await numsub([master, replica], prefix)).toEqual([2, 2, 2]);
      const before = await revocationDelay(a, b);
      const l503 = await outage(
        b,
        () => masterProc.kill('SIGKILL'),
        async () => (await cli(sentinel, 'sentinel', 'get-master-addr-by-name', 'pairmaster')).includes(String(replica)),
      );
      expect(b.warnings.some((w) => /subscriber connection lost/.test(w))).toBe(true);
      expect(await settled(rs)).toBe(true);
      expect(await numsub([replica], prefix)).toEqual([2, 2, 2]);
      const after = await revocationDelay(a, b);
      report('sentinel', before, after, l503);
    } finally {
      await closeReplicas(rs);
    }
  }, 120_000);

  it('Cluster of three masters and three replicas, with a master failover', async () => {
    const ports: number[] = [];
    for (let i = 0; i < 6; i++) ports.push(await clusterPort());
    const procsByPort = new Map<number, ChildProcess>();
    for (const port of ports) {
      const nodeDir = join(dir, `pair-node-${port}`);
      mkdirSync(nodeDir, { recursive: true });
      procsByPort.set(port, redisNode(port, ['--cluster-enabled', 'yes', '--cluster-config-file', join(nodeDir, 'nodes.conf'), '--cluster-node-timeout', '1000', '--cluster-replica-validity-factor', '0', '--dir', nodeDir]));
    }
    for (const port of ports) expect(await until(() => redisReachable(`redis://127.0.0.1:${port}`), 10_000)).toBe(true);
    const made = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], { encoding: 'utf8' });
    expect(made.status, made.stdout + made.stderr).toBe(0);
    const nodes = async (port: number) => (await cli(port, 'cluster', 'nodes')).trim().split('\n').map((l) => l.split(' '));
    // Every slot served and every replica in sync with its master.
    expect(
      await until(async () => {
        for (const p of ports) if (!(await cli(p, 'cluster', 'info')).includes('cluster_state:ok') || (await cli(p, 'info', 'replication')).includes('master_link_status:down')) return false;
        return (await nodes(ports[0]!)).filter((n) => n[2]!.includes('slave') && n[7] === 'connected').length === 3;
      }, 30_000),
    ).toBe(true);
    const prefix = 'cluster-pair:';
    const opts = { cluster: ports.slice(0, 3).map((port) => ({ host: '127.0.0.1', port })) };
    const rs = [await berthReplica(opts, prefix), await berthReplica(opts, prefix)];
    const [a, b] = rs as [Replica, Replica];
    try {
      expect(await settled(rs)).toBe(true);
      expect(await numsub(ports, prefix)).toEqual([2, 2, 2]);
      const before = await revocationDelay(a, b);
      // A master goes down: one that holds a replica's subscriber connection, so that the
      // subscriber has to move to another node.
      const portOf = (n: string[]) => Number(n[1]!.split(':')[1]!.split('@')[0]);
      const masters = (await nodes(ports[0]!)).filter((n) => n[2]!.includes('master') && n[8]).map(portOf);
      const withSubscriber: number[] = [];
      for (const m of masters) if ((await numsub([m], prefix))[0]! > 0) withSubscriber.push(m);
      expect(withSubscriber.length, 'no subscriber sits on a master').toBeGreaterThan(0);
      const victim = withSubscriber[0]!;
      const survivor = ports.find((p) => p !== victim)!;
      const l503 = await outage(
        b,
        () => procsByPort.get(victim)!.kill('SIGKILL'),
        async () => {
          if (!(await cli(survivor, 'cluster', 'info')).includes('cluster_state:ok')) return false;
          const seen = await nodes(survivor);
          return seen.some((n) => n[1]!.startsWith(`127.0.0.1:${victim}@`) && n[2]!.includes('fail') && !n[2]!.includes('fail?')) && seen.filter((n) => n[2]!.includes('master') && !n[2]!.includes('fail') && n[8]).length === 3;
        },
      );
      // The subscriber(s) on the victim said so, and moved: the survivors count both replicas again.
      expect([...a.warnings, ...b.warnings].some((w) => /subscriber connection lost/.test(w))).toBe(true);
      expect(await settled(rs)).toBe(true);
      expect(await numsub(ports.filter((p) => p !== victim), prefix)).toEqual([2, 2, 2]);
      const after = await revocationDelay(a, b);
      report('cluster', before, after, l503);
    } finally {
      await closeReplicas(rs);
    }
  }, 120_000);
});
