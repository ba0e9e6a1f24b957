import { afterEach, describe, expect, it, vi } from 'vitest';
import { Credentials, type CredentialVerifier, type FailureLimiter } from '../../src/identity/credentials.js';
import { AuthenticationError, type Principal } from '../../src/model/principal.js';
import { StaticUsers } from '../../src/identity/static-users.js';
import { MemoryStore } from '../../src/store/memory.js';
import { RateLimitedError } from '../../src/security/auth-limiter.js';
import { hashSync } from '@node-rs/bcrypt';
import { RefreshTokens } from '../../src/tokens/refresh-tokens.js';

// What Credentials remembers between token requests, with a verifier of the test's own that counts
// its calls and answers what the test tells it to.

class CountingVerifier implements CredentialVerifier {
  readonly kind: Principal['kind'];
  calls = 0;
  answer: () => Promise<Principal>;

  constructor(kind: Principal['kind'], principal: Partial<Principal> = {}) {
    this.kind = kind;
    this.answer = async () => ({ account: 'alice', kind, labels: {}, ...principal });
  }

  accepts(password: string): boolean {
    return password.startsWith(`${this.kind}_`);
  }

  verify(): Promise<Principal> {
    this.calls++;
    return this.answer();
  }

  rechecks = 0;
  recheckAnswer: (p: Principal) => Promise<Principal> = async (p) => p;
  recheck(p: Principal): Promise<Principal> {
    this.rechecks++;
    return this.recheckAnswer(p);
  }
}

/** The gate's limiter interface, recording what the gate asks of it (the real one is tested with the stores). */
class RecordingLimiter implements FailureLimiter {
  checks: string[] = [];
  failures: string[] = [];
  locked = false;
  async check(account: string): Promise<void> {
    this.checks.push(account);
    if (this.locked) throw new RateLimitedError(60);
  }
  async failure(account: string, _secret: string, ip: string): Promise<void> {
    this.failures.push(`${account}@${ip}`);
  }
}

function credentials(verifier: CountingVerifier, rememberSeconds = 10, limiter: FailureLimiter | null = null, store = new MemoryStore()) {
  return new Credentials([verifier, new StaticUsers(new Map([['ci', { hash: hashSync('right', 4), labels: {} }]]))], new RefreshTokens(store, 60), limiter, rememberSeconds);
}

afterEach(() => {
  vi.useRealTimers();
});

