import { hash, randomBytes } from 'node:crypto';
import { AuthenticationError, type CredentialKind, type Principal } from '../model/principal.js';
import type { RefreshTokens } from '../tokens/refresh-tokens.js';

/**
 * One kind of secret, recognised by its shape (PAT prefix, robot prefix, a JWT from a CI platform; a
 * static user's password is whatever no other kind accepts). Shape, not a configured order, chooses
 * the verifier: a PAT is never tried as a bcrypt password.
 */
export interface CredentialVerifier {
  readonly kind: CredentialKind;
  accepts(password: string): boolean;
  /** `username` null: the caller named no user (a Bearer PAT); only the PAT verifier takes that. */
  verify(username: string | null, password: string, clientIp: string): Promise<Principal>;
  /**
   * Run whenever a refresh token issued from this kind of credential is used: throws
   * AuthenticationError when the credential behind it is gone (a revoked PAT, a removed static user,
   * a rotated robot), may return fresher labels (new groups).
   */
  recheck(principal: Principal): Promise<Principal>;
}

/** What the gate needs from the failure limiter (src/security/auth-limiter.ts). */
export interface FailureLimiter {
  /** Throws while the account or the address is locked out. */
  check(account: string, ip: string): Promise<void>;
  failure(account: string, secret: string, ip: string): Promise<void>;
}

export interface PasswordOptions {
  /** Only these kinds are accepted here (the web form takes static passwords, the JSON API PATs). */
  only?: readonly CredentialKind[];
  /** The caller names no user (a Bearer PAT on the JSON API): the credential's owner is the account. */
  noUsername?: boolean;
}

const MAX_REMEMBERED = 10_000;

/**
 * Kinds whose secrets a person chooses, so they can be guessed: a locked-out account or address is
 * refused before they are verified. PATs, robot secrets, refresh and ID tokens carry 160+ random
 * bits or a signature: their failures are counted too, but a success is never held up by a read.
 */
const GUESSABLE: ReadonlySet<CredentialKind> = new Set(['static']);

/**
 * The credential gate: every secret a client presents — a static user's password (token endpoint or
 * web form), a PAT (docker login, JSON API bearer), a robot secret, a CI platform's ID token, a refresh
 * token — passes here, under one set of rules:
 *
 *   1. classify   by shape, once; a kind the entry point does not take is refused
 *   2. recall     a username + secret verified within `rememberSeconds` is not verified again, and one
 *                 being verified is waited for rather than verified twice (a pull
 *                 of several images presents one PAT with a new scope each time). Keys are a salted
 *                 hash (no secret kept), entries never outlive the principal's reusableUntil, CI ID
 *                 tokens are never remembered, and forget() (every revocation any replica
 *                 publishes) drops them; a verification in flight across a forget() is not stored
 *   3. lockout    guessable kinds are refused while the account or address is locked out
 *   4. verify     by the kind's verifier
 *   5. count      every failure, of every kind, through the one limiter
 *   6. re-check   a refresh token is checked against the service it was issued for and against its
 *                 source on every use: it dies with the PAT, the robot, or the static user (removed,
 *                 or its password changed)
 */
export class Credentials {
  private readonly salt = randomBytes(32).toString('latin1');
  private readonly remembered = new Map<string, { principal: Principal; until: number }>();
  /** Verifications in flight, by the same key: concurrent identical requests share one. */
  private readonly verifying = new Map<string, Promise<Principal>>();
  /** Bumped by forget(), so that a verification in flight across a revocation is not remembered. */
  private generation = 0;
  private readonly byKind: ReadonlyMap<CredentialKind, CredentialVerifier>;

  constructor(
    /** In order of precedence by shape; the last one (static users) accepts whatever is left. */
    private readonly verifiers: readonly CredentialVerifier[],
    readonly refreshTokens: RefreshTokens,
    private readonly limiter: FailureLimiter | null,
    private readonly rememberSeconds = 0,
    private readonly anonymousPrincipal: () => Principal | null = () => null,
  ) {
    this.byKind = new Map(verifiers.map((v) => [v.kind, v]));
  }

  forget(): void {
    this.generation++;
    this.remembered.clear();
    // A request arriving after a revocation must not join a verification that began before it.
    this.verifying.clear();
  }

  /** Which kind of credential a password is, by its shape. */
  kindOf(password: string): CredentialKind {
    for (const v of this.verifiers) if (v.accepts(password)) return v.kind;
    return 'static';
  }

  private keyOf(username: string, password: string): string {
    return hash('sha256', `${this.salt}${username}\n${password}`, 'base64');
  }

  /** The account failures are counted against: CI tokens share user names (`oidc`), so only their address counts. */
  private static accountOf(kind: CredentialKind, username: string): string {
    return kind === 'federated' ? '' : username;
  }

