import { createHmac } from 'node:crypto';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type ipaddr from 'ipaddr.js';
import { parseClientIp } from '../policy/acl.js';
import type { Store } from '../store/store.js';

export interface AuthLimitOptions {
  /** Failures per account from one address (an IPv6 /64 counts as one) before that pair is locked out. */
  failuresPerAccount: number;
  /**
   * Failures per account from all addresses together before the whole account is locked out; higher
   * than failuresPerAccount, so one address can never lock the owner out (default: ten times it).
   */
  failuresPerAccountTotal?: number | undefined;
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
 * The address a limit counts: an IPv6 client is its /64, which one host or site usually holds whole
 * (rotating through it must not buy fresh counts); IPv4 and anything unparsable as given.
 */
export function limitAddress(ip: string): string {
  const a = parseClientIp(ip);
  if (!a) return ip;
  if (a.kind() === 'ipv4') return a.toString();
  return `${(a as ipaddr.IPv6).parts.slice(0, 4).map((p) => p.toString(16)).join(':')}::/64`;
}

/**
 * Failed-authentication limits, kept in Redis when Berth runs on it so that every replica sees the
 * same counts. Three counters: per (account, address), which locks out the address that guessed;
 * per account over all addresses, with a higher threshold, against guessing spread over many
 * addresses; per address over all accounts. An outsider failing from one address thus locks out
 * that address, never the account's owner elsewhere. Successful requests are never slowed: only
 * failures are counted, and a check is a read.
 */
export class AuthLimiter {
  private readonly byPair: RateLimiterAbstract;
  private readonly byAccount: RateLimiterAbstract;
  private readonly byIp: RateLimiterAbstract;
  private readonly accountTotal: number;

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
    this.accountTotal = opts.failuresPerAccountTotal ?? opts.failuresPerAccount * 10;
    this.byPair = make('rl-account-ip', opts.failuresPerAccount);
    this.byAccount = make('rl-account', this.accountTotal);
    this.byIp = make('rl-ip', opts.failuresPerIP);
  }

  private static retryAfter(res: RateLimiterRes | null, points: number): number {
    if (!res || res.consumedPoints < points) return 0;
    return Math.max(1, Math.ceil(res.msBeforeNext / 1000));
  }

  /** The pair's key: a hash, so a long user name makes no long Redis key and `\0` cannot be forged. */
  private pairKey(account: string, ip: string): string {
    return createHmac('sha256', this.fingerprintKey).update('pair\0').update(account).update('\0').update(limitAddress(ip)).digest('base64url');
  }

  /**
   * Throws RateLimitedError while this account from this address, the account everywhere, or the
   * address is locked out. Fails open on store errors.
   */
  async check(account: string, ip: string): Promise<void> {
    try {
      const addr = limitAddress(ip);
      const [p, a, i] = await Promise.all([account ? this.byPair.get(this.pairKey(account, ip)) : null, account ? this.byAccount.get(account) : null, this.byIp.get(addr)]);
      const wait = Math.max(
        AuthLimiter.retryAfter(p, this.opts.failuresPerAccount),
        AuthLimiter.retryAfter(a, this.accountTotal),
        AuthLimiter.retryAfter(i, this.opts.failuresPerIP),
      );
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
        return r;
      };
      const countAccount = async () => {
        const pair = await consume(this.byPair, this.pairKey(account, ip), this.opts.failuresPerAccount);
        // Past its own limit an address adds nothing to the account-wide count: failures that are
        // not refused up front (PAT-shaped secrets skip the lockout read) must not let one address
        // reach the account's limit by persisting.
        if (pair.consumedPoints <= this.opts.failuresPerAccount) await consume(this.byAccount, account, this.accountTotal);
      };
      await Promise.all([account ? countAccount() : null, consume(this.byIp, limitAddress(ip), this.opts.failuresPerIP)]);
    } catch {
      // The store is down: nothing to count into; the request itself already failed.
    }
  }
}
