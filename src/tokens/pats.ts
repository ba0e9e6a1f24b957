import { randomBytes } from 'node:crypto';
import type { Restriction } from '../model/principal.js';
import { restrictionPatternProblem } from '../policy/pattern.js';
import type { Store } from '../store/store.js';
import { sha256Hex } from '../util/secret.js';
import type { RefreshTokens } from './refresh-tokens.js';
import { checkSecretShape, mintSecret, type ShapeCheck } from './secret-format.js';

export const PAT_PREFIX = 'berth_pat_';

export interface PatRecord {
  id: string;
  /** AccountRecord key (`connector:subject`). */
  owner: string;
  /** The username the PAT must be presented with. */
  username: string;
  name: string;
  createdAt: number;
  expiresAt: number;
  restriction?: Restriction;
}

export interface PatUsage {
  at: number;
  from: string;
}

export interface PatPolicy {
  defaultTTLSeconds: number;
  maxTTLSeconds: number;
  maxPerUser: number;
}

export class PatPolicyError extends Error {
  override name = 'PatPolicyError';
}

const K = {
  byHash: (hash: string) => `pat:${hash}`,
  hashById: (id: string) => `pat-id:${id}`,
  ofOwner: (owner: string) => `pats-of:${owner}`,
  all: 'pats-all',
  used: (id: string) => `pat-used:${id}`,
};

const USAGE_WRITE_INTERVAL_MS = 60_000;
export const PAT_REVOKED_CHANNEL = 'pat-revoked';

/**
 * Personal access tokens. Only SHA-256 of the secret is stored, as the key of its record, so a
 * lookup is one GET. Records expire with the token (the store drops them), and revocation also
 * publishes the id so other replicas drop any cached copy.
 */
export class Pats {
  private readonly lastUsageWrite = new Map<string, number>();

  constructor(
    private readonly store: Store,
    readonly policy: PatPolicy,
    private readonly refreshTokens: RefreshTokens,
  ) {}

  static shape(secret: string): ShapeCheck {
    return checkSecretShape(PAT_PREFIX, secret);
  }

  async create(input: { owner: string; username: string; name: string; ttlSeconds?: number; restriction?: Restriction }, now = Date.now()): Promise<{ secret: string; record: PatRecord }> {
    const name = input.name.trim();
    if (!name || name.length > 64) throw new PatPolicyError('name must be 1 to 64 characters');
    const ttl = input.ttlSeconds ?? this.policy.defaultTTLSeconds;
    if (!Number.isInteger(ttl) || ttl <= 0) throw new PatPolicyError('expiry must be a positive number of seconds');
    if (ttl > this.policy.maxTTLSeconds) throw new PatPolicyError(`expiry may be at most ${Math.floor(this.policy.maxTTLSeconds / 86400)} days`);
    if (input.restriction) {
      const r = input.restriction;
      if (r.repositories.length === 0 || r.repositories.length > 20) throw new PatPolicyError('restriction needs 1 to 20 repository patterns');
      for (const p of r.repositories) {
        const problem = restrictionPatternProblem(p);
        if (problem) throw new PatPolicyError(problem);
      }
      if (r.actions.length === 0 || r.actions.some((a) => !['pull', 'push', 'delete', '*'].includes(a))) throw new PatPolicyError('restriction actions must be among pull, push, delete, *');
    }
    const full = () => new PatPolicyError(`at most ${this.policy.maxPerUser} tokens per user: revoke one first`);
    // Prunes ids of expired tokens from the owner's set, so that what the atomic add below counts is live.
    if ((await this.list(input.owner, now)).length >= this.policy.maxPerUser) throw full();
    const secret = mintSecret(PAT_PREFIX);
    const hash = sha256Hex(secret);
    const record: PatRecord = { id: randomBytes(9).toString('base64url'), owner: input.owner, username: input.username, name, createdAt: now, expiresAt: now + ttl * 1000 };
    if (input.restriction) record.restriction = input.restriction;
    // Records first, then the slot: an id in the owner's set always has its records, so a parallel
    // list() never prunes (and frees) the slot of a token still being created. Nobody holds the
    // secret until we return it, so records without a slot are harmless and removed on refusal.
    await this.store.set(K.byHash(hash), JSON.stringify(record), ttl);
    await this.store.set(K.hashById(record.id), hash, ttl);
    if (!(await this.store.saddIfBelow(K.ofOwner(input.owner), record.id, this.policy.maxPerUser))) {
      await this.store.del(K.byHash(hash));
      await this.store.del(K.hashById(record.id));
      throw full();
    }
    await this.store.sadd(K.all, record.id);
    return { secret, record };
  }

