import { createHmac } from 'node:crypto';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Store } from '../store/store.js';

export interface AuthLimitOptions {
  failuresPerAccount: number;
  failuresPerIP: number;
  windowSeconds: number;
  lockoutSeconds: number;
}

/** A request refused because of earlier failures; carries when to try again. */
export class RateLimitedError extends Error {
  override name = 'RateLimitedError';
  constructor(readonly retryAfterSeconds: number) {
    super(`too many failed sign-in attempts; try again in ${retryAfterSeconds} s`);
  }
}

/**
 * Failed-authentication limits per account and per client address, kept in Redis when Berth runs
 * on it so that every replica sees the same counts. Successful requests are never slowed: only
 * failures are counted, and a check is a read.
 */
export class AuthLimiter {
  private readonly byAccount: RateLimiterAbstract;
  private readonly byIp: RateLimiterAbstract;

  constructor(
    private readonly store: Store,
    redisClient: unknown | null,
    private readonly opts: AuthLimitOptions,
    private readonly fingerprintKey: Buffer,
  ) {
    const make = (keyPrefix: string, points: number) =>
      redisClient
        ? new RateLimiterRedis({ storeClient: redisClient, keyPrefix, points, duration: opts.windowSeconds, blockDuration: opts.lockoutSeconds })
        : new RateLimiterMemory({ keyPrefix, points, duration: opts.windowSeconds, blockDuration: opts.lockoutSeconds });
    this.byAccount = make('rl-account', opts.failuresPerAccount);
    this.byIp = make('rl-ip', opts.failuresPerIP);
  }

  private static retryAfter(res: RateLimiterRes | null, points: number): number {
    if (!res || res.consumedPoints < points) return 0;
    return Math.max(1, Math.ceil(res.msBeforeNext / 1000));
  }

  /** Throws RateLimitedError while the account or the address is locked out. Fails open on store errors. */
  async check(account: string, ip: string): Promise<void> {
    try {
      const [a, i] = await Promise.all([account ? this.byAccount.get(account) : null, this.byIp.get(ip)]);
      const wait = Math.max(AuthLimiter.retryAfter(a, this.opts.failuresPerAccount), AuthLimiter.retryAfter(i, this.opts.failuresPerIP));
      if (wait > 0) throw new RateLimitedError(wait);
    } catch (e) {
      if (e instanceof RateLimitedError) throw e;
    }
  }

  /**
   * Counts one failure. containerd retries a refused POST as a GET, so the same wrong secret from the
   * same address within a few seconds is counted once (recognised by an HMAC, never stored in clear).
   */
  async failure(account: string, secret: string, ip: string): Promise<void> {
    try {
      const fp = createHmac('sha256', this.fingerprintKey).update(account).update('\0').update(secret).update('\0').update(ip).digest('base64url');
      if (!(await this.store.setIfAbsent(`authfail-seen:${fp}`, '1', 10))) return;
      // The N-th failure starts the lockout (the library's own block would wait for N+1).
      const consume = async (l: RateLimiterAbstract, key: string, points: number) => {
        const r = await l.consume(key).catch((x: unknown) => (x instanceof RateLimiterRes ? x : Promise.reject(x)));
        if (r.consumedPoints === points) await l.block(key, this.opts.lockoutSeconds);
      };
      await Promise.all([account ? consume(this.byAccount, account, this.opts.failuresPerAccount) : null, consume(this.byIp, ip, this.opts.failuresPerIP)]);
    } catch {
      // The store is down: nothing to count into; the request itself already failed.
    }
  }
}