  /** Resolves a username + secret (Basic, grant_type=password, the web form, a Bearer PAT) to a principal, or throws. */
  async password(username: string, password: string, clientIp: string, opts: PasswordOptions = {}): Promise<Principal> {
    const kind = this.kindOf(password);
    const who = Credentials.accountOf(kind, username);
    if (opts.only && !opts.only.includes(kind)) {
      await this.limiter?.failure(who, password, clientIp);
      throw new AuthenticationError(opts.only.includes('pat') ? 'expected a personal access token' : 'invalid username or password');
    }
    const now = Date.now();
    const remember = this.rememberSeconds > 0 && kind !== 'federated';
    const key = remember ? this.keyOf(opts.noUsername ? '\0' : username, password) : '';
    if (remember) {
      const known = this.remembered.get(key);
      if (known && known.until > now) return known.principal;
      // The same pair already being verified (many connections of one client, or everyone at once
      // when a remembered pair expires): wait for that answer instead of verifying it again. Without
      // this, 50 connections of one static user ran 50 bcrypt hashes at every expiry (p99 1.5 s).
      const pending = this.verifying.get(key);
      if (pending) return pending;
    }
    const verification = this.verify(kind, who, username, password, clientIp, opts, key, remember, now);
    if (!remember) return verification;
    this.verifying.set(key, verification);
    try {
      return await verification;
    } finally {
      if (this.verifying.get(key) === verification) this.verifying.delete(key);
    }
  }

  /** Steps 3–5 for one pair: lockout, verify, count; remembered on success unless a forget() came meanwhile. */
  private async verify(kind: CredentialKind, who: string, username: string, password: string, clientIp: string, opts: PasswordOptions, key: string, remember: boolean, now: number): Promise<Principal> {
    if (GUESSABLE.has(kind)) await this.limiter?.check(who, clientIp);
    // Noted before the await: a forget() landing meanwhile must not be undone by storing this result.
    const generation = this.generation;
    // Taken before the lookups: what they read is at least this old, and nothing built on this
    // verification (a remembered pair, a reused answer) may outlive it by more than the window.
    const verifiedAt = Date.now();
    let principal: Principal;
    try {
      principal = { ...(await this.byKind.get(kind)!.verify(opts.noUsername ? null : username, password, clientIp)), verifiedAt };
    } catch (e) {
      if (e instanceof AuthenticationError) await this.limiter?.failure(who, password, clientIp);
      throw e;
    }
    if (remember && generation === this.generation) {
      const until = Math.min(now + this.rememberSeconds * 1000, principal.reusableUntil ?? Infinity);
      if (until > now) {
        if (this.remembered.size >= MAX_REMEMBERED) this.remembered.delete(this.remembered.keys().next().value!);
        this.remembered.set(key, { principal: Object.freeze(principal), until });
      }
    }
    return principal;
  }

  /**
   * A secret that is redeemed rather than verified failed elsewhere (an unknown RFC 8628 device code,
   * a wrong user code typed on the device page): counted under the same rules as every other failure.
   */
  async countFailure(account: string, secret: string, clientIp: string): Promise<void> {
    await this.limiter?.failure(account, secret, clientIp);
  }

  anonymous(): Principal {
    const p = this.anonymousPrincipal();
    if (!p) throw new AuthenticationError('authentication required');
    return p;
  }

  /** May a refresh token be issued for this principal? Never for anonymous callers or CI tokens (minutes-lived). */
  static mayRefresh(p: Principal): boolean {
    return p.kind !== 'anonymous' && p.kind !== 'federated';
  }

  issueRefresh(principal: Principal, service: string): Promise<string> {
    return this.refreshTokens.issue(principal, service);
  }

  /** A refresh token, for `service`: its record, the service it was issued for, and its source, checked now. */
  async refresh(token: string, service: string, clientIp: string): Promise<Principal> {
    const found = await this.refreshTokens.lookup(token);
    if (!found) {
      await this.limiter?.failure('', token, clientIp);
      throw new AuthenticationError('invalid or expired refresh token');
    }
    // A token handed to one registry must not buy tokens for another service behind the same Berth.
    if (found.service !== undefined && found.service !== service) {
      await this.limiter?.failure('', token, clientIp);
      throw new AuthenticationError('this refresh token was issued for another service: log in again');
    }
    const v = this.byKind.get(found.principal.kind);
    if (!v) throw new AuthenticationError('this refresh token can no longer be used: log in again');
    try {
      return await v.recheck(found.principal);
    } catch (e) {
      // The credential behind it is gone: so is the token, on every replica.
      if (e instanceof AuthenticationError) await this.refreshTokens.revoke(token).catch(() => false);
      throw e;
    }
  }
}
