import { Redis, Cluster, type RedisOptions } from 'ioredis';
import { StoreUnavailableError, type Store } from './store.js';

export interface RedisStoreOptions {
  url?: string | undefined;
  keyPrefix: string;
  sentinels?: { host: string; port: number }[] | undefined;
  name?: string | undefined;
  cluster?: { host: string; port: number }[] | undefined;
  password?: string | undefined;
  db?: number | undefined;
  /** A command that has not answered by then fails, so a request never hangs on a dead Redis. */
  commandTimeoutMs?: number;
}

const INCR_WITH_TTL = `local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n`;

type Client = Redis | Cluster;

export class RedisStore implements Store {
  private readonly client: Client;
  private subscriber: Client | null = null;
  private readonly handlers = new Map<string, ((m: string) => void)[]>();
  private readonly prefix: string;

  constructor(private readonly opts: RedisStoreOptions) {
    this.prefix = opts.keyPrefix;
    this.client = RedisStore.connect(opts, { keyPrefix: opts.keyPrefix });
  }

  private static connect(opts: RedisStoreOptions, extra: RedisOptions): Client {
    const base: RedisOptions = {
      // While disconnected, fail at once instead of queueing: the token endpoint then answers 503
      // and static users keep working, rather than every request waiting for Redis.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: opts.commandTimeoutMs ?? 800,
      connectTimeout: 2000,
      retryStrategy: (times) => Math.min(times * 200, 2000),
      lazyConnect: true,
      ...extra,
    };
    if (opts.password !== undefined) base.password = opts.password;
    if (opts.db !== undefined) base.db = opts.db;
    if (opts.cluster?.length) return new Cluster(opts.cluster, { keyPrefix: extra.keyPrefix ?? '', enableOfflineQueue: false, redisOptions: base, lazyConnect: true });
    if (opts.sentinels?.length) return new Redis({ ...base, sentinels: opts.sentinels, name: opts.name ?? 'mymaster' });
    return opts.url ? new Redis(opts.url, base) : new Redis(base);
  }

  /** The ioredis client, for libraries that speak Redis themselves (rate-limiter-flexible). */
  get rawClient(): Client {
    return this.client;
  }

  /** Connects; rejects when Redis is not reachable (the caller decides whether to start anyway). */
  async open(): Promise<void> {
    this.client.on('error', () => {
      /* reported through command failures and /readyz; ioredis keeps reconnecting */
    });
    try {
      await this.client.connect();
    } catch (e) {
      throw new StoreUnavailableError(`store unavailable: ${(e as Error).message}`);
    }
  }

  private async run<T>(f: (c: Client) => Promise<T>): Promise<T> {
    try {
      return await f(this.client);
    } catch (e) {
      throw new StoreUnavailableError(`store unavailable: ${(e as Error).message}`);
    }
  }

  get(key: string) {
    return this.run((c) => c.get(key));
  }
  mget(keys: readonly string[]) {
    if (keys.length === 0) return Promise.resolve([]);
    // A cluster refuses MGET across hash slots; there the GETs go out concurrently instead.
    if (this.client instanceof Cluster) return this.run((c) => Promise.all(keys.map((k) => c.get(k))));
    return this.run((c) => c.mget(...keys));
  }
  async set(key: string, value: string, ttlSeconds?: number) {
    await this.run((c) => (ttlSeconds && ttlSeconds > 0 ? c.set(key, value, 'EX', Math.ceil(ttlSeconds)) : c.set(key, value)));
  }
  async setIfAbsent(key: string, value: string, ttlSeconds?: number) {
    const r = await this.run((c) => (ttlSeconds && ttlSeconds > 0 ? c.set(key, value, 'EX', Math.ceil(ttlSeconds), 'NX') : c.set(key, value, 'NX')));
    return r === 'OK';
  }
  async del(key: string) {
    return (await this.run((c) => c.del(key))) > 0;
  }
  take(key: string) {
    return this.run((c) => c.getdel(key));
  }
  async incr(key: string, ttlSeconds: number) {
    return Number(await this.run((c) => c.eval(INCR_WITH_TTL, 1, key, String(Math.ceil(ttlSeconds)))));
  }
  ttl(key: string) {
    return this.run((c) => c.ttl(key));
  }
  async sadd(key: string, member: string) {
    await this.run((c) => c.sadd(key, member));
  }
  async srem(key: string, member: string) {
    await this.run((c) => c.srem(key, member));
  }
  smembers(key: string) {
    return this.run((c) => c.smembers(key));
  }
  async publish(channel: string, message: string) {
    // This process's own subscribers first: a revocation made here is in force here at once, not
    // when Redis echoes it (they hear the echo too; every handler is an idempotent cache clear).
    for (const h of this.handlers.get(this.prefix + channel) ?? []) h(message);
    await this.run((c) => c.publish(this.prefix + channel, message));
  }
  async subscribe(channel: string, onMessage: (message: string) => void) {
    const full = this.prefix + channel;
    if (!this.subscriber) {
      // Subscriptions need their own connection; offline queueing is fine there because a
      // resubscribe after a reconnect is exactly what we want.
      const sub = RedisStore.connect(this.opts, { enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined as never });
      sub.on('error', () => {});
      sub.on('message', (ch: string, msg: string) => {
        for (const h of this.handlers.get(ch) ?? []) h(msg);
      });
      this.subscriber = sub;
      sub.connect().catch(() => {});
    }
    const list = this.handlers.get(full) ?? [];
    list.push(onMessage);
    this.handlers.set(full, list);
    // Not awaited: with Redis down at start the SUBSCRIBE waits in the queue until it is back
    // (and ioredis resubscribes after every reconnect); starting must not wait for it.
    this.subscriber.subscribe(full).catch(() => {});
  }
  async ping() {
    await this.run((c) => c.ping());
  }
  async close() {
    this.client.disconnect();
    this.subscriber?.disconnect();
  }
  async saddIfBelow(key: string, member: string, limit: number) {
    return Number(await this.run((c) => c.eval(SADD_IF_BELOW, 1, key, member, String(limit)))) === 1;
  }
}

/** Count and add in one script, so parallel adders on any replica cannot all pass the count. */
const SADD_IF_BELOW = `if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1]) return 1`;

/** True when a Redis answers PING at `url` within about a second (for tools deciding what to start). */
export async function redisReachable(url: string): Promise<boolean> {
  const c = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.ping();
    return true;
  } catch {
    return false;
  } finally {
    c.disconnect();
  }
}
