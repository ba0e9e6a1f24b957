import { Redis, Cluster, type RedisOptions } from 'ioredis';
import { StoreUnavailableError, type Store } from './store.js';
import { Subscriber, type StoreLog } from './subscriber.js';

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
  /** Where a lost pub/sub subscription is reported. */
  log?: StoreLog | undefined;
  /** How often the subscriber connection is PINGed to notice a server that hangs (ms; 5000). */
  subscriberHeartbeatMs?: number | undefined;
}

const INCR_WITH_TTL = `local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n`;

type Client = Redis | Cluster;

export class RedisStore implements Store {
  private readonly client: Client;
  private readonly subscriber: Subscriber;
  private readonly prefix: string;

  constructor(private readonly opts: RedisStoreOptions) {
    this.prefix = opts.keyPrefix;
    this.client = RedisStore.connect(opts, { keyPrefix: opts.keyPrefix });
    this.subscriber = new Subscriber((attempt) => this.subscriberConnection(attempt), opts.log, opts.subscriberHeartbeatMs);
  }

  private static options(opts: RedisStoreOptions, extra: RedisOptions): RedisOptions {
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
    return base;
  }

  private static connect(opts: RedisStoreOptions, extra: RedisOptions): Client {
    const base = RedisStore.options(opts, extra);
    if (opts.cluster?.length) {
      return new Cluster(opts.cluster, {
        keyPrefix: extra.keyPrefix ?? '',
        enableOfflineQueue: false,
        redisOptions: base,
        lazyConnect: true,
        // ioredis retries a command whose node is down every 100 ms up to 16 times (measured: each
        // 503 took 1.0–1.2 s while a master was down). Fail at once, as with Sentinel; run()
        // refreshes the slot map so the first command after a failover finds the new master.
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 0,
        slotsRefreshInterval: 1000,
      });
    }
    if (opts.sentinels?.length) return new Redis({ ...base, sentinels: opts.sentinels, name: opts.name ?? 'mymaster' });
    return opts.url ? new Redis(opts.url, base) : new Redis(base);
  }

  /**
   * The subscriber's connection for an attempt: a reconnecting one for a server or Sentinel, and for
   * a cluster one to a node (those the client knows, then the configured seeds, in turn) that ends
   * when the node goes, so that the next attempt picks another.
   */
  private subscriberConnection(attempt: number): Redis {
    const extra: RedisOptions = { autoResubscribe: false, maxRetriesPerRequest: null, commandTimeout: 2000 };
    if (!(this.client instanceof Cluster)) return RedisStore.connect(this.opts, extra) as Redis;
    const nodes = new Map<string, { host: string; port: number }>();
    for (const n of this.client.nodes('all')) if (n.options.host && n.options.port) nodes.set(`${n.options.host}:${n.options.port}`, { host: n.options.host, port: n.options.port });
    for (const n of this.opts.cluster ?? []) nodes.set(`${n.host}:${n.port}`, n);
    const list = [...nodes.values()];
    const node = list[attempt % list.length]!;
    return new Redis({ ...RedisStore.options(this.opts, extra), host: node.host, port: node.port, retryStrategy: () => null });
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
      // A node may be gone: learn the slots anew (ioredis runs one refresh at a time).
      if (this.client instanceof Cluster && this.client.status === 'ready') this.client.refreshSlotsCache();
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
    this.subscriber.deliver(this.prefix + channel, message);
    await this.run((c) => c.publish(this.prefix + channel, message));
  }
  async subscribe(channel: string, onMessage: (message: string) => void) {
    // Not waited for: with Redis down at start the subscriber keeps trying (and /readyz says the
    // subscription is missing until it is back); starting must not wait for it.
    return this.subscriber.add(this.prefix + channel, onMessage);
  }
  subscriptionProblem() {
    return this.subscriber.problem();
  }
  /** Handlers registered over all channels (tests: a reload must not add to it). */
  handlerCount() {
    return this.subscriber.handlerCount();
  }
  async ping() {
    await this.run((c) => c.ping());
  }
  async close() {
    this.client.disconnect();
    this.subscriber.close();
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