describe('remembered credentials', () => {
  it('verifies a username + password once per window, and each different pair on its own', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = new CountingVerifier('pat');
    const c = credentials(v);
    await c.password('alice', 'pat_one', '127.0.0.1');
    await c.password('alice', 'pat_one', '10.0.0.1');
    expect(v.calls).toBe(1);
    await c.password('alice', 'pat_two', '127.0.0.1');
    await c.password('bob', 'pat_one', '127.0.0.1');
    expect(v.calls).toBe(3);
    vi.setSystemTime(Date.now() + 11_000);
    await c.password('alice', 'pat_one', '127.0.0.1');
    expect(v.calls).toBe(4);
  });

  it('never past the principal’s reusableUntil (credential expiry, next re-check)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const v = new CountingVerifier('pat', { reusableUntil: Date.now() + 2_000 });
    const c = credentials(v);
    await c.password('alice', 'pat_x', '127.0.0.1');
    vi.setSystemTime(Date.now() + 1_000);
    await c.password('alice', 'pat_x', '127.0.0.1');
    expect(v.calls).toBe(1);
    vi.setSystemTime(Date.now() + 1_500);
    await c.password('alice', 'pat_x', '127.0.0.1');
    expect(v.calls).toBe(2);
  });

  it('reads the lockout only for guessable passwords, and only when the pair is really verified', async () => {
    const limiter = new RecordingLimiter();
    const v = new CountingVerifier('pat');
    const c = credentials(v, 10, limiter);
    await c.password('ci', 'right', '127.0.0.1');
    await c.password('ci', 'right', '127.0.0.1');
    expect(limiter.checks).toEqual(['ci']);
    // A PAT (190 random bits) is not a guess: no lockout read holds it up.
    await c.password('alice', 'pat_l', '127.0.0.1');
    expect(limiter.checks).toEqual(['ci']);
    // While locked out, a static password is refused before bcrypt runs.
    limiter.locked = true;
    await expect(c.password('ci', 'other', '127.0.0.1')).rejects.toBeInstanceOf(RateLimitedError);
    expect(limiter.failures).toEqual([]);
  });

  it('counts the failures of every kind through the one limiter (CI tokens per address only)', async () => {
    const limiter = new RecordingLimiter();
    const failing = new CountingVerifier('pat');
    failing.answer = async () => {
      throw new AuthenticationError('no');
    };
    const c = credentials(failing, 10, limiter);
    await expect(c.password('alice', 'pat_bad', '10.0.0.1')).rejects.toThrow('no');
    await expect(c.password('ci', 'wrong', '10.0.0.2')).rejects.toThrow(AuthenticationError);
    await expect(c.refresh('berth_rt_unknown', 'registry', '10.0.0.3')).rejects.toThrow(/invalid or expired/);
    // The JSON API takes PATs only: a password there is refused and counted.
    await expect(c.password('ci', 'right', '10.0.0.4', { only: ['pat'] })).rejects.toThrow(/expected a personal access token/);
    expect(limiter.failures).toEqual(['alice@10.0.0.1', 'ci@10.0.0.2', '@10.0.0.3', 'ci@10.0.0.4']);
    const ci = new CountingVerifier('federated');
    ci.answer = async () => {
      throw new AuthenticationError('bad token');
    };
    await expect(credentials(ci, 10, limiter).password('oidc', 'federated_jwt', '10.0.0.5')).rejects.toThrow('bad token');
    expect(limiter.failures.at(-1)).toBe('@10.0.0.5');
  });

  it('binds a refresh token to its service and re-checks its source on every use', async () => {
    const limiter = new RecordingLimiter();
    const v = new CountingVerifier('pat', { credentialId: 'pat-1' });
    const c = credentials(v, 10, limiter);
    const principal = await c.password('alice', 'pat_r', '127.0.0.1');
    const rt = await c.issueRefresh(principal, 'registry-a');
    await expect(c.refresh(rt, 'registry-b', '127.0.0.1')).rejects.toThrow(/issued for another service/);
    expect((await c.refresh(rt, 'registry-a', '127.0.0.1')).account).toBe('alice');
    expect(v.rechecks).toBe(1);
    // The source refuses (the PAT was revoked): the refresh token is gone with it.
    v.recheckAnswer = async () => {
      throw new AuthenticationError('revoked');
    };
    await expect(c.refresh(rt, 'registry-a', '127.0.0.1')).rejects.toThrow('revoked');
    v.recheckAnswer = async (p) => p;
    await expect(c.refresh(rt, 'registry-a', '127.0.0.1')).rejects.toThrow(/invalid or expired/);
  });

  it("ends a static user's refresh tokens when the user is removed or the password changes", async () => {
    const store = new MemoryStore();
    const users = (hash: string) => new Map([['ci', { hash, labels: {} }]]);
    const first = hashSync('right', 4);
    const gate = (u: Map<string, { hash: string; labels: Record<string, string[]> }>) => new Credentials([new StaticUsers(u)], new RefreshTokens(store, 60), null, 0);
    const before = gate(users(first));
    const rt = await before.issueRefresh(await before.password('ci', 'right', '127.0.0.1'), 'registry');
    expect((await gate(users(first)).refresh(rt, 'registry', '127.0.0.1')).account).toBe('ci');
    await expect(gate(users(hashSync('new', 4))).refresh(rt, 'registry', '127.0.0.1')).rejects.toThrow(/password of this user has changed/);
    const rt2 = await before.issueRefresh(await before.password('ci', 'right', '127.0.0.1'), 'registry');
    await expect(gate(new Map()).refresh(rt2, 'registry', '127.0.0.1')).rejects.toThrow(/no longer exists/);
  });

  it('remembers no failure, no CI ID token, and nothing with a window of 0', async () => {
    const failing = new CountingVerifier('pat');
    failing.answer = async () => {
      throw new AuthenticationError('no');
    };
    const c = credentials(failing);
    await expect(c.password('alice', 'pat_bad', '127.0.0.1')).rejects.toThrow('no');
    await expect(c.password('alice', 'pat_bad', '127.0.0.1')).rejects.toThrow('no');
    expect(failing.calls).toBe(2);

    const ci = new CountingVerifier('federated', { reusableUntil: 0 });
    const cf = credentials(ci);
    await cf.password('oidc', 'federated_jwt', '127.0.0.1');
    await cf.password('oidc', 'federated_jwt', '127.0.0.1');
    expect(ci.calls).toBe(2);

    const off = new CountingVerifier('pat');
    const c0 = credentials(off, 0);
    await c0.password('alice', 'pat_y', '127.0.0.1');
    await c0.password('alice', 'pat_y', '127.0.0.1');
    expect(off.calls).toBe(2);
  });

  it('forget() drops everything, including a verification that was in flight when it came', async () => {
    const v = new CountingVerifier('pat');
    const c = credentials(v);
    await c.password('alice', 'pat_a', '127.0.0.1');
    c.forget();
    await c.password('alice', 'pat_a', '127.0.0.1');
    expect(v.calls).toBe(2);

    let release: (() => void) | undefined;
    v.answer = () => new Promise((resolve) => (release = () => resolve({ account: 'alice', kind: 'pat', labels: {} })));
    const inFlight = c.password('alice', 'pat_b', '127.0.0.1');
    while (!release) await Promise.resolve();
    c.forget(); // the PAT is revoked while Redis is still answering the lookup
    release();
    await inFlight;
    v.answer = async () => ({ account: 'alice', kind: 'pat', labels: {} });
    await c.password('alice', 'pat_b', '127.0.0.1');
    expect(v.calls).toBe(4);
  });

  it('verifies concurrent identical requests once (no bcrypt stampede when a remembered pair expires)', async () => {
    const v = new CountingVerifier('pat');
    let release: (() => void) | undefined;
    v.answer = () => new Promise((resolve) => (release = () => resolve({ account: 'alice', kind: 'pat', labels: {} })));
    const c = credentials(v);
    const all = Array.from({ length: 50 }, () => c.password('alice', 'pat_same', '127.0.0.1'));
    while (!release) await Promise.resolve();
    release();
    expect((await Promise.all(all)).every((p) => p.account === 'alice')).toBe(true);
    expect(v.calls).toBe(1);
    // A failure is shared the same way, and counted once.
    const limiter = new RecordingLimiter();
    const failing = new CountingVerifier('pat');
    let fail: (() => void) | undefined;
    failing.answer = () => new Promise((_, reject) => (fail = () => reject(new AuthenticationError('no'))));
    const cf = credentials(failing, 10, limiter);
    const refused = Array.from({ length: 5 }, () => cf.password('alice', 'pat_bad', '127.0.0.1').catch((e: Error) => e.message));
    while (!fail) await Promise.resolve();
    fail();
    expect(await Promise.all(refused)).toEqual(['no', 'no', 'no', 'no', 'no']);
    expect(failing.calls).toBe(1);
    expect(limiter.failures).toHaveLength(1);
  });

  it('a request after a revocation does not join a verification that began before it', async () => {
    const v = new CountingVerifier('pat');
    const releases: (() => void)[] = [];
    v.answer = () => new Promise((resolve) => releases.push(() => resolve({ account: 'alice', kind: 'pat', labels: {} })));
    const c = credentials(v);
    const before = c.password('alice', 'pat_r', '127.0.0.1');
    while (releases.length < 1) await Promise.resolve();
    c.forget();
    const after = c.password('alice', 'pat_r', '127.0.0.1');
    while (releases.length < 2) await Promise.resolve();
    for (const r of releases) r();
    await Promise.all([before, after]);
    expect(v.calls).toBe(2);
  });

  it('hands out the remembered principal frozen, so no caller can change it for the next', async () => {
    const c = credentials(new CountingVerifier('pat', { labels: { groups: ['a'] } }));
    const p = await c.password('alice', 'pat_z', '127.0.0.1');
    expect(Object.isFrozen(p)).toBe(true);
  });
});
