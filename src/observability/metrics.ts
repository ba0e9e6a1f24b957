import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics of one server instance. A registry per instance, not prom-client's global one,
 * so that several servers in one process (tests, the benchmark) keep separate counts.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly tokenRequests = new Counter({ name: 'berth_token_requests_total', help: 'Token requests by outcome and credential kind', labelNames: ['outcome', 'kind'] as const, registers: [this.registry] });
  readonly tokenDuration = new Histogram({
    name: 'berth_token_request_duration_seconds',
    help: 'Token endpoint latency',
    labelNames: ['outcome'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly tokensReused = new Counter({ name: 'berth_token_reused_total', help: 'Token requests answered with the token of an identical request moments before (also in berth_token_requests_total)', labelNames: ['kind'] as const, registers: [this.registry] });
  readonly storeErrors = new Counter({ name: 'berth_store_errors_total', help: 'Requests that failed because the store was unreachable', registers: [this.registry] });
  readonly idpRequests = new Counter({ name: 'berth_idp_requests_total', help: 'Calls to identity providers by connector, operation and outcome', labelNames: ['connector', 'operation', 'outcome'] as const, registers: [this.registry] });
  readonly idpDuration = new Histogram({ name: 'berth_idp_request_duration_seconds', help: 'Identity provider call latency', labelNames: ['connector', 'operation'] as const, buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] });
  readonly logins = new Counter({ name: 'berth_logins_total', help: 'Browser sign-ins by connector and outcome', labelNames: ['connector', 'outcome'] as const, registers: [this.registry] });
  readonly rateLimited = new Counter({ name: 'berth_rate_limited_total', help: 'Requests refused by the failed-authentication limits', labelNames: ['scope'] as const, registers: [this.registry] });
  readonly activePats: Gauge;

  private readonly tokenChildren = new Map<string, { count: { inc(): void }; latency: { observe(v: number): void }; reused?: { inc(): void } }>();

  /** Counts and times one token request; the labelled children are looked up once per combination. */
  countToken(outcome: string, kind: string, seconds: number, reused = false): void {
    const key = `${outcome} ${kind}`;
    let c = this.tokenChildren.get(key);
    if (!c) {
      c = { count: this.tokenRequests.labels(outcome, kind), latency: this.tokenDuration.labels(outcome) };
      this.tokenChildren.set(key, c);
    }
    c.count.inc();
    c.latency.observe(seconds);
    if (reused) (c.reused ??= this.tokensReused.labels(kind)).inc();
  }

  constructor(countActivePats: () => Promise<number>) {
    collectDefaultMetrics({ register: this.registry, prefix: 'berth_process_' });
    this.activePats = new Gauge({
      name: 'berth_active_pats',
      help: 'Personal access tokens that are neither expired nor revoked',
      registers: [this.registry],
      async collect() {
        try {
          this.set(await countActivePats());
        } catch {
          // Store down: leave the last value; berth_store_errors_total and /readyz tell the story.
        }
      },
    });
  }
}
