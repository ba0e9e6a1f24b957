import { PAT_PREFIX, Pats, type PatRecord } from '../tokens/pats.js';
import type { RefreshTokens } from '../tokens/refresh-tokens.js';
import { labelsOf, type Accounts } from './accounts.js';
import type { ContinuousAccess } from './continuous-access.js';
import type { CredentialVerifier } from './credentials.js';
import { AuthenticationError, type Principal } from '../model/principal.js';

/**
 * `docker login -u USER -p berth_pat_…`: the PAT names its owner's account (by subject, not by
 * name); the account's current name and groups (continuous access) make the principal; the PAT's own
 * restriction narrows the result.
 */
export class PatVerifier implements CredentialVerifier {
  readonly kind = 'pat' as const;

  constructor(
    private readonly pats: Pats,
    private readonly accounts: Accounts,
    private readonly access: ContinuousAccess,
    private readonly refreshTokens: RefreshTokens,
  ) {}

  accepts(password: string): boolean {
    return password.startsWith(PAT_PREFIX);
  }

  async verify(username: string | null, password: string, clientIp: string): Promise<Principal> {
    if (Pats.shape(password) !== 'ok') throw new AuthenticationError('malformed personal access token (checksum mismatch): check for a copy/paste error');
    const rec = await this.pats.lookup(password);
    if (!rec) throw new AuthenticationError('unknown, expired or revoked personal access token');
    const principal = await this.principalFor(rec);
    // The name the PAT was created under keeps working after the provider renamed its owner: it
    // stays bound to the same subject, so nobody else can hold it.
    const named = (n: string) => username !== null && username.toLowerCase() === n.toLowerCase();
    if (username !== null && !named(principal.account) && !named(rec.username)) throw new AuthenticationError("this personal access token belongs to another user: log in with its owner's username");
    this.pats.touch(rec, clientIp);
    return principal;
  }

  /** A refresh token issued from a PAT lives only as long as the PAT and the account. */
  async recheck(p: Principal): Promise<Principal> {
    const rec = p.credentialId ? await this.pats.byId(p.credentialId) : null;
    if (!rec) {
      if (p.credentialId) await this.refreshTokens.revokeForCredential(p.credentialId);
      throw new AuthenticationError('the personal access token behind this refresh token was revoked or has expired');
    }
    return this.principalFor(rec);
  }

  /** The PAT record as it stands, for the JSON API (which acts on the PAT itself). */
  record(p: Principal): Promise<PatRecord | null> {
    return p.credentialId ? this.pats.byId(p.credentialId) : Promise.resolve(null);
  }

  private async principalFor(rec: PatRecord): Promise<Principal> {
    const account = await this.accounts.get(rec.owner);
    if (!account) throw new AuthenticationError('the owner of this token is unknown');
    const current = await this.access.current(account);
    const principal: Principal = { account: current.name, kind: 'pat', labels: labelsOf(current.identity), credentialId: rec.id, reusableUntil: Math.min(rec.expiresAt, this.access.nextCheckAt(current)) };
    if (rec.restriction) principal.restriction = rec.restriction;
    return principal;
  }
}
