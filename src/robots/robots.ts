import type { Restriction } from '../model/principal.js';
import { restrictionPatternProblem } from '../policy/pattern.js';
import type { Store } from '../store/store.js';
import { constantTimeEqual, sha256Hex } from '../util/secret.js';
import { checkSecretShape, mintSecret } from '../tokens/secret-format.js';

export const ROBOT_PREFIX = 'berth_rbt_';
export const ROBOT_NAMESPACE = 'robot:';
export const ROBOT_REVOKED_CHANNEL = 'robot-changed';

export interface RobotRecord {
  /** Always `robot:<short name>`; the registry account and the Basic user name. */
  name: string;
  owner: string;
  description: string;
  restriction: Restriction;
  createdAt: number;
  expiresAt: number | null;
  disabled: boolean;
  /** Where it came from: config robots cannot be changed through the API. */
  source: 'api' | 'config';
  /** SHA-256 of the current secret. */
  secretHash: string;
}

export interface RobotUsage {
  at: number;
  from: string;
}

/** Why a robot operation was refused; src/http/errors.ts says what each means in HTTP. */
export type RobotErrorReason = 'invalid' | 'not_found' | 'conflict';

export class RobotError extends Error {
  constructor(
    readonly reason: RobotErrorReason,
    message: string,
  ) {
    super(message);
  }
}

const K = {
  rec: (name: string) => `robot:${name}`,
  bySecret: (hash: string) => `robot-secret:${hash}`,
  all: 'robots-all',
  used: (name: string) => `robot-used:${name}`,
};

const SHORT_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export function robotName(input: string): string {
  const short = input.startsWith(ROBOT_NAMESPACE) ? input.slice(ROBOT_NAMESPACE.length) : input;
  if (!SHORT_NAME.test(short)) throw new RobotError('invalid', 'robot names are 1-63 characters: lowercase letters, digits, ".", "_", "-"');
  return ROBOT_NAMESPACE + short;
}

function validRestriction(r: Restriction): Restriction {
  if (!r.repositories.length) throw new RobotError('invalid', 'a robot needs 1 or more repository patterns (e.g. "apps/web", "team-a/**")');
  for (const p of r.repositories) {
    const problem = restrictionPatternProblem(p);
    if (problem) throw new RobotError('invalid', problem);
  }
  if (!r.actions.length || r.actions.some((a) => !['pull', 'push', 'delete', '*'].includes(a))) throw new RobotError('invalid', 'robot actions must be among pull, push, delete, *');
  return { repositories: [...r.repositories], actions: [...new Set(r.actions)] };
}

/**
 * Robot accounts for automation: a fixed restriction, an optional expiry, a secret stored as a
 * hash. Robots declared in config live in memory (their secret hash comes from config); the rest
 * live in the store.
 */
export class Robots {
  private readonly declared = new Map<string, RobotRecord>();
  private readonly declaredBySecret = new Map<string, string>();

  constructor(
    private readonly store: Store,
    declared: readonly Omit<RobotRecord, 'source' | 'createdAt' | 'disabled' | 'owner'>[] = [],
    /** Ends refresh tokens issued to a robot whose secret was rotated, or that was disabled or deleted. */
    private readonly onRevoke: (name: string) => Promise<void> = async () => {},
  ) {
    for (const d of declared) {
      const rec: RobotRecord = { ...d, source: 'config', createdAt: 0, disabled: false, owner: 'config' };
      this.declared.set(rec.name, rec);
      this.declaredBySecret.set(rec.secretHash, rec.name);
    }
  }

  static shapeOk(secret: string): boolean {
    return checkSecretShape(ROBOT_PREFIX, secret) === 'ok';
  }

  async get(name: string): Promise<RobotRecord | null> {
    const d = this.declared.get(name);
    if (d) return d;
    const raw = await this.store.get(K.rec(name));
    return raw ? (JSON.parse(raw) as RobotRecord) : null;
  }

