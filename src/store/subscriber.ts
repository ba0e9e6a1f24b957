import type { Redis } from 'ioredis';

/** Where the subscriber says what went wrong (a pino logger fits). */
export interface StoreLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

type Handler = (message: string) => void;

/**
 * The one connection a RedisStore listens on, on every topology. It is a plain connection (never
 * an ioredis Cluster, whose offline-queue setting once made every SUBSCRIBE fail silently): to the
 * server, to the master Sentinel names, or to any cluster node — a classic PUBLISH in a cluster
 * reaches every node over the cluster bus, and revocations are rare, so sharded pub/sub would add
 * moving parts for nothing. The channels are SUBSCRIBEd again on every `ready` (after a reconnect
 * or a failover; for a cluster, `open` picks the next node once the current one is gone), and
 * `problem()` names what is missing until every channel is confirmed: /readyz reports it and the
 * log says why whenever it changes.
 */
export class Subscriber {
  private conn: Redis | null = null;
  private readonly handlers = new Map<string, Set<Handler>>();
  /** Channels whose SUBSCRIBE the current connection confirmed. */
  private readonly live = new Set<string>();
  private reason = 'subscriber not connected yet';
  /** The state last logged; starting up is not worth a warning, failing to is. */
  private reported: string | null = 'subscriber not connected yet';
  private lastError = '';
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly heartbeat: NodeJS.Timeout;
  private closed = false;

  /**
   * `open(attempt)` makes a lazy connection: one that reconnects by itself (standalone, Sentinel),
   * or one that ends when its node goes (cluster), after which the next attempt asks again.
   */
  constructor(
    private readonly open: (attempt: number) => Redis,
    private readonly log?: StoreLog,
    heartbeatMs = 5000,
  ) {
    // A server that hangs (or a cluster node cut off from the others) leaves the socket open and
    // silent: a PING that goes unanswered (the connection's command timeout) drops the connection,
    // which reconnects or, in a cluster, moves to another node.
    this.heartbeat = setInterval(() => {
      const conn = this.conn;
      if (conn?.status === 'ready' && this.handlers.size > 0) {
        conn.ping().catch((e: Error) => {
          if (conn !== this.conn) return;
          this.lastError = `no answer to PING: ${e.message}`;
          conn.disconnect(true);
        });
      }
    }, heartbeatMs);
    this.heartbeat.unref();
  }

  /** Why a subscription is missing, or null when every channel with a handler is subscribed. */
  problem(): string | null {
    for (const ch of this.handlers.keys()) if (!this.live.has(ch)) return this.reason;
    return null;
  }

  /** Handlers registered, over all channels (a reload must not add to it). */
  handlerCount(): number {
    let n = 0;
    for (const s of this.handlers.values()) n += s.size;
    return n;
  }

  add(channel: string, handler: Handler): () => Promise<void> {
    let set = this.handlers.get(channel);
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
      if (this.conn?.status === 'ready') this.subscribe([channel]);
    }
    set.add(handler);
    if (!this.conn && !this.closed) this.connect();
    this.report();
    return async () => {
      const s = this.handlers.get(channel);
      if (!s?.delete(handler) || s.size > 0) return;
      this.handlers.delete(channel);
      this.live.delete(channel);
      this.report();
      if (this.conn?.status === 'ready') await this.conn.unsubscribe(channel).catch(() => {});
    };
  }

  /** Runs this process's handlers for a message (publish calls it before Redis echoes). */
  deliver(channel: string, message: string): void {
    const set = this.handlers.get(channel);
    if (set) for (const h of [...set]) h(message);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    this.conn?.disconnect();
    this.conn = null;
  }

  private connect(): void {
    const conn = this.open(this.attempt);
    this.conn = conn;
    conn.on('error', (e: Error) => {
      this.lastError = e.message;
    });
    conn.on('ready', () => {
      this.attempt = 0;
      this.subscribe([...this.handlers.keys()]);
    });
    conn.on('message', (ch: string, msg: string) => this.deliver(ch, msg));
    conn.on('close', () => {
      this.live.clear();
      this.reason = `subscriber connection lost${this.lastError ? `: ${this.lastError}` : ''}`;
      this.report();
    });
    conn.on('end', () => {
      // Ended for good (a cluster node that went away): try the next node, a little later each time.
      if (this.closed || this.conn !== conn) return;
      this.conn = null;
      const delay = Math.min(100 * ++this.attempt, 1000);
      this.timer = setTimeout(() => {
        this.timer = null;
        if (!this.closed && !this.conn) this.connect();
      }, delay);
      this.timer.unref();
    });
    conn.connect().catch(() => {
      /* 'error' and 'close' have said why; reconnecting is the connection's or 'end''s business */
    });
  }

  private subscribe(channels: string[]): void {
    const conn = this.conn;
    if (!conn || channels.length === 0) {
      this.report();
      return;
    }
    conn.subscribe(...channels).then(
      () => {
        if (conn !== this.conn) return;
        for (const ch of channels) if (this.handlers.has(ch)) this.live.add(ch);
        this.report();
      },
      (e: Error) => {
        if (conn !== this.conn) return;
        this.reason = `SUBSCRIBE failed: ${e.message}`;
        this.report();
        // Refused (an ACL without channel rights) or timed out: ask again in a while, on the same
        // connection (a reconnect loop would only hammer the server and the log).
        const retry = setTimeout(() => {
          if (conn === this.conn && conn.status === 'ready') this.subscribe([...this.handlers.keys()].filter((ch) => !this.live.has(ch)));
        }, 2000);
        retry.unref();
      },
    );
  }

  /** Logs each change of state once: a missing subscription means revocations go unheard. */
  private report(): void {
    const p = this.problem();
    if (p === this.reported) return;
    const was = this.reported;
    this.reported = p;
    if (p && !this.closed) this.log?.warn({ reason: p }, 'pub/sub subscription missing: revocations made on other replicas are not heard until it is back');
    else if (!p && was) this.log?.info({ channels: this.handlers.size }, 'pub/sub subscriptions established');
  }
}
