import { EventEmitter } from 'node:events';
import type { Store } from './store.js';

interface Entry {
  value: string | Set<string>;
  expiresAt: number; // ms epoch, Infinity for none
}

/** Single-process store for the demo and tests; expired keys are dropped lazily and by a sweep. */
export class MemoryStore implements Store {
  private readonly data = new Map<string, Entry>();
  private readonly bus = new EventEmitter();
  private readonly sweeper: NodeJS.Timeout;

  constructor() {
    // The default listener limit stays: a leak of handlers (a reload that keeps the old
    // generation's) shows as Node's MaxListenersExceededWarning.
    this.sweeper = setInterval(() => this.sweep(), 30_000);
    this.sweeper.unref();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [k, e] of this.data) if (e.expiresAt <= now) this.data.delete(k);
  }

  private live(key: string): Entry | undefined {
    const e = this.data.get(key);
    if (e && e.expiresAt <= Date.now()) {
      this.data.delete(key);
      return undefined;
    }
    return e;
  }

  private str(key: string): string | null {
    const v = this.live(key)?.value;
    return typeof v === 'string' ? v : null;
  }

  private static expiry(ttlSeconds?: number): number {
    return ttlSeconds && ttlSeconds > 0 ? Date.now() + ttlSeconds * 1000 : Infinity;
  }

  async get(key: string) {
    return this.str(key);
  }
  async mget(keys: readonly string[]) {
    return keys.map((k) => this.str(k));
  }
  async set(key: string, value: string, ttlSeconds?: number) {
    this.data.set(key, { value, expiresAt: MemoryStore.expiry(ttlSeconds) });
  }
  async setIfAbsent(key: string, value: string, ttlSeconds?: number) {
    if (this.live(key)) return false;
    this.data.set(key, { value, expiresAt: MemoryStore.expiry(ttlSeconds) });
    return true;
  }
  async del(key: string) {
    const had = this.live(key) !== undefined;
    this.data.delete(key);
    return had;
  }
  async take(key: string) {
    const v = this.str(key);
    this.data.delete(key);
    return v;
  }
  async incr(key: string, ttlSeconds: number) {
    const e = this.live(key);
    const n = (e && typeof e.value === 'string' ? Number(e.value) || 0 : 0) + 1;
    this.data.set(key, { value: String(n), expiresAt: e ? e.expiresAt : MemoryStore.expiry(ttlSeconds) });
    return n;
  }
  async ttl(key: string) {
    const e = this.live(key);
    if (!e) return -2;
    return e.expiresAt === Infinity ? -1 : Math.ceil((e.expiresAt - Date.now()) / 1000);
  }
  async sadd(key: string, member: string) {
    const e = this.live(key);
    if (e && e.value instanceof Set) e.value.add(member);
    else this.data.set(key, { value: new Set([member]), expiresAt: Infinity });
  }
  async srem(key: string, member: string) {
    const e = this.live(key);
    if (e && e.value instanceof Set) {
      e.value.delete(member);
      if (e.value.size === 0) this.data.delete(key);
    }
  }
  async smembers(key: string) {
    const e = this.live(key);
    return e && e.value instanceof Set ? [...e.value] : [];
  }
  async publish(channel: string, message: string) {
    this.bus.emit(channel, message);
  }
  async subscribe(channel: string, onMessage: (message: string) => void) {
    // A wrapper per call: the same function subscribed twice is removed once per unsubscribe.
    const listener = (m: string) => onMessage(m);
    this.bus.on(channel, listener);
    return async () => {
      this.bus.off(channel, listener);
    };
  }
  subscriptionProblem() {
    return null;
  }
  /** Handlers registered over all channels (tests: a reload must not add to it). */
  handlerCount() {
    return this.bus.eventNames().reduce((n, e) => n + this.bus.listenerCount(e), 0);
  }
  async ping() {}
  async close() {
    clearInterval(this.sweeper);
    this.bus.removeAllListeners();
  }
  async saddIfBelow(key: string, member: string, limit: number) {
    // One synchronous step: nothing can run between the count and the add.
    const e = this.live(key);
    const set = e && e.value instanceof Set ? e.value : null;
    if (set?.has(member)) return true;
    if ((set?.size ?? 0) >= limit) return false;
    if (set) set.add(member);
    else this.data.set(key, { value: new Set([member]), expiresAt: Infinity });
    return true;
  }
}
