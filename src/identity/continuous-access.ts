import type { Logger } from 'pino';
import { isPasswordConnector, type CallbackConnector, type Connector } from '../connectors/connector.js';
import { type AccountRecord, type Accounts } from './accounts.js';
import { IdentityRevokedError } from '../model/identity.js';
import { AccountNameError, LOCAL_CONNECTOR_ID } from '../model/account-names.js';
import type { Identity } from '../model/identity.js';
import { AuthenticationError } from '../model/principal.js';

export interface ContinuousAccessOptions {
  ttlSeconds: number;
  graceSeconds: number;
}

export const LOCAL_CONNECTOR = LOCAL_CONNECTOR_ID;

/** An account as it stands now: re-checked when due, and its registry name validated against the namespace. */
export type CurrentAccount = AccountRecord & { name: string };
export { ACCOUNT_CHANGED_CHANNEL } from './accounts.js';

/**
 * Keeps an account's groups current while its PATs are used. After `ttl` the provider is asked again
 * (OIDC refresh token, GitHub API with the stored OAuth token); a user the provider no longer
 * accepts loses access at once; an unreachable provider is tolerated for `grace`, then access fails
 * closed. Accounts without upstream credentials keep their sign-in groups.
 */
export class ContinuousAccess {
  private readonly inFlight = new Map<string, Promise<AccountRecord>>();

  constructor(
    private readonly accounts: Accounts,
    /** Every sign-in source by id: the configured connectors and the local (password) one. */
    private readonly connectors: ReadonlyMap<string, Connector>,
    private readonly opts: ContinuousAccessOptions,
    private readonly log: Logger,
    private readonly onRevoked: (rec: AccountRecord) => void = () => {},
  ) {}

  canRecheck(rec: AccountRecord): boolean {
    const c = this.connectors.get(rec.identity.connector);
    if (!c) return false;
    return isPasswordConnector(c) || Boolean(c.refresh && rec.upstreamSealed);
  }

  /** When the account's groups are next due for a re-check (ms epoch); Infinity when never (or on every use). */
  nextCheckAt(rec: AccountRecord): number {
    const c = this.connectors.get(rec.identity.connector);
    if (!c || isPasswordConnector(c) || !this.canRecheck(rec)) return Infinity;
    return rec.checkedAt + this.opts.ttlSeconds * 1000;
  }

  /** The account as it stands now, re-checked at the provider when due. Throws AuthenticationError. */
  async current(rec: AccountRecord, now = Date.now()): Promise<CurrentAccount> {
    const checked = await this.checked(rec, now);
    try {
      return { ...checked, name: this.accounts.nameOf(checked) };
    } catch (e) {
      if (e instanceof AccountNameError) throw new AuthenticationError(e.message);
      throw e;
    }
  }

  private async checked(rec: AccountRecord, now: number): Promise<AccountRecord> {
    if (rec.status === 'revoked') throw new AuthenticationError(`account disabled: ${rec.revokedReason ?? 'revoked by the identity provider'}`);
    const connector = this.connectors.get(rec.identity.connector);
    if (!connector) throw new AuthenticationError(`sign-in connector ${rec.identity.connector} is no longer configured`);
    if (isPasswordConnector(connector)) return this.live(rec, connector.current.bind(connector));
    if (!connector.refresh || !rec.upstreamSealed) return rec;
    if (now - rec.checkedAt < this.opts.ttlSeconds * 1000) return rec;
    let p = this.inFlight.get(rec.key);
    if (!p) {
      p = this.recheck(rec, connector, now).finally(() => this.inFlight.delete(rec.key));
      this.inFlight.set(rec.key, p);
    }
    return p;
  }

  /** A source read on every use (the static users): gone from the configuration means gone now. */
  private live(rec: AccountRecord, current: (identity: Identity) => Identity): AccountRecord {
    try {
      const fresh = current(this.accounts.withUpstream(rec));
      return { ...rec, identity: { ...rec.identity, groups: fresh.groups, claims: fresh.claims ?? {} } };
    } catch (e) {
      if (e instanceof IdentityRevokedError) throw new AuthenticationError(e.message);
      throw e;
    }
  }

  private async recheck(rec: AccountRecord, connector: CallbackConnector, now: number): Promise<AccountRecord> {
    const started = Date.now();
    try {
      const fresh = await connector.refresh!(this.accounts.withUpstream(rec));
      const next = await this.accounts.recordLogin(fresh, now, rec);
      next.loginAt = rec.loginAt;
      await this.accounts.save(next);
      this.log.info({ audit: 'recheck', account: rec.identity.username, connector: connector.id, groups: fresh.groups, ms: Date.now() - started }, 'identity re-checked at provider');
      return next;
    } catch (e) {
      // The account's name no longer belongs to its source (a static user of that name was added).
      if (e instanceof AccountNameError) throw new AuthenticationError(e.message);
      if (e instanceof IdentityRevokedError) {
        const revoked: AccountRecord = { ...rec, status: 'revoked', revokedReason: e.message };
        await this.accounts.save(revoked);
        this.onRevoked(revoked);
        this.log.warn({ audit: 'recheck', account: rec.identity.username, connector: connector.id, outcome: 'revoked', reason: e.message }, 'identity provider no longer accepts user');
        throw new AuthenticationError(`access revoked by the identity provider: ${e.message}`);
      }
      const age = now - rec.checkedAt;
      if (age < (this.opts.ttlSeconds + this.opts.graceSeconds) * 1000) {
        this.log.warn({ account: rec.identity.username, connector: connector.id, err: (e as Error).message }, 'identity provider unreachable; using last known groups within grace');
        return rec;
      }
      this.log.warn({ account: rec.identity.username, connector: connector.id, err: (e as Error).message }, 'identity provider unreachable past grace; failing closed');
      throw new AuthenticationError('cannot confirm your account with the identity provider right now; try again later');
    }
  }
}
