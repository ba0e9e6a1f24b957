import type { Store } from '../store/store.js';
import type { Sealer } from '../util/sealed.js';
import type { Identity } from './identity.js';

/** A person known to Berth: the identity from their last sign-in or re-check. */
export interface AccountRecord {
  /** `connector:subject`, stable across username changes at the provider. */
  key: string;
  identity: Omit<Identity, 'upstream'>;
  /** Identity.upstream, AES-GCM sealed. */
  upstreamSealed?: string;
  status: 'active' | 'revoked';
  revokedReason?: string;
  loginAt: number;
  /** When the groups were last confirmed by the provider (ms). */
  checkedAt: number;
}

export const accountKey = (identity: Pick<Identity, 'connector' | 'subject'>) => `${identity.connector}:${identity.subject}`;

/** Labels an identity contributes to ACL matching. */
export function labelsOf(identity: Omit<Identity, 'upstream'>): Record<string, string[]> {
  const labels: Record<string, string[]> = {};
  // Static users carry docker_auth-style labels of their own.
  const own = identity.claims?.labels;
  if (own && typeof own === 'object') for (const [k, v] of Object.entries(own as Record<string, string[]>)) labels[k] = [...v];
  labels.groups = [...new Set([...(labels.groups ?? []), ...identity.groups])];
  labels.connector = [identity.connector];
  if (identity.email) labels.email = [identity.email];
  return labels;
}

export class Accounts {
  constructor(
    private readonly store: Store,
    private readonly sealer: Sealer,
  ) {}

  async get(key: string): Promise<AccountRecord | null> {
    const raw = await this.store.get(`acct:${key}`);
    return raw ? (JSON.parse(raw) as AccountRecord) : null;
  }

  async save(rec: AccountRecord): Promise<void> {
    await this.store.set(`acct:${rec.key}`, JSON.stringify(rec));
  }

  /** Records a successful sign-in, replacing groups and upstream tokens. */
  async recordLogin(identity: Identity, now = Date.now()): Promise<AccountRecord> {
    const { upstream, ...visible } = identity;
    const rec: AccountRecord = { key: accountKey(identity), identity: visible, status: 'active', loginAt: now, checkedAt: now };
    if (upstream && Object.keys(upstream).length) rec.upstreamSealed = this.sealer.seal(JSON.stringify(upstream));
    await this.save(rec);
    return rec;
  }

  upstreamOf(rec: AccountRecord): Record<string, string> | undefined {
    if (!rec.upstreamSealed) return undefined;
    try {
      return JSON.parse(this.sealer.open(rec.upstreamSealed)) as Record<string, string>;
    } catch {
      // Sealed with a key that has since changed: treat as no upstream credentials.
      return undefined;
    }
  }

  withUpstream(rec: AccountRecord): Identity {
    const upstream = this.upstreamOf(rec);
    return upstream ? { ...rec.identity, upstream } : { ...rec.identity };
  }
}
