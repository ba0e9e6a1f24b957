import { hash, randomBytes } from 'node:crypto';
import type { ScopeDecision } from '../../policy/acl.js';
import { getBody } from './wire.js';

export interface ReusableAnswer {
  /**
   * The token in two parts (SignedToken.header and .rest): the header is the signer's one shared
   * string, so an entry holds only the few hundred bytes that are its own. Every entry outlives
   * several scavenges; with the whole token in it, a stream of new requests promoted about 1.5 kB
   * per request into the old generation.
   */
  header: string;
  rest: string;
  /** `issued_at` as the fresh answer gave it. */
  issuedAtText: string;
  issuedAt: number;
  /** Seconds since epoch at which the registry token expires. */
  expiresAt: number;
  /** Seconds since epoch after which the answer may no longer be reused (credential expiry, re-check due). */
  reusableUntil: number;
  /**
   * When (ms epoch, Principal.verifiedAt) the credential behind the answer was really verified; an
   * answer built on a remembered verification is reusable only for what is left of its window.
   */
  verifiedAt?: number | undefined;
  account: string;
  kind: string;
  /** The original decisions, summarised in the audit line of a reuse (at debug). */
  decisions: ScopeDecision[];
  outcome: 'granted' | 'partial' | 'denied';
}

/**
 * Entries kept at most; the oldest goes first. An entry holds the unique part of one token (a few
 * hundred bytes; the header is shared), so this bounds the cache near 2 MB even when every request
 * is new (measured: clearing the whole map at 10,000 entries let a stream of distinct requests push
 * RSS past 200 MB).
 */
const MAX_ENTRIES = 4096;

/**
 * One `docker push` asks for the same token several times within a second or two (one per blob
 * and manifest request). A GET that repeats an earlier one byte for byte — query, credentials,
 * client address — within `windowSeconds` gets the same signed token back without repeating the
 * lookups, the ACL and the signature. The key is a salted hash (per-process salt), so no
 * credential sits in memory in clear. Anything that can change an answer (a PAT or robot revoked,
 * an account changed, a reload) clears the whole cache, on every replica through the store's
 * pub/sub. Staleness is bounded without pub/sub too: no entry outlives `windowSeconds` from the
 * moment its credential was verified.
 *
 * A key carries the cache's generation at the moment it was computed (before the verification):
 * an answer whose verification was in flight across a clear() is not stored under the new
 * generation, so a revocation can never be undone by a late write.
 */
export class TokenReuse {
  private readonly salt = randomBytes(32).toString('latin1');
  private readonly entries = new Map<string, ReusableAnswer>();
  /** Bumped by clear(); every key starts with it. */
  private generation = 0;
  private tag = '0:';

  constructor(private readonly windowSeconds: number) {}

  keyFor(query: string, authorization: string, ip: string): string {
    // A salted one-shot SHA-256: collision-resistant and not reversible to the credential, and
    // crypto.hash skips the Hash object an HMAC or createHash would allocate on every request.
    return this.tag + hash('sha256', `${this.salt}${query}\n${authorization}\n${ip}`, 'base64');
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

  /** Stores an answer under a key from keyFor(); dropped when a clear() came in between. */
  set(key: string, answer: ReusableAnswer): void {
    if (!key.startsWith(this.tag)) return;
    if (answer.verifiedAt !== undefined) answer.reusableUntil = Math.min(answer.reusableUntil, Math.floor(answer.verifiedAt / 1000) + this.windowSeconds);
    if (this.windowSeconds <= 0 || answer.reusableUntil <= answer.issuedAt) return;
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, answer);
  }

  /** The GET answer for a hit at `now`: the fresh answer's body (wire.ts) with the time left. */
  static body(a: ReusableAnswer, now: number): string {
    return getBody({ token: `${a.header}.${a.rest}`, expiresIn: a.expiresAt - now, issuedAtText: a.issuedAtText });
  }

  clear(): void {
    this.generation++;
    this.tag = `${this.generation}:`;
    this.entries.clear();
  }
}
