import { hash, randomBytes } from 'node:crypto';

export interface ReusableAnswer {
  token: string;
  /** The GET answer's JSON up to `expires_in`'s value, serialized once: a hit only appends numbers. */
  jsonHead?: string;
  /** `"issued_at":"…"}`, also serialized once. */
  jsonTail?: string;
  issuedAt: number;
  /** Seconds since epoch at which the registry token expires. */
  expiresAt: number;
  /** Seconds since epoch after which the answer may no longer be reused (credential expiry, re-check due). */
  reusableUntil: number;
  account: string;
  kind: string;
  /** The audit summary of the original decision, logged again for each reuse. */
  decisions: unknown;
  outcome: 'granted' | 'partial' | 'denied';
}

const MAX_ENTRIES = 10_000;

/**
 * One `docker push` asks for the same token several times within a second or two (one per blob
 * and manifest request). A GET that repeats an earlier one byte for byte — query, credentials,
 * client address — within `windowSeconds` gets the same signed token back without repeating the
 * lookups, the ACL and the signature. The key is a salted hash (per-process salt), so no
 * credential sits in memory in clear. Anything that can change an answer (a PAT or robot revoked,
 * an account changed, a reload) clears the whole cache, on every replica through the store's
 * pub/sub.
 */
export class TokenReuse {
  private readonly salt = randomBytes(32).toString('latin1');
  private readonly entries = new Map<string, ReusableAnswer>();

  constructor(private readonly windowSeconds: number) {}

  keyFor(query: string, authorization: string, ip: string): string {
    // A salted one-shot SHA-256: collision-resistant and not reversible to the credential, and
    // crypto.hash skips the Hash object an HMAC or createHash would allocate on every request.
    return hash('sha256', `${this.salt}${query}\n${authorization}\n${ip}`, 'base64');
  }

  get(key: string, now: number): ReusableAnswer | undefined {
    if (this.windowSeconds <= 0) return undefined;
    const a = this.entries.get(key);
    if (!a) return undefined;
    // Reuse only young answers, and never hand out a token close to its expiry.
    if (now - a.issuedAt >= this.windowSeconds || now >= a.reusableUntil || a.expiresAt - now < 60) {
      this.entries.delete(key);
      return undefined;
    }
    return a;
  }

  set(key: string, answer: ReusableAnswer): void {
    if (this.windowSeconds <= 0 || answer.reusableUntil <= answer.issuedAt) return;
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    const token = JSON.stringify(answer.token);
    answer.jsonHead = `{"token":${token},"access_token":${token},"expires_in":`;
    answer.jsonTail = `,"issued_at":"${new Date(answer.issuedAt * 1000).toISOString()}"}`;
    this.entries.set(key, answer);
  }

  /** The GET response body for a hit at `now` (same fields as a fresh answer). */
  static body(a: ReusableAnswer, now: number): string {
    return `${a.jsonHead}${a.expiresAt - now}${a.jsonTail}`;
  }

  clear(): void {
    this.entries.clear();
  }
}
