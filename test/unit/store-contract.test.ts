import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/store/memory.js';
import { redisReachable, RedisStore } from '../../src/store/redis.js';
import { StoreUnavailableError, type Store } from '../../src/store/store.js';
import { cleanPrefix, freePort, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';

/** Two handles on the same data: for Redis two connections, so races and pub/sub cross a socket. */
interface Pair {
  a: Store;
  b: Store;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The one contract every Store implementation must meet. */
function storeContract(name: string, open: () => Promise<Pair>) {
  describe(`${name} meets the Store contract`, () => {
    let pair: Pair;
    let n = 0;
    // Fresh key names per test so tests never see each other's data.
    const k = (label: string) => `${label}:${++n}`;

    beforeAll(async () => {
      pair = await open();
    });

    it('answers ping on both handles', async () => {
      await expect(pair.a.ping()).resolves.toBeUndefined();
      await expect(pair.b.ping()).resolves.toBeUndefined();
    });

    afterAll(async () => {
      await pair?.a.close();
      if (pair?.b !== pair?.a) await pair?.b.close();
    });

    it('get of a missing key is null; set then get returns the value', async () => {
      const key = k('plain');
      expect(await pair.a.get(key)).toBeNull();
      await pair.a.set(key, 'v1');
      expect(await pair.b.get(key)).toBe('v1');
      await pair.a.set(key, 'v2');
      expect(await pair.b.get(key)).toBe('v2');
    });

    it('values survive as exact strings (unicode, JSON, control characters, long)', async () => {
      const values = ['', ' ', 'naïve café – 日本語 – 🚀👩‍👩‍👧', JSON.stringify({ a: [1, 'x"y'], b: null }), 'line\nbreak\ttab\u0000nul', '0', '007', 'x'.repeat(100_000)];
      for (const [i, v] of values.entries()) {
        const key = k(`exact${i}`);
        await pair.a.set(key, v);
        const got = await pair.b.get(key);
        expect(got).toBe(v);
      }
    });

    it('unicode key names work', async () => {
      const key = k('ключ🔑');
      await pair.a.set(key, 'x');
      expect(await pair.b.get(key)).toBe('x');
    });

    it('a TTL expires the value', async () => {
      const key = k('ttl');
      const forever = k('forever');
      await pair.a.set(key, 'short', 2);
      await pair.a.set(forever, 'long');
      expect(await pair.a.get(key)).toBe('short');
      const ttl = await pair.a.ttl(key);
      expect(ttl).toBeGreaterThanOrEqual(0);
      expect(ttl).toBeLessThanOrEqual(2);
      expect(await pair.a.ttl(forever)).toBe(-1);
      expect(await pair.a.ttl(k('absent'))).toBe(-2);
      await sleep(2600);
      expect(await pair.b.get(key)).toBeNull();
      expect(await pair.b.ttl(key)).toBe(-2);
      expect(await pair.b.get(forever)).toBe('long');
    });

    it('set without a TTL clears an earlier TTL', async () => {
      const key = k('ttl-reset');
      await pair.a.set(key, 'a', 100);
      expect(await pair.a.ttl(key)).toBeGreaterThan(90);
      await pair.a.set(key, 'b');
      expect(await pair.a.ttl(key)).toBe(-1);
    });

    it('mget returns values in order, null for missing keys', async () => {
      const [x, y, z] = [k('m'), k('m'), k('m')];
      await pair.a.set(x, 'X');
      await pair.a.set(z, 'Z');
      expect(await pair.b.mget([x, y, z])).toEqual(['X', null, 'Z']);
      expect(await pair.b.mget([])).toEqual([]);
    });

    it('setIfAbsent sets only once, and again after the key expired', async () => {
      const key = k('nx');
      expect(await pair.a.setIfAbsent(key, 'first', 2)).toBe(true);
      expect(await pair.b.setIfAbsent(key, 'second', 2)).toBe(false);
      expect(await pair.a.get(key)).toBe('first');
      await sleep(2600);
      expect(await pair.b.setIfAbsent(key, 'third')).toBe(true);
      expect(await pair.a.get(key)).toBe('third');
      expect(await pair.a.ttl(key)).toBe(-1);
    });

    it('setIfAbsent under contention: exactly one of many wins', async () => {
      const key = k('nx-race');
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? pair.a : pair.b).setIfAbsent(key, `v${i}`, 30)));
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await pair.a.get(key)).toBe(`v${results.indexOf(true)}`);
    });

    it('del removes and says whether there was something', async () => {
      const key = k('del');
      await pair.a.set(key, 'x');
      expect(await pair.b.del(key)).toBe(true);
      expect(await pair.a.get(key)).toBeNull();
      expect(await pair.b.del(key)).toBe(false);
    });

    it('take returns the value once and deletes it', async () => {
      const key = k('take');
      await pair.a.set(key, 'once', 60);
      expect(await pair.b.take(key)).toBe('once');
      expect(await pair.a.take(key)).toBeNull();
      expect(await pair.a.get(key)).toBeNull();
    });

    it('take is single-use under concurrency: of two concurrent takes exactly one gets the value', async () => {
      for (let round = 0; round < 25; round++) {
        const key = k('take-race');
        await pair.a.set(key, `secret-${round}`, 60);
        const got = await Promise.all([pair.a.take(key), pair.b.take(key)]);
        expect(got.filter((v) => v !== null)).toEqual([`secret-${round}`]);
      }
    });

    it('take of an expired value is null', async () => {
      const key = k('take-expired');
      await pair.a.set(key, 'x', 1);
      await sleep(1600);
      expect(await pair.b.take(key)).toBeNull();
    });

    it('incr counts from 1 and its TTL starts at creation, not at each increment', async () => {
      const key = k('ctr');
      const created = Date.now();
      expect(await pair.a.incr(key, 3)).toBe(1);
      const first = await pair.a.ttl(key);
      expect(first).toBeGreaterThan(0);
      expect(first).toBeLessThanOrEqual(3);
      await sleep(1200);
      expect(await pair.b.incr(key, 3)).toBe(2);
      // Still counting down from the first increment (a reset would show 3 again).
      expect(await pair.b.ttl(key)).toBeLessThanOrEqual(2);
      expect(await pair.a.incr(key, 3)).toBe(3);
      await sleep(Math.max(0, created + 3600 - Date.now()));
      // Three seconds after creation the window is over and counting starts again.
      expect(await pair.a.incr(key, 3)).toBe(1);
    });

    it('concurrent incr loses no increment', async () => {
      const key = k('ctr-race');
      const values = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? pair.a : pair.b).incr(key, 60)));
      expect([...values].sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    });

    it('sets: add, members, remove; removing the last member removes the key', async () => {
      const key = k('set');
      expect(await pair.a.smembers(key)).toEqual([]);
      await pair.a.sadd(key, 'x');
      await pair.a.sadd(key, 'y');
      await pair.b.sadd(key, 'x');
      await pair.b.sadd(key, 'ünï');
      expect((await pair.b.smembers(key)).sort()).toEqual(['x', 'y', 'ünï'].sort());
      await pair.a.srem(key, 'y');
      await pair.a.srem(key, 'not-there');
      expect((await pair.a.smembers(key)).sort()).toEqual(['x', 'ünï'].sort());
      await pair.a.srem(key, 'x');
      await pair.a.srem(key, 'ünï');
      expect(await pair.b.smembers(key)).toEqual([]);
      expect(await pair.b.ttl(key)).toBe(-2);
    });

    it('publish reaches a subscriber on another handle, in order, exactly as sent', async () => {
      const channel = k('chan');
      const got: string[] = [];
      await pair.a.subscribe(channel, (m) => got.push(m));
      // Redis sets a subscription up asynchronously: probe until one probe arrives, then send.
      for (let i = 0; i < 50 && !got.includes('probe'); i++) {
        await pair.b.publish(channel, 'probe');
        await sleep(100);
      }
      expect(got).toContain('probe');
      const messages = ['one', 'twö 🚀', JSON.stringify({ revoke: 'abc' }), ''];
      for (const m of messages) await pair.b.publish(channel, m);
      for (let i = 0; i < 50 && got.filter((m) => m !== 'probe').length < messages.length; i++) await sleep(100);
      expect(got.filter((m) => m !== 'probe')).toEqual(messages);
    });

    it("a handle's own subscribers have its message before publish resolves", async () => {
      // The replica that revokes a PAT must refuse it at once, not when Redis echoes the message.
      // A fresh handle: its subscription connection is not even open when the publish goes out.
      const fresh = await open();
      try {
        const channel = k('chan');
        const got: string[] = [];
        await fresh.a.subscribe(channel, (m) => got.push(m));
        await fresh.a.publish(channel, 'revoked-here');
        expect(got).toContain('revoked-here');
      } finally {
        await fresh.a.close();
        await fresh.b.close();
      }
    });

    it('unsubscribe removes exactly that handler; the others keep hearing', async () => {
      const channel = k('chan');
      const kept: string[] = [];
      const dropped: string[] = [];
      await pair.a.subscribe(channel, (m) => kept.push(m));
      const unsubscribe = await pair.a.subscribe(channel, (m) => dropped.push(m));
      for (let i = 0; i < 50 && !kept.includes('probe'); i++) {
        await pair.b.publish(channel, 'probe');
        await sleep(100);
      }
      expect(dropped).toContain('probe');
      await unsubscribe();
      await unsubscribe(); // twice is harmless
      await pair.b.publish(channel, 'after');
      for (let i = 0; i < 50 && !kept.includes('after'); i++) await sleep(100);
      expect(kept).toContain('after');
      expect(dropped).not.toContain('after');
      expect(pair.a.subscriptionProblem()).toBeNull();
    });

    it('a publish on one channel does not reach another', async () => {
      const c1 = k('chan');
      const c2 = k('chan');
      const onC1: string[] = [];
      const onC2: string[] = [];
      await pair.a.subscribe(c1, (m) => onC1.push(m));
      await pair.a.subscribe(c2, (m) => onC2.push(m));
      for (let i = 0; i < 50 && onC1.length === 0; i++) {
        await pair.b.publish(c1, 'for-c1');
        await sleep(100);
      }
      expect(onC1[0]).toBe('for-c1');
      expect(onC2).toEqual([]);
    });
  });
}

