import { afterAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/store/memory.js';
import { RedisStore } from '../../src/store/redis.js';
import type { Store } from '../../src/store/store.js';
import { PatPolicyError, Pats } from '../../src/tokens/pats.js';
import { RefreshTokens } from '../../src/tokens/refresh-tokens.js';
import { cleanPrefix, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';

// `pats.maxPerUser` used to be list-then-insert: 12 parallel creations with a limit of 3 left 10
// live tokens. Parallel creations arrive on one replica (memory store) or on several (Redis).

const LIMIT = 3;
const policy = { defaultTTLSeconds: 3600, maxTTLSeconds: 7200, maxPerUser: LIMIT };
const prefixes: string[] = [];
const opened: Store[] = [];

afterAll(async () => {
  for (const s of opened) await s.close();
  for (const p of prefixes) await cleanPrefix(p);
});

/** Several Pats over the same data: one per replica. */
async function replicas(kind: 'memory' | 'redis', n: number): Promise<Pats[]> {
  if (kind === 'memory') {
    const store = new MemoryStore();
    opened.push(store);
    return Array.from({ length: n }, () => new Pats(store, policy, new RefreshTokens(store, 3600)));
  }
  const keyPrefix = uniqueKeyPrefix('pat-limit');
  prefixes.push(keyPrefix);
  const url = await redisUrl();
  const out: Pats[] = [];
  for (let i = 0; i < n; i++) {
    const store = new RedisStore({ url, keyPrefix });
    await store.open();
    opened.push(store);
    out.push(new Pats(store, policy, new RefreshTokens(store, 3600)));
  }
  return out;
}

for (const kind of ['memory', 'redis'] as const) {
  describe(`pats.maxPerUser on the ${kind} store`, () => {
    it('12 parallel creations with a limit of 3 leave exactly 3 live tokens; revoking one frees one slot', async () => {
      const pats = await replicas(kind, 3);
      const owner = 'oidc:alice';
      const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => pats[i % pats.length]!.create({ owner, username: 'alice', name: `t${i}` })));
      const made = results.filter((r) => r.status === 'fulfilled');
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(made).toHaveLength(LIMIT);
      expect(refused).toHaveLength(12 - LIMIT);
      for (const r of refused) {
        expect(r.reason).toBeInstanceOf(PatPolicyError);
        expect((r.reason as Error).message).toMatch(/at most 3 tokens per user/);
      }
      const live = await pats[0]!.list(owner);
      expect(live).toHaveLength(LIMIT);
      // Every refused creation left nothing usable behind.
      expect(await pats[0]!.countActive()).toBe(LIMIT);
      for (const r of made) expect(await pats[1]!.lookup((r as PromiseFulfilledResult<{ secret: string }>).value.secret)).not.toBeNull();

      // Revoke one: exactly one more fits, again under a parallel burst.
      expect(await pats[2]!.revoke(owner, live[0]!.id)).toBe(true);
      const again = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => pats[i % pats.length]!.create({ owner, username: 'alice', name: `u${i}` })));
      expect(again.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(await pats[0]!.list(owner)).toHaveLength(LIMIT);
      // Another user's tokens are counted separately.
      await expect(pats[0]!.create({ owner: 'oidc:bob', username: 'bob', name: 'b' })).resolves.toBeDefined();
    });

    it('saddIfBelow counts and adds in one step, and re-adding a member is not refused', async () => {
      const [pats] = await replicas(kind, 1);
      const store = (pats as unknown as { store: Store }).store;
      const key = `set-${Math.random()}`;
      const added = await Promise.all(Array.from({ length: 10 }, (_, i) => store.saddIfBelow(key, `m${i}`, 4)));
      expect(added.filter(Boolean)).toHaveLength(4);
      expect(await store.smembers(key)).toHaveLength(4);
      const member = (await store.smembers(key))[0]!;
      expect(await store.saddIfBelow(key, member, 4)).toBe(true);
      expect(await store.saddIfBelow(key, 'other', 4)).toBe(false);
      await store.srem(key, member);
      expect(await store.saddIfBelow(key, 'other', 4)).toBe(true);
      await store.del(key);
    });

    it('an expired token no longer counts', async () => {
      const [pats] = await replicas(kind, 1);
      const owner = 'oidc:carol';
      const t0 = Date.now();
      for (let i = 0; i < LIMIT; i++) await pats!.create({ owner, username: 'carol', name: `short${i}`, ttlSeconds: 1 }, t0);
      await expect(pats!.create({ owner, username: 'carol', name: 'x' })).rejects.toThrow(PatPolicyError);
      await new Promise((r) => setTimeout(r, 2100));
      await expect(pats!.create({ owner, username: 'carol', name: 'y' })).resolves.toBeDefined();
    });
  });
}
