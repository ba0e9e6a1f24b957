import { afterEach, describe, expect, it, vi } from 'vitest';
import { Credentials, type CredentialVerifier } from '../../src/identity/credentials.js';
import { AuthenticationError, type Principal } from '../../src/identity/principal.js';
import { StaticUsers } from '../../src/identity/static-users.js';
import { MemoryStore } from '../../src/store/memory.js';
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
}

function credentials(verifier: CountingVerifier, rememberSeconds = 10) {
  return new Credentials(new StaticUsers(new Map()), new RefreshTokens(new MemoryStore(), 60), [verifier], rememberSeconds);
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

  it('runs beforeVerify (the lockout read) only when the pair is really verified', async () => {
    const v = new CountingVerifier('pat');
    const c = credentials(v);
    let reads = 0;
    const lockoutRead = async () => {
      reads++;
    };
    await c.password('alice', 'pat_l', '127.0.0.1', lockoutRead);
    await c.password('alice', 'pat_l', '127.0.0.1', lockoutRead);
    expect(reads).toBe(1);
    // A refusal from it stops the verification.
    const refusing = async () => {
      throw new AuthenticationError('locked');
    };
    await expect(c.password('alice', 'pat_m', '127.0.0.1', refusing)).rejects.toThrow('locked');
    expect(v.calls).toBe(1);
    const off = credentials(new CountingVerifier('pat'), 0);
    await off.password('alice', 'pat_l', '127.0.0.1', lockoutRead);
    await off.password('alice', 'pat_l', '127.0.0.1', lockoutRead);
    expect(reads).toBe(3);
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

  it('hands out the remembered principal frozen, so no caller can change it for the next', async () => {
    const c = credentials(new CountingVerifier('pat', { labels: { groups: ['a'] } }));
    const p = await c.password('alice', 'pat_z', '127.0.0.1');
    expect(Object.isFrozen(p)).toBe(true);
  });
});
