import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { bodyParser } from '@koa/bodyparser';
import type { Logger } from 'pino';
import type { Config } from './config/load.js';
import { createApp } from './http/app.js';
import { tokenEndpoint } from './http/token/index.js';
import { Credentials } from './identity/credentials.js';
import { StaticUsers } from './identity/static-users.js';
import { createLogger } from './log.js';
import { MemoryStore } from './store/memory.js';
import { RedisStore } from './store/redis.js';
import type { Store } from './store/store.js';
import { ensureKeyPair } from './tokens/keygen.js';
import { loadSigningKey, type SigningKey } from './tokens/keys.js';
import { RefreshTokens } from './tokens/refresh-tokens.js';
import { RegistryTokenSigner } from './tokens/registry-jwt.js';
import { Pats } from './tokens/pats.js';
import { Accounts } from './identity/accounts.js';
import { ContinuousAccess } from './identity/continuous-access.js';
import { PatVerifier } from './identity/pat-verifier.js';
import { FederationVerifier } from './federation/verifier.js';
import { Sealer } from './util/sealed.js';
import { createConnectors } from './connectors/index.js';
import type { CallbackConnector } from './connectors/connector.js';
import { mountWebRoutes } from './http/web/routes.js';
import { mountTokenApi } from './http/api/tokens.js';
import { mountDeviceRoutes } from './http/device/routes.js';
import { Sessions } from './http/web/session.js';
import { durationToSeconds } from './config/duration.js';
import { Metrics } from './observability/metrics.js';
import { instrumentConnector } from './observability/instrument-connector.js';
import { AuthLimiter } from './security/auth-limiter.js';
import { Robots, robotName } from './robots/robots.js';
import { RobotVerifier } from './robots/verifier.js';
import { mountRobotApi } from './http/api/robots.js';
import { mountRobotPages } from './http/web/robots-page.js';
import { labelsOf, type AccountRecord } from './identity/accounts.js';
import { randomBytes, hkdfSync } from 'node:crypto';

export interface StartOptions {
  /** Use this store instead of the configured one (tests share one across servers). */
  store?: Store;
  log?: Logger;
  /** Injected fetch for connectors (tests pointing GitHub at a fake use plain fetch too). */
  fetch?: typeof fetch;
  /** Overrides server.addr's port (0 = any free port). */
  port?: number;
  host?: string;
}

export interface RunningServer {
  url: string;
  port: number;
  server: Server;
  store: Store;
  signingKey: SigningKey;
  /** Path of the certificate a registry should trust (generated or configured). */
  certificatePath: string | null;
  log: Logger;
  publicURL: string;
  pats: Pats;
  accounts: Accounts;
  robots: Robots;
  connectors: Map<string, CallbackConnector>;
  close(): Promise<void>;
}

export async function openStore(config: Config, log: Logger): Promise<Store> {
  const s = config.raw.store;
  if (s.type === 'memory') return new MemoryStore();
  const r = s.redis ?? { keyPrefix: 'berth:' };
  const store = new RedisStore({ url: r.url, keyPrefix: r.keyPrefix, sentinels: r.sentinels, name: r.name, cluster: r.cluster, password: r.password, db: r.db });
  try {
    await store.open();
  } catch (e) {
    // Start anyway: static users keep working and /readyz reports the store until it returns.
    log.error({ err: (e as Error).message }, 'redis not reachable at start; retrying in the background');
  }
  return store;
}

async function resolveSigningKey(config: Config, log: Logger): Promise<{ key: SigningKey; certificatePath: string | null }> {
  if (config.token.signingKey) {
    return { key: config.token.signingKey, certificatePath: config.raw.token.certificate ?? null };
  }
  const pair = await ensureKeyPair(config.token.generatedKeyDir, config.token.generatedKeyAlg);
  log.info({ certificate: pair.certPath, created: pair.created }, 'no token.key configured: using a generated signing key; point the registry rootcertbundle at this certificate');
  return { key: await loadSigningKey(pair.keyPem, pair.certPem), certificatePath: pair.certPath };
}