  /** The robot a secret belongs to, if it is current (not rotated away). */
  async bySecret(secret: string): Promise<RobotRecord | null> {
    const hash = sha256Hex(secret);
    const declaredName = this.declaredBySecret.get(hash);
    if (declaredName) return this.declared.get(declaredName)!;
    const name = await this.store.get(K.bySecret(hash));
    if (!name) return null;
    const rec = await this.get(name);
    return rec && constantTimeEqual(rec.secretHash, hash) ? rec : null;
  }

  async list(): Promise<(RobotRecord & { lastUsed?: RobotUsage })[]> {
    const names = await this.store.smembers(K.all);
    const raws = await this.store.mget(names.map(K.rec));
    const usage = await this.store.mget([...this.declared.keys(), ...names].map(K.used));
    const recs = [...this.declared.values(), ...raws.filter((r): r is string => Boolean(r)).map((r) => JSON.parse(r) as RobotRecord)];
    return recs
      .map((r, i) => (usage[i] ? { ...r, lastUsed: JSON.parse(usage[i]!) as RobotUsage } : r))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async create(input: { name: string; owner: string; description?: string; restriction: Restriction; expiresAt?: number | null }): Promise<{ secret: string; record: RobotRecord }> {
    const name = robotName(input.name);
    if (this.declared.has(name)) throw new RobotError('conflict', `${name} is declared in the configuration`);
    const secret = mintSecret(ROBOT_PREFIX);
    const record: RobotRecord = {
      name,
      owner: input.owner,
      description: (input.description ?? '').slice(0, 200),
      restriction: validRestriction(input.restriction),
      createdAt: Date.now(),
      expiresAt: input.expiresAt ?? null,
      disabled: false,
      source: 'api',
      secretHash: sha256Hex(secret),
    };
    if (!(await this.store.setIfAbsent(K.rec(name), JSON.stringify(record)))) throw new RobotError('conflict', `${name} exists already`);
    await this.store.set(K.bySecret(record.secretHash), name);
    await this.store.sadd(K.all, name);
    return { secret, record };
  }

  private async mutable(name: string): Promise<RobotRecord> {
    if (this.declared.has(name)) throw new RobotError('conflict', `${name} is declared in the configuration: change it there`);
    const rec = await this.get(name);
    if (!rec) throw new RobotError('not_found', `no robot ${name}`);
    return rec;
  }

  /** A new secret; the old one stops working at once. */
  async rotate(name: string): Promise<{ secret: string; record: RobotRecord }> {
    const rec = await this.mutable(name);
    const secret = mintSecret(ROBOT_PREFIX);
    const next = { ...rec, secretHash: sha256Hex(secret) };
    await this.store.set(K.rec(name), JSON.stringify(next));
    await this.store.set(K.bySecret(next.secretHash), name);
    await this.store.del(K.bySecret(rec.secretHash));
    await this.onRevoke(name);
    await this.store.publish(ROBOT_REVOKED_CHANNEL, name);
    return { secret, record: next };
  }

  async setDisabled(name: string, disabled: boolean): Promise<RobotRecord> {
    const rec = await this.mutable(name);
    const next = { ...rec, disabled };
    await this.store.set(K.rec(name), JSON.stringify(next));
    if (disabled) await this.onRevoke(name);
    await this.store.publish(ROBOT_REVOKED_CHANNEL, name);
    return next;
  }

  async delete(name: string): Promise<void> {
    const rec = await this.mutable(name);
    await this.store.del(K.bySecret(rec.secretHash));
    await this.store.del(K.rec(name));
    await this.store.del(K.used(name));
    await this.store.srem(K.all, name);
    await this.onRevoke(name);
    await this.store.publish(ROBOT_REVOKED_CHANNEL, name);
  }

  touch(name: string, from: string): void {
    this.store.set(K.used(name), JSON.stringify({ at: Date.now(), from } satisfies RobotUsage)).catch(() => {});
  }
}
