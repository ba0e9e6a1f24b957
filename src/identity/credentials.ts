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

export class Credentials {
  constructor(
    readonly staticUsers: StaticUsers,
    readonly refreshTokens: RefreshTokens,
    private readonly verifiers: readonly CredentialVerifier[] = [],
  ) {}

  /** Which kind of credential a password is, by its shape; `static` means a bcrypt user's password. */
  kindOf(password: string): Principal['kind'] {
    return this.verifiers.find((v) => v.accepts(password))?.kind ?? 'static';
  }

  /** Resolves a username + password (Basic or grant_type=password) to a principal, or throws. */
  async password(username: string, password: string, clientIp: string): Promise<Principal> {
    for (const v of this.verifiers) if (v.accepts(password)) return v.verify(username, password, clientIp);
    return this.staticUsers.authenticate(username, password);
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
