/**
 * The one storage contract Berth needs. Values are opaque strings (callers store JSON); every key may
 * carry a TTL. Implemented by MemoryStore (demo, single process) and RedisStore (production,
 * shared by replicas). Both pass test/unit/store-contract.test.ts.
 */
export interface Store {
  get(key: string): Promise<string | null>;
  /** Several keys in one round trip; missing keys are null. */
  mget(keys: readonly string[]): Promise<(string | null)[]>;
  set(key: string, value: string, ttlSeconds?: number): Promise<void>;
  /** Sets only when absent; true when it did. */
  setIfAbsent(key: string, value: string, ttlSeconds?: number): Promise<boolean>;
  del(key: string): Promise<boolean>;
  /** Reads and deletes atomically: single-use values (OAuth state, device codes) can't be replayed. */
  take(key: string): Promise<string | null>;
  /** Increments a counter, starting its TTL on creation; returns the new value. */
  incr(key: string, ttlSeconds: number): Promise<number>;
  /** Remaining TTL in seconds, -1 without expiry, -2 when absent. */
  ttl(key: string): Promise<number>;
  sadd(key: string, member: string): Promise<void>;
  srem(key: string, member: string): Promise<void>;
  smembers(key: string): Promise<string[]>;
  publish(channel: string, message: string): Promise<void>;
  /** Resolves to the function that removes this handler again (a reload drops the old generation's). */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<Unsubscribe>;
  /**
   * Why a subscription is missing (Redis down, SUBSCRIBE refused), or null when every channel with
   * a handler is really subscribed: until then revocations made by other replicas go unheard.
   */
  subscriptionProblem(): string | null;
  ping(): Promise<void>;
  close(): Promise<void>;
  /**
   * Adds member to a set only while the set holds fewer than `limit` members, atomically (a limit
   * checked by a separate read races with parallel writers); true when member is in the set afterwards.
   */
  saddIfBelow(key: string, member: string, limit: number): Promise<boolean>;
}

export type Unsubscribe = () => Promise<void>;

/** The store could not be reached or answered with an error: callers answer 503, never 500. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}
