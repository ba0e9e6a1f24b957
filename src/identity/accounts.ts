import type { Store } from '../store/store.js';
import type { Sealer } from '../util/sealed.js';
import type { Identity } from '../model/identity.js';
import { AccountNameError, LOCAL_CONNECTOR_ID, type AccountNamespace } from '../model/account-names.js';

/** A person known to Berth: the identity from their last sign-in or re-check. */
export interface AccountRecord {
  /** `connector:subject`, stable across username changes at the provider. */
  key: string;
  identity: Omit<Identity, 'upstream'>;
  /**
   * The registry account name (the connector's prefix + the username it was bound under). Bound to
   * this subject for good: a later subject reporting the same username is refused. Absent on records
   * written before names were bound; see Accounts.nameOf.
   */
  name?: string;
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

const nameKey = (name: string) => `acctname:${name.toLowerCase()}`;
/** Published when an account's name, groups or standing change, so replicas drop remembered answers. */
export const ACCOUNT_CHANGED_CHANNEL = 'account-changed';

export class Accounts {
  constructor(
    private readonly store: Store,
    private readonly sealer: Sealer,
    readonly namespace: AccountNamespace,
  ) {}

  /**
   * The account's registry name, re-validated against the namespace as it stands now: a static user
   * added after a person of the unprefixed connector signed in with that name takes the name back.
   * Throws AccountNameError.
   */
  nameOf(rec: Pick<AccountRecord, 'identity' | 'name'>): string {
    const { connector, username } = rec.identity;
    const expected = this.namespace.connectorAccount(connector, username);
    if (rec.name === undefined || rec.name === expected || connector === LOCAL_CONNECTOR_ID) return expected;
    // The provider reports a new username, but the account kept the name it was bound under.
    const prefix = this.namespace.prefixOf(connector);
    if (!rec.name.startsWith(prefix)) throw new AccountNameError('the account name no longer belongs to this sign-in source');
    this.namespace.connectorAccount(connector, rec.name.slice(prefix.length));
    return rec.name;
  }

  /**
   * Binds a name to an account key once and for all (case-insensitively, as GitHub logins are).
   * True when the name is this account's (newly or already), false when another subject holds it.
   */
  private async bindName(name: string, key: string): Promise<boolean> {
    if (await this.store.setIfAbsent(nameKey(name), key)) return true;
    return (await this.store.get(nameKey(name))) === key;
  }

  async get(key: string): Promise<AccountRecord | null> {
    const raw = await this.store.get(`acct:${key}`);
    return raw ? (JSON.parse(raw) as AccountRecord) : null;
  }

  async save(rec: AccountRecord): Promise<void> {
    await this.store.set(`acct:${rec.key}`, JSON.stringify(rec));
  }

  /**
   * Records a successful sign-in or re-check, replacing groups and upstream tokens. The username
   * becomes the account name only if the namespace allows it and no other subject holds it; with
   * `previous` (a re-check), a username the account cannot have keeps the previous name instead.
   * Throws AccountNameError.
   */
  async recordLogin(identity: Identity, now = Date.now(), previous?: AccountRecord): Promise<AccountRecord> {
    const { upstream, ...reported } = identity;
    const key = accountKey(identity);
    // Groups are qualified by their source here, once, so every reader (ACL labels, admin checks,
    // pages) sees the same names.
    const visible = identity.connector === LOCAL_CONNECTOR_ID ? reported : { ...reported, groups: this.namespace.connectorGroups(identity.connector, reported.groups) };
    let name: string;
    try {
      name = this.namespace.connectorAccount(identity.connector, identity.username);
      if (!(await this.bindName(name, key))) throw new AccountNameError(`The account name "${name}" already belongs to another person (someone who used this username before). Ask your administrator.`);
    } catch (e) {
      if (!(e instanceof AccountNameError) || !previous) throw e;
      name = this.nameOf(previous);
    }
    const rec: AccountRecord = { key, identity: visible, name, status: 'active', loginAt: now, checkedAt: now };
    const before = previous ?? (await this.get(key));
    // A new name or other groups: answers and verifications remembered under the old ones must go.
    if (before && (before.name !== name || JSON.stringify(before.identity.groups) !== JSON.stringify(visible.groups))) {
      await this.store.publish(ACCOUNT_CHANGED_CHANNEL, key).catch(() => {});
    }
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
