import { hash, randomBytes } from 'node:crypto';
import type { StaticUsers } from './static-users.js';
import { AuthenticationError, type Principal } from './principal.js';
import type { RefreshTokens } from '../tokens/refresh-tokens.js';

/**
 * A kind of secret recognised by its shape (PAT prefix, robot prefix, a JWT from a CI platform).
 * Shape, not a configured order, chooses the verifier: a PAT is never tried as a bcrypt password.
 */
export interface CredentialVerifier {
  readonly kind: Principal['kind'];
  accepts(password: string): boolean;
  verify(username: string, password: string, clientIp: string): Promise<Principal>;
  /**
   * Called when a refresh token issued from this kind of credential is used: throws when the
   * credential behind it is gone (a revoked PAT), may return fresher labels (new groups).
   */
  recheck?(principal: Principal): Promise<Principal>;
}

const MAX_REMEMBERED = 10_000;

/**
 * Resolves what a caller presents to a principal. A username + password that was verified moments
 * ago is not verified again for `rememberSeconds`: a pull of several images, or a CI job, presents
 * one PAT or password with a new scope each time, and each verification costs Redis round trips
 * (PATs, robots) or a bcrypt hash (static users). Entries are keyed by a salted hash (no secret in
 * memory in clear), never outlive the principal's reusableUntil (credential expiry, next re-check),
 * skip CI ID tokens, and are dropped by forget(), which the server calls on every revocation,
 * rotation or account change any replica publishes.
 */
export class Credentials {
  private readonly salt = randomBytes(32).toString('latin1');
  private readonly remembered = new Map<string, { principal: Principal; until: number }>();

  constructor(
    readonly staticUsers: StaticUsers,
    readonly refreshTokens: RefreshTokens,
    private readonly verifiers: readonly CredentialVerifier[] = [],
    private readonly rememberSeconds = 0,
  ) {}

  /** Bumped by forget(), so that a verification in flight across a revocation is not remembered. */
  private generation = 0;

  forget(): void {
    this.generation++;
    this.remembered.clear();
  }

  /** Which kind of credential a password is, by its shape; `static` means a bcrypt user's password. */
  kindOf(password: string): Principal['kind'] {
    return this.verifiers.find((v) => v.accepts(password))?.kind ?? 'static';
  }

  private keyOf(username: string, password: string): string {
    return hash('sha256', `${this.salt}${username}\n${password}`, 'base64');
  }

  private lookup(key: string, now: number): Principal | undefined {
    const known = this.remembered.get(key);
    return known && known.until > now ? known.principal : undefined;
  }

  /**
   * Resolves a username + password (Basic or grant_type=password) to a principal, or throws.
   * `beforeVerify` runs only when the pair is really verified, not when it is remembered (the token
   * endpoint's lockout read: a pair verified moments ago is not a guess).
   */
  async password(username: string, password: string, clientIp: string, beforeVerify?: () => Promise<void>): Promise<Principal> {
    if (this.rememberSeconds <= 0) {
      await beforeVerify?.();
      return this.verify(username, password, clientIp);
    }
    const now = Date.now();
    const key = this.keyOf(username, password);
    const known = this.lookup(key, now);
    if (known) return known;
    await beforeVerify?.();
    // Noted before the await: a forget() landing meanwhile must not be undone by storing this result.
    const generation = this.generation;
    const principal = await this.verify(username, password, clientIp);
    const until = Math.min(now + this.rememberSeconds * 1000, principal.reusableUntil ?? Infinity);
    if (until > now && principal.kind !== 'federated' && generation === this.generation) {
      if (this.remembered.size >= MAX_REMEMBERED) this.remembered.delete(this.remembered.keys().next().value!);
      this.remembered.set(key, { principal: Object.freeze(principal), until });
    }
    return principal;
  }

  private async verify(username: string, password: string, clientIp: string): Promise<Principal> {
    const verifiedAt = Date.now(); // before the lookups: what they read is at least this old
    const v = this.verifiers.find((x) => x.accepts(password));
    return { ...(await (v ? v.verify(username, password, clientIp) : this.staticUsers.authenticate(username, password))), verifiedAt };
  }

  anonymous(): Principal {
    const p = this.staticUsers.anonymous();
    if (!p) throw new AuthenticationError('authentication required');
    return p;
  }

  async refresh(token: string): Promise<Principal> {
    const p = await this.refreshTokens.lookup(token);
    if (!p) throw new AuthenticationError('invalid or expired refresh token');
    const v = this.verifiers.find((x) => x.kind === p.kind);
    return v?.recheck ? v.recheck(p) : p;
  }
}
