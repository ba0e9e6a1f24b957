import type { Store } from '../../store/store.js';
import { checkSecretShape, mintSecret } from '../../tokens/secret-format.js';
import type { Sealer } from '../../util/sealed.js';
import { sha256Hex } from '../../util/secret.js';
import { generateUserCode, normalizeUserCode } from './user-code.js';

export const DEVICE_CODE_PREFIX = 'berth_dc_';

export interface DeviceFlowSettings {
  /** Lifetime of a device code and its user code. */
  expiresInSeconds: number;
  /** Minimum seconds between polls; slow_down adds 5 for that device code. */
  intervalSeconds: number;
  /** Name of the PAT created at approval. */
  tokenName: string;
  /** Failed user-code entries allowed per browser session within `attemptWindowSeconds`. */
  maxFailedEntries: number;
  /** Failed user-code entries allowed per account (all its sessions) within the window. */
  maxFailedEntriesPerAccount: number;
  attemptWindowSeconds: number;
  /** Device codes one address may request per minute (each one holds store space until it expires). */
  issuesPerMinutePerIP: number;
}

export const DEFAULT_DEVICE_SETTINGS: DeviceFlowSettings = {
  expiresInSeconds: 600,
  intervalSeconds: 5,
  tokenName: 'credential helper (device)',
  maxFailedEntries: 10,
  maxFailedEntriesPerAccount: 30,
  attemptWindowSeconds: 900,
  issuesPerMinutePerIP: 60,
};

/** What was asked for, kept under the device code's hash. */
export interface DeviceRecord {
  userCode: string;
  clientId: string | null;
  createdAt: number;
  expiresAt: number;
  interval: number;
  requestedFrom: string;
}

type DeviceResult =
  | { status: 'denied'; by: string }
  | { status: 'approved'; by: string; owner: string; username: string; tokenId: string; tokenExpiresAt: number; sealedSecret: string };

interface PollState {
  at: number;
  interval: number;
}

export type PollOutcome =
  | { kind: 'invalid_grant'; why: string }
  | { kind: 'expired'; orphan?: { owner: string; tokenId: string } }
  | { kind: 'slow_down'; interval: number }
  | { kind: 'pending' }
  | { kind: 'denied' }
  | { kind: 'approved'; secret: string; username: string; tokenId: string; tokenExpiresAt: number };

// Kept a while past expiry so that a late poll hears "expired" rather than "unknown".
const EXPIRED_GRACE_SECONDS = 300;
// Timers fire a little early now and then; a client keeping the interval must never see slow_down.
const POLL_TOLERANCE_MS = 250;

const K = {
  device: (hash: string) => `device:${hash}`,
  user: (code: string) => `device-user:${code}`,
  result: (hash: string) => `device-result:${hash}`,
  poll: (hash: string) => `device-poll:${hash}`,
  triesOfSession: (id: string) => `device-tries:${id}`,
  triesOfAccount: (key: string) => `device-tries-acct:${sha256Hex(key)}`,
  issues: (ip: string) => `device-issue:${ip}`,
};

export interface PendingGrant {
  hash: string;
  record: DeviceRecord;
}

/**
 * RFC 8628 device authorizations in the shared store, so any replica can answer any step. The device
 * code is stored only as its hash; the PAT minted at approval waits sealed until the device's next
 * poll takes it (atomically, so it is handed out once).
 */
export class DeviceGrants {
  constructor(
    private readonly store: Store,
    private readonly sealer: Sealer,
    readonly settings: DeviceFlowSettings,
  ) {}

  /** False when `ip` asked for too many codes in the last minute. */
  async issueAllowed(ip: string): Promise<boolean> {
    return (await this.store.incr(K.issues(ip), 60)) <= this.settings.issuesPerMinutePerIP;
  }

  async issue(clientId: string | null, requestedFrom: string, now = Date.now()): Promise<{ deviceCode: string; userCode: string; record: DeviceRecord }> {
    const ttl = this.settings.expiresInSeconds;
    const deviceCode = mintSecret(DEVICE_CODE_PREFIX);
    const hash = sha256Hex(deviceCode);
    for (let attempt = 0; attempt < 8; attempt++) {
      const userCode = generateUserCode();
      // A live user code must point at exactly one device.
      if (!(await this.store.setIfAbsent(K.user(userCode), hash, ttl))) continue;
      const record: DeviceRecord = { userCode, clientId, createdAt: now, expiresAt: now + ttl * 1000, interval: this.settings.intervalSeconds, requestedFrom };
      await this.store.set(K.device(hash), JSON.stringify(record), ttl + EXPIRED_GRACE_SECONDS);
      return { deviceCode, userCode, record };
    }
    throw new Error('could not find a free user code');
  }

  /** The pending grant behind a user code, without using the code up. */
  async findByUserCode(input: unknown, now = Date.now()): Promise<PendingGrant | null> {
    const code = normalizeUserCode(input);
    if (!code) return null;
    const hash = await this.store.get(K.user(code));
    return hash ? this.pending(hash, code, now) : null;
  }

  /** Takes the user code (single use) and returns its pending grant; null when unknown, used or expired. */
  async claimUserCode(input: unknown, now = Date.now()): Promise<PendingGrant | null> {
    const code = normalizeUserCode(input);
    if (!code) return null;
    const hash = await this.store.take(K.user(code));
    return hash ? this.pending(hash, code, now) : null;
  }