export async function startServer(config: Config, opts: StartOptions = {}): Promise<RunningServer> {
  const log = opts.log ?? createLogger(config.raw.log.level);
  const store = opts.store ?? (await openStore(config, log));
  const { key, certificatePath } = await resolveSigningKey(config, log);
  const signer = new RegistryTokenSigner(key, config.token.issuer, config.token.ttlSeconds, config.token.kidFormat);
  const refreshTokens = new RefreshTokens(store, config.token.refreshTTLSeconds);
  const staticUsers = new StaticUsers(config.users);
  const raw = config.raw;
  let sealer: Sealer;
  if (raw.secrets.encryptionKey) sealer = new Sealer(raw.secrets.encryptionKey);
  else {
    // Only reachable with the memory store (the loader insists on a key with Redis): nothing
    // sealed outlives the process anyway.
    sealer = Sealer.random();
  }
  const accounts = new Accounts(store, sealer);
  const pats = new Pats(store, { defaultTTLSeconds: durationToSeconds(raw.pats.defaultTTL), maxTTLSeconds: durationToSeconds(raw.pats.maxTTL), maxPerUser: raw.pats.maxPerUser }, refreshTokens);
  // Filled once the listening address (and so the default public URL) is known.
  const connectors = new Map<string, CallbackConnector>();
  const ca = { ttlSeconds: durationToSeconds(raw.continuousAccess.ttl), graceSeconds: durationToSeconds(raw.continuousAccess.grace) };
  const access = new ContinuousAccess(accounts, connectors, config.users, ca, log);
  const federation = new FederationVerifier(raw.federation, { tokenTTLSeconds: config.token.ttlSeconds, log });
  const robots = new Robots(
    store,
    raw.robots.map((r) => ({
      name: robotName(r.name),
      description: r.description,
      restriction: { repositories: r.repositories, actions: r.actions },
      expiresAt: r.expires ? Date.parse(r.expires) : null,
      secretHash: r.secretSHA256,
    })),
    (name) => refreshTokens.revokeForCredential(name),
  );
  const credentials = new Credentials(staticUsers, refreshTokens, [new PatVerifier(pats, accounts, access, refreshTokens), new RobotVerifier(robots), federation]);
  const isAdmin = (a: AccountRecord) => raw.admin.accounts.includes(a.identity.username) || (labelsOf(a.identity).groups ?? []).some((g) => raw.admin.groups.includes(g));

  const metrics = new Metrics(() => pats.countActive());
  const limits = raw.limits;
  // Replicas must agree on the fingerprint of a failed secret, so derive it from the shared key.
  const fingerprintKey = raw.secrets.encryptionKey ? Buffer.from(hkdfSync('sha256', raw.secrets.encryptionKey, Buffer.alloc(0), 'berth auth-failure fingerprint', 32)) : randomBytes(32);
  const limiter = new AuthLimiter(
    store,
    store instanceof RedisStore ? store.rawClient : null,
    { failuresPerAccount: limits.failuresPerAccount, failuresPerIP: limits.failuresPerIP, windowSeconds: durationToSeconds(limits.window), lockoutSeconds: durationToSeconds(limits.lockout) },
    fingerprintKey,
  );

  const { app, router } = createApp({ log, trustProxy: config.server.trustProxy, realIPHeader: config.server.realIPHeader, onStoreError: () => metrics.storeErrors.inc() });
  app.use(bodyParser({ enableTypes: ['form', 'json'], formLimit: '16kb', jsonLimit: '64kb' }));

  const tokenPath = config.token.path;
  const handle = tokenEndpoint({
    services: config.token.services,
    credentials,
    acl: config.acl,
    signer,
    refreshTokens,
    realm: config.token.issuer,
    limiter,
    log,
    onOutcome: (o) => {
      metrics.tokenRequests.inc({ outcome: o.outcome, kind: o.grant === 'refresh_token' ? 'refresh' : o.kind });
      metrics.tokenDuration.observe({ outcome: o.outcome }, o.seconds);
      if (o.outcome === 'unavailable') metrics.storeErrors.inc();
      if (o.outcome === 'rate_limited') metrics.rateLimited.inc({ scope: 'token' });
    },
  });
  for (const p of [tokenPath, `${tokenPath}/token`]) {
    router.get(p, handle);
    router.post(p, handle);
  }
  const jwks = { keys: [key, ...config.token.publishedKeys].map((k) => ({ ...k.jwk, kid: k.thumbprintKid, alg: k.alg, use: 'sig' })) };
  router.get('/.well-known/jwks.json', (ctx) => {
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = jwks;
  });
  router.get('/metrics', async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    let storeOk = true;
    try {
      await Promise.race([store.ping(), new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), 1000).unref())]);
    } catch {
      storeOk = false;
    }
    ctx.status = storeOk ? 200 : 503;
    ctx.body = { status: storeOk ? 'ready' : 'not ready', checks: { store: storeOk ? 'ok' : 'unreachable', signingKey: 'ok', config: 'ok' } };
  });
  let publicURL = config.server.publicURL ?? '';
  const webDeps = {
    env: { appTitle: raw.web.title, registryHost: raw.web.registryHost },
    get publicURL() {
      return publicURL;
    },
    connectors,
    redirectURI: (id: string) => raw.connectors.find((c) => c.id === id)?.redirectURL ?? `${publicURL}/callback/${id}`,
    localLogin: raw.web.localLogin && [...config.users.values()].some((u) => u.hash),
    staticUsers,
    accounts,
    access,
    pats,
    sessions: new Sessions(store, durationToSeconds(raw.web.sessionTTL), (config.server.publicURL ?? '').startsWith('https:')),
    recheckMinutes: Math.round(ca.ttlSeconds / 60),
    limiter,
    metrics,
    log,
  };
  mountWebRoutes(router, webDeps);
  mountTokenApi(router, webDeps);
  mountRobotApi(router, { web: webDeps, robots, isAdmin });
  mountRobotPages(router, webDeps, robots, isAdmin);
  mountDeviceRoutes(router, { web: webDeps, store, sealer });
  app.use(router.routes()).use(router.allowedMethods());

  const server = config.server.tls ? createHttpsServer({ key: config.server.tls.key, cert: config.server.tls.cert }, app.callback()) : createHttpServer(app.callback());
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  const port = opts.port ?? config.server.port;
  const host = opts.host ?? config.server.host;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const scheme = config.server.tls ? 'https' : 'http';
  const hostForUrl = addr.family === 'IPv6' ? (addr.address === '::' ? '127.0.0.1' : `[${addr.address}]`) : addr.address === '0.0.0.0' ? '127.0.0.1' : addr.address;
  const url = `${scheme}://${hostForUrl}:${addr.port}`;
  if (!publicURL) {
    publicURL = url;
    if (raw.connectors.length) log.warn({ publicURL }, 'server.publicURL not set: using the listening address for OAuth redirect URLs');
  }
  for (const [id, c] of createConnectors(raw.connectors, { publicURL, ...(opts.fetch ? { fetch: opts.fetch } : {}) })) connectors.set(id, instrumentConnector(c, metrics));
  log.info({ url, tokenPath }, 'berth listening');
  return {
    url,
    port: addr.port,
    server,
    store,
    signingKey: key,
    certificatePath,
    log,
    publicURL,
    pats,
    accounts,
    robots,
    connectors,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      if (!opts.store) await store.close();
    },
  };
}
