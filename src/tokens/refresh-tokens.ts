import type { Principal } from '../model/principal.js';
import type { Store } from '../store/store.js';
import { randomBase62, sha256Hex } from '../util/secret.js';

export const REFRESH_PREFIX = 'berth_rt_';

interface RefreshRecord {
  principal: Principal;
  expiresAt: number;
  /** The `service` the token was issued for; it buys tokens for that service only. Absent on older records. */
  service?: string;
}

const key = (hash: string) => `rt:${hash}`;
const byCredential = (id: string) => `rt-by-cred:${id}`;

/**
 * OAuth2 refresh tokens handed to `docker login` (it keeps them as its identity token). Random,
 * stored only as a SHA-256 hash, expiring; those issued from a PAT are indexed by it so revoking
 * the PAT revokes them too.
 */
export class RefreshTokens {
  constructor(
    private readonly store: Store,
    private readonly ttlSeconds: number,
  ) {}

  async issue(principal: Principal, service: string): Promise<string> {
    const token = REFRESH_PREFIX + randomBase62(40);
    const hash = sha256Hex(token);
    const rec: RefreshRecord = { principal, expiresAt: Date.now() + this.ttlSeconds * 1000, service };
    await this.store.set(key(hash), JSON.stringify(rec), this.ttlSeconds);
    if (principal.credentialId) await this.store.sadd(byCredential(principal.credentialId), hash);
    return token;
  }

  /** The principal the token was issued to and for which service, or null when unknown, expired or revoked. */
  async lookup(token: string): Promise<{ principal: Principal; service: string | undefined } | null> {
    if (!token.startsWith(REFRESH_PREFIX) || token.length > 100) return null;
    const raw = await this.store.get(key(sha256Hex(token)));
    if (!raw) return null;
    const rec = JSON.parse(raw) as RefreshRecord;
    if (rec.expiresAt <= Date.now()) return null;
    return { principal: rec.principal, service: rec.service };
  }

  async revoke(token: string): Promise<boolean> {
    return this.store.del(key(sha256Hex(token)));
  }

  async revokeForCredential(credentialId: string): Promise<void> {
    for (const hash of await this.store.smembers(byCredential(credentialId))) await this.store.del(key(hash));
    await this.store.del(byCredential(credentialId));
  }
}
