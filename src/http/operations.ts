import type Router from '@koa/router';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../store/store.js';
import { declareErrorFormat } from './errors.js';

export interface OperationsDeps {
  store: Store;
  metrics: Metrics;
  /** The JWKS document: the signing key and the keys published for a rotation. */
  jwks: unknown;
}

/** What operators and registries read besides tokens: the key set, metrics, liveness and readiness. */
export function mountOperations(router: Router, d: OperationsDeps): void {
  // Probes and registries read these as JSON.
  for (const p of ['/healthz', '/readyz', '/metrics', '/.well-known/']) declareErrorFormat(router, p, 'registry');
  router.get('/.well-known/jwks.json', (ctx) => {
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = d.jwks;
  });
  router.get('/metrics', async (ctx) => {
    ctx.type = d.metrics.registry.contentType;
    ctx.body = await d.metrics.registry.metrics();
  });
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    let storeOk = true;
    try {
      await Promise.race([d.store.ping(), new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), 1000).unref())]);
    } catch {
      storeOk = false;
    }
    // Without its subscriptions a replica keeps granting what another replica revoked (until the
    // reuse window ends): not ready. The store has logged why.
    const pubsub = d.store.subscriptionProblem();
    const ready = storeOk && pubsub === null;
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'not ready', checks: { store: storeOk ? 'ok' : 'unreachable', pubsub: pubsub ?? 'ok', signingKey: 'ok', config: 'ok' } };
  });
}