  /** Puts a claimed user code back (the approval could not be completed, e.g. the PAT limit was hit). */
  async releaseUserCode(g: PendingGrant, now = Date.now()): Promise<void> {
    const left = Math.floor((g.record.expiresAt - now) / 1000);
    if (left > 0) await this.store.setIfAbsent(K.user(g.record.userCode), g.hash, left);
  }

  private async pending(hash: string, code: string, now: number): Promise<PendingGrant | null> {
    const raw = await this.store.get(K.device(hash));
    if (!raw) return null;
    const record = JSON.parse(raw) as DeviceRecord;
    if (record.userCode !== code || record.expiresAt <= now) return null;
    if (await this.store.get(K.result(hash))) return null;
    return { hash, record };
  }

  private resultTTL(record: DeviceRecord, now: number): number {
    return Math.max(1, Math.ceil((record.expiresAt - now) / 1000) + EXPIRED_GRACE_SECONDS);
  }

  async approve(g: PendingGrant, by: string, pat: { owner: string; username: string; id: string; expiresAt: number; secret: string }, now = Date.now()): Promise<void> {
    const result: DeviceResult = { status: 'approved', by, owner: pat.owner, username: pat.username, tokenId: pat.id, tokenExpiresAt: pat.expiresAt, sealedSecret: this.sealer.seal(pat.secret) };
    await this.store.set(K.result(g.hash), JSON.stringify(result), this.resultTTL(g.record, now));
  }

  async deny(g: PendingGrant, by: string, now = Date.now()): Promise<void> {
    const result: DeviceResult = { status: 'denied', by };
    await this.store.set(K.result(g.hash), JSON.stringify(result), this.resultTTL(g.record, now));
  }

  /** One poll of the token endpoint (RFC 8628 §3.4/3.5). */
  async poll(deviceCode: string, clientId: string | null, now = Date.now()): Promise<PollOutcome> {
    if (checkSecretShape(DEVICE_CODE_PREFIX, deviceCode) !== 'ok') return { kind: 'invalid_grant', why: 'not a device code' };
    const hash = sha256Hex(deviceCode);
    const raw = await this.store.get(K.device(hash));
    if (!raw) return { kind: 'invalid_grant', why: 'unknown or already used device code' };
    const record = JSON.parse(raw) as DeviceRecord;
    if (clientId !== null && record.clientId !== null && clientId !== record.clientId) return { kind: 'invalid_grant', why: 'the device code was issued to another client' };
    if (record.expiresAt <= now) {
      const taken = await this.store.take(K.result(hash));
      await this.forget(hash, record);
      const result = taken ? (JSON.parse(taken) as DeviceResult) : null;
      return result?.status === 'approved' ? { kind: 'expired', orphan: { owner: result.owner, tokenId: result.tokenId } } : { kind: 'expired' };
    }

    const stateRaw = await this.store.get(K.poll(hash));
    const state = stateRaw ? (JSON.parse(stateRaw) as PollState) : null;
    const interval = state?.interval ?? record.interval;
    const ttl = this.resultTTL(record, now);
    if (state && now - state.at < interval * 1000 - POLL_TOLERANCE_MS) {
      const slower = interval + 5;
      await this.store.set(K.poll(hash), JSON.stringify({ at: now, interval: slower } satisfies PollState), ttl);
      return { kind: 'slow_down', interval: slower };
    }
    await this.store.set(K.poll(hash), JSON.stringify({ at: now, interval } satisfies PollState), ttl);

    const resultRaw = await this.store.get(K.result(hash));
    if (!resultRaw) return { kind: 'pending' };
    const result = JSON.parse(resultRaw) as DeviceResult;
    if (result.status === 'denied') return { kind: 'denied' };
    // Two polls racing: only the one whose take succeeds receives the token.
    if (!(await this.store.take(K.result(hash)))) return { kind: 'invalid_grant', why: 'the token for this device code was already issued' };
    await this.forget(hash, record);
    return { kind: 'approved', secret: this.sealer.open(result.sealedSecret), username: result.username, tokenId: result.tokenId, tokenExpiresAt: result.tokenExpiresAt };
  }

  private async forget(hash: string, record: DeviceRecord): Promise<void> {
    await this.store.del(K.device(hash));
    await this.store.del(K.poll(hash));
    const userHash = await this.store.get(K.user(record.userCode));
    if (userHash === hash) await this.store.del(K.user(record.userCode));
  }

  /** True when this session or account has used up its wrong-code allowance. */
  async entryBlocked(sessionId: string, accountKey: string): Promise<boolean> {
    const [s, a] = await this.store.mget([K.triesOfSession(sessionId), K.triesOfAccount(accountKey)]);
    return Number(s ?? 0) >= this.settings.maxFailedEntries || Number(a ?? 0) >= this.settings.maxFailedEntriesPerAccount;
  }

  async recordFailedEntry(sessionId: string, accountKey: string): Promise<void> {
    const w = this.settings.attemptWindowSeconds;
    await this.store.incr(K.triesOfSession(sessionId), w);
    await this.store.incr(K.triesOfAccount(accountKey), w);
  }
}