storeContract('MemoryStore', async () => {
  const s = new MemoryStore();
  return { a: s, b: s };
});

const prefix = uniqueKeyPrefix('store-contract');
afterAll(async () => {
  await cleanPrefix(prefix);
});

storeContract('RedisStore', async () => {
  const url = await redisUrl();
  const a = new RedisStore({ url, keyPrefix: prefix });
  const b = new RedisStore({ url, keyPrefix: prefix });
  await a.open();
  await b.open();
  return { a, b };
});

describe('RedisStore isolation and failure', () => {
  it('keeps its keys under its prefix', async () => {
    const url = await redisUrl();
    const p2 = uniqueKeyPrefix('store-contract-other');
    const mine = new RedisStore({ url, keyPrefix: prefix });
    const other = new RedisStore({ url, keyPrefix: p2 });
    try {
      await mine.open();
      await other.open();
      await mine.set('shared-name', 'mine');
      expect(await other.get('shared-name')).toBeNull();
      await other.set('shared-name', 'other');
      expect(await mine.get('shared-name')).toBe('mine');
    } finally {
      await mine.close();
      await other.close();
      await cleanPrefix(p2);
    }
  });

  it('a subscription is reported missing while Redis is unreachable, and the log says why', async () => {
    const port = await freePort();
    const warnings: { reason: string }[] = [];
    const log = { info: () => {}, warn: (o: object) => warnings.push(o as { reason: string }) };
    const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, keyPrefix: prefix, log });
    try {
      expect(store.subscriptionProblem()).toBeNull(); // nothing to listen for yet
      await store.subscribe('revoked', () => {});
      expect(store.subscriptionProblem()).toMatch(/not connected|lost/);
      for (let i = 0; i < 50 && warnings.length === 0; i++) await sleep(100);
      expect(warnings[0]?.reason).toMatch(/subscriber connection lost: .*ECONNREFUSED/);
      expect(store.subscriptionProblem()).toMatch(/ECONNREFUSED/);
    } finally {
      await store.close();
    }
  });

  it('a subscriber whose server hangs is noticed (PING unanswered), reported, and subscribed again after', async () => {
    const port = await freePort();
    const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    const warnings: string[] = [];
    const log = { info: () => {}, warn: (o: object) => warnings.push((o as { reason: string }).reason) };
    const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, keyPrefix: prefix, log, subscriberHeartbeatMs: 300 });
    try {
      for (let i = 0; i < 50 && !(await redisReachable(`redis://127.0.0.1:${port}`)); i++) await sleep(100);
      await store.subscribe('revoked', () => {});
      for (let i = 0; i < 50 && store.subscriptionProblem() !== null; i++) await sleep(100);
      expect(store.subscriptionProblem()).toBeNull();
      server.kill('SIGSTOP');
      for (let i = 0; i < 100 && store.subscriptionProblem() === null; i++) await sleep(100);
      expect(store.subscriptionProblem()).toMatch(/no answer to PING/);
      expect(warnings.some((w) => /no answer to PING/.test(w))).toBe(true);
      server.kill('SIGCONT');
      for (let i = 0; i < 100 && store.subscriptionProblem() !== null; i++) await sleep(100);
      expect(store.subscriptionProblem()).toBeNull();
    } finally {
      server.kill('SIGCONT');
      server.kill('SIGKILL');
      await store.close();
    }
  }, 30_000);

  it('against an unreachable port, open and every command reject within 1 s with StoreUnavailableError', async () => {
    const port = await freePort();
    const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, keyPrefix: prefix });
    try {
      const timed = async (what: string, f: () => Promise<unknown>) => {
        const started = Date.now();
        const outcome = await Promise.race([
          f().then(
            () => 'resolved',
            (e: unknown) => e,
          ),
          sleep(1000).then(() => 'hung'),
        ]);
        expect(outcome, what).toBeInstanceOf(StoreUnavailableError);
        expect(Date.now() - started, what).toBeLessThan(1000);
      };
      await timed('open', () => store.open());
      await timed('get', () => store.get('x'));
      await timed('set', () => store.set('x', 'y', 10));
      await timed('take', () => store.take('x'));
      await timed('incr', () => store.incr('x', 10));
      await timed('mget', () => store.mget(['x', 'y']));
      await timed('smembers', () => store.smembers('x'));
      await timed('ping', () => store.ping());
    } finally {
      await store.close();
    }
  });
});
