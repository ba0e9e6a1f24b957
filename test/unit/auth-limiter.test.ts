import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { AuthLimiter, RateLimitedError, type AuthLimitOptions } from '../../src/security/auth-limiter.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { MemoryStore } from '../../src/store/memory.js';
import { PAT_PREFIX } from '../../src/tokens/pats.js';
import { mintSecret } from '../../src/tokens/secret-format.js';
import { RedisStore } from '../../src/store/redis.js';
import type { Store } from '../../src/store/store.js';
import { cleanPrefix, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';

// Five wrong passwords from any address used to lock a static user (a CI account) out everywhere.
// Failures now count per (account, address), with a slower account-wide limit and the per-address
// limit as before.

const ATTACKER = '203.0.113.66';
const OWNER = '198.51.100.7';
const prefixes: string[] = [];
const stores: Store[] = [];

afterAll(async () => {
  for (const s of stores) await s.close();
  for (const p of prefixes) await cleanPrefix(p);
});

async function limiterOn(kind: 'memory' | 'redis', opts: Partial<AuthLimitOptions> = {}): Promise<AuthLimiter> {
  const o: AuthLimitOptions = { failuresPerAccount: 5, failuresPerAccountTotal: 20, failuresPerIP: 50, windowSeconds: 60, lockoutSeconds: 60, ...opts };
  if (kind === 'memory') {
    const store = new MemoryStore();
    stores.push(store);
    return new AuthLimiter(store, null, o, Buffer.alloc(32, 1));
  }
  const keyPrefix = uniqueKeyPrefix('auth-limiter');
  prefixes.push(keyPrefix);
  const store = new RedisStore({ url: await redisUrl(), keyPrefix });
  await store.open();
  stores.push(store);
  return new AuthLimiter(store, store.rawClient, o, Buffer.alloc(32, 1));
}

/** Whether check() refuses, and with what wait. */
async function locked(l: AuthLimiter, account: string, ip: string): Promise<number> {
  try {
    await l.check(account, ip);
    return 0;
  } catch (e) {
    if (e instanceof RateLimitedError) return e.retryAfterSeconds;
    throw e;
  }
}

for (const kind of ['memory', 'redis'] as const) {
  describe(`failed-password limits on the ${kind} store`, () => {
    it('an attacker failing from one address locks only that address out of the account', async () => {
      const l = await limiterOn(kind);
      for (let i = 0; i < 5; i++) await l.failure('ci', `guess-${i}`, ATTACKER);
      expect(await locked(l, 'ci', ATTACKER)).toBeGreaterThan(0);
      // The owner, from elsewhere, is not held up.
      expect(await locked(l, 'ci', OWNER)).toBe(0);
      // Guessing on regardless changes nothing for the owner: the attacker's address is refused before counting.
      for (let i = 0; i < 50; i++) await l.failure('ci', `more-${i}`, ATTACKER);
      expect(await locked(l, 'ci', OWNER)).toBe(0);
    });

    it('failures spread over many addresses still meet the slower account-wide limit', async () => {
      const l = await limiterOn(kind);
      // 4 addresses × 4 failures: each pair below 5, 16 in all, below 20.
      for (let a = 0; a < 4; a++) for (let i = 0; i < 4; i++) await l.failure('alice', `g${a}-${i}`, `192.0.2.${a + 1}`);
      expect(await locked(l, 'alice', OWNER)).toBe(0);
      for (let i = 0; i < 4; i++) await l.failure('alice', `h${i}`, '192.0.2.9');
      expect(await locked(l, 'alice', OWNER)).toBeGreaterThan(0);
      expect(await locked(l, 'bob', OWNER)).toBe(0);
    });

    it('an address failing against many accounts is locked out of all of them, as before', async () => {
      const l = await limiterOn(kind, { failuresPerIP: 8 });
      for (let i = 0; i < 8; i++) await l.failure(`user${i}`, 'x', ATTACKER);
      expect(await locked(l, 'someone-else', ATTACKER)).toBeGreaterThan(0);
      expect(await locked(l, 'someone-else', OWNER)).toBe(0);
      expect(await locked(l, 'user1', OWNER)).toBe(0);
    });

    it('one IPv6 /64 is one address: rotating through it gains nothing', async () => {
      const l = await limiterOn(kind);
      for (let i = 0; i < 5; i++) await l.failure('ci', `v6-${i}`, `2001:db8:1:2::${i + 1}`);
      expect(await locked(l, 'ci', '2001:db8:1:2::ffff')).toBeGreaterThan(0);
      expect(await locked(l, 'ci', '2001:db8:1:3::1')).toBe(0);
    });

    it('without failuresPerAccountTotal the account-wide limit is ten times the per-address one', async () => {
      const l = await limiterOn(kind, { failuresPerAccount: 2, failuresPerAccountTotal: undefined });
      for (let a = 0; a < 19; a++) await l.failure('dave', `d${a}`, `192.0.2.${a + 1}`);
      expect(await locked(l, 'dave', OWNER)).toBe(0);
      await l.failure('dave', 'd-last', '192.0.2.100');
      expect(await locked(l, 'dave', OWNER)).toBeGreaterThan(0);
    });
  });
}

describe('the token endpoint', () => {
  let dir: string;
  const servers: RunningServer[] = [];
  let ciHash: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-lockout-'));
    ciHash = await hash('ci-secret', 4);
  });

  afterAll(async () => {
    for (const s of servers) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const kind of ['memory', 'redis'] as const) {
    it(`on the ${kind} store: wrong passwords from one address do not stop the CI account elsewhere`, async () => {
      let store = '';
      if (kind === 'redis') {
        const p = uniqueKeyPrefix('lockout-http');
        prefixes.push(p);
        store = `store: { type: redis, redis: { url: "${await redisUrl()}", keyPrefix: "${p}" } }\nsecrets: { encryptionKey: "lockout-test-encryption-key-0123456789abcdef" }`;
      }
      const text = `
server: { trustProxy: true }
token: { issuer: lockout, generatedKeyDir: keys-${kind} }
${store}
users:
  ci: { password: "${ciHash}" }
acl:
  - { match: { account: ci }, actions: [pull] }
limits: { failuresPerAccount: 5 }
`;
      const server = await startServer(await loadConfigText(text, dir), { port: 0, host: '127.0.0.1', log: createLogger('silent') });
      servers.push(server);
      const ask = (password: string, from: string) =>
        fetch(`${server.url}/auth?service=registry&scope=repository:app:pull`, { headers: { authorization: `Basic ${Buffer.from(`ci:${password}`).toString('base64')}`, 'x-forwarded-for': from } });
      for (let i = 0; i < 5; i++) expect((await ask(`wrong-${i}`, ATTACKER)).status).toBe(401);
      const attacker = await ask('ci-secret', ATTACKER);
      expect(attacker.status).toBe(429);
      expect(Number(attacker.headers.get('retry-after'))).toBeGreaterThan(0);
      // PAT-shaped secrets skip the lockout read and are counted regardless: persisting with them
      // from the same address must not reach the account-wide limit (50 here) either.
      for (let i = 0; i < 60; i++) expect((await ask(mintSecret(PAT_PREFIX), ATTACKER)).status).not.toBe(200);
      const owner = await ask('ci-secret', OWNER);
      expect(owner.status).toBe(200);
      expect(((await owner.json()) as { token?: string }).token).toBeTruthy();
    });
  }
});

describe('limits configuration', () => {
  it('keeps existing limits sections valid and refuses an account-wide limit an address could reach alone', async () => {
    const cfg = await loadConfigText('limits: { failuresPerAccount: 5, failuresPerIP: 50, window: 10m, lockout: 5m }\n', '/tmp');
    expect(cfg.raw.limits.failuresPerAccountTotal).toBeUndefined();
    await expect(loadConfigText('limits: { failuresPerAccount: 5, failuresPerAccountTotal: 40 }\n', '/tmp')).resolves.toBeDefined();
    await expect(loadConfigText('limits: { failuresPerAccount: 5, failuresPerAccountTotal: 5 }\n', '/tmp')).rejects.toThrow(/limits\.failuresPerAccountTotal: must be more than failuresPerAccount \(5\)/);
  });
});