  /** The record for a presented secret (shape already checked), or null: unknown, expired, revoked. */
  async lookup(secret: string, now = Date.now()): Promise<PatRecord | null> {
    const raw = await this.store.get(K.byHash(sha256Hex(secret)));
    if (!raw) return null;
    const rec = JSON.parse(raw) as PatRecord;
    return rec.expiresAt > now ? rec : null;
  }

  async byId(id: string, now = Date.now()): Promise<PatRecord | null> {
    const hash = await this.store.get(K.hashById(id));
    if (!hash) return null;
    const raw = await this.store.get(K.byHash(hash));
    if (!raw) return null;
    const rec = JSON.parse(raw) as PatRecord;
    return rec.expiresAt > now ? rec : null;
  }

  /** Live tokens of an owner, newest first, with last use; ids of expired ones are pruned. */
  async list(owner: string, now = Date.now()): Promise<(PatRecord & { lastUsed?: PatUsage })[]> {
    const ids = await this.store.smembers(K.ofOwner(owner));
    if (ids.length === 0) return [];
    const hashes = await this.store.mget(ids.map(K.hashById));
    const live: { id: string; hash: string }[] = [];
    for (const [i, id] of ids.entries()) {
      const h = hashes[i];
      if (h) live.push({ id, hash: h });
      else await this.store.srem(K.ofOwner(owner), id);
    }
    const recs = await this.store.mget(live.map((l) => K.byHash(l.hash)));
    const usage = await this.store.mget(live.map((l) => K.used(l.id)));
    const out: (PatRecord & { lastUsed?: PatUsage })[] = [];
    recs.forEach((raw, i) => {
      if (!raw) return;
      const rec = JSON.parse(raw) as PatRecord;
      if (rec.expiresAt <= now || rec.owner !== owner) return;
      const u = usage[i];
      out.push(u ? { ...rec, lastUsed: JSON.parse(u) as PatUsage } : rec);
    });
    return out.sort((a, b) => b.createdAt - a.createdAt);
  }

  /** Live PATs across all users (for the metrics gauge); prunes ids of expired ones. */
  async countActive(): Promise<number> {
    const ids = await this.store.smembers(K.all);
    if (ids.length === 0) return 0;
    const hashes = await this.store.mget(ids.map(K.hashById));
    let n = 0;
    for (const [i, h] of hashes.entries()) {
      if (h) n++;
      else await this.store.srem(K.all, ids[i]!);
    }
    return n;
  }

  /** Revokes one of owner's tokens; false when there is no such live token. */
  async revoke(owner: string, id: string): Promise<boolean> {
    const hash = await this.store.get(K.hashById(id));
    if (!hash) return false;
    const raw = await this.store.get(K.byHash(hash));
    const rec = raw ? (JSON.parse(raw) as PatRecord) : null;
    if (!rec || rec.owner !== owner) return false;
    await this.store.del(K.byHash(hash));
    await this.store.del(K.hashById(id));
    await this.store.del(K.used(id));
    await this.store.srem(K.ofOwner(owner), id);
    await this.store.srem(K.all, id);
    await this.refreshTokens.revokeForCredential(id);
    await this.store.publish(PAT_REVOKED_CHANNEL, id);
    return true;
  }

  async revokeAll(owner: string): Promise<string[]> {
    const ids = await this.store.smembers(K.ofOwner(owner));
    const done: string[] = [];
    for (const id of ids) if (await this.revoke(owner, id)) done.push(id);
    // No DEL of the owner's set: revoke() removed each id, and a DEL would also drop a token created
    // meanwhile, which then escaped both the list and maxPerUser. Expired ids are pruned by list().
    return done;
  }

  /**
   * Records last use at most once a minute per token and never on the request's critical path;
   * a separate key, so a late write can never resurrect a revoked record.
   */
  touch(rec: PatRecord, from: string, now = Date.now()): void {
    const last = this.lastUsageWrite.get(rec.id);
    if (last !== undefined && now - last < USAGE_WRITE_INTERVAL_MS) return;
    if (this.lastUsageWrite.size > 50_000) this.lastUsageWrite.clear();
    this.lastUsageWrite.set(rec.id, now);
    const ttl = Math.max(1, Math.ceil((rec.expiresAt - now) / 1000));
    this.store.set(K.used(rec.id), JSON.stringify({ at: now, from } satisfies PatUsage), ttl).catch(() => {});
  }
}
