import { hkdfSync, randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from './app/load-config.js';
import type { CallbackConnector, Connector } from './connectors/connector.js';
import { createLocalConnector } from './connectors/local/index.js';
import { createConnectors } from './connectors/index.js';
import { redirectURIFor } from './connectors/redirect-uri.js';
import { FederationVerifier } from './federation/verifier.js';
import { mountRobotApi } from './http/api/robots.js';
import { mountTokenApi } from './http/api/tokens.js';
import { createApp } from './http/app.js';
import { openStore, resolveSigningKey } from './app/resources.js';
import { mountOperations } from './http/operations.js';
import { parseBodies } from './http/body.js';
import { mountDeviceRoutes } from './http/device/routes.js';
import { clientIpResolver, clientResolver } from './http/client-ip.js';
import { configWarnings } from './app/config-warnings.js';
import { LoginStarts } from './http/web/login-rate.js';
import { tokenPipeline, type TokenOutcome } from './http/token/pipeline.js';
import { routeKey } from './http/route-key.js';
import type { WebDeps } from './http/web/deps.js';
import { mountRobotPages } from './http/web/robots-page.js';
import { mountWebRoutes } from './http/web/routes.js';
import { Sessions } from './http/web/session.js';
import { Accounts, labelsOf } from './identity/accounts.js';
import { AccountNamespace } from './model/account-names.js';
import { namespaceSources } from './config/namespace.js';
import type { CurrentAccount } from './identity/continuous-access.js';
import { ContinuousAccess } from './identity/continuous-access.js';
import { Credentials } from './identity/credentials.js';
import { PatVerifier } from './identity/pat-verifier.js';
import { StaticUsers } from './identity/static-users.js';
import { createAuditLogger, createLogger } from './log.js';
import { TokenReuse } from './http/token/reuse.js';
import { PAT_REVOKED_CHANNEL } from './tokens/pats.js';
import { ROBOT_REVOKED_CHANNEL } from './robots/robots.js';
import { ACCOUNT_CHANGED_CHANNEL } from './identity/continuous-access.js';
import { instrumentConnector } from './observability/instrument-connector.js';
import { Metrics } from './observability/metrics.js';
import { Robots, robotName } from './robots/robots.js';
import { RobotVerifier } from './robots/verifier.js';
import { AuthLimiter } from './security/auth-limiter.js';
import { RedisStore } from './store/redis.js';
import type { Store, Unsubscribe } from './store/store.js';
import type { SigningKey } from './tokens/keys.js';
import { Pats } from './tokens/pats.js';
import { RefreshTokens } from './tokens/refresh-tokens.js';
import { RegistryTokenSigner } from './tokens/registry-jwt.js';
import { Sealer } from './util/sealed.js';
import { limitHeapGrowth } from './app/heap-growth.js';

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

/** What one configuration builds; replaced whole by a reload. */
interface Generation {
  config: Config;
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  signingKey: SigningKey;
  certificatePath: string | null;
  pats: Pats;
  accounts: Accounts;
  robots: Robots;
  connectors: Map<string, CallbackConnector>;
  /** Drops what ties this generation to the process (its pub/sub handlers), once it is replaced. */
  dispose(): Promise<void>;
}

export interface RunningServer {
  url: string;
  port: number;
  server: Server;
  store: Store;
  log: Logger;
  publicURL: string;
  readonly signingKey: SigningKey;
  /** Path of the certificate a registry should trust (generated or configured). */
  readonly certificatePath: string | null;
  readonly pats: Pats;
  readonly accounts: Accounts;
  readonly robots: Robots;
  readonly connectors: Map<string, CallbackConnector>;
  /**
   * Swaps in a new configuration without closing the listener: requests in flight finish on the old
   * one. Listener address, TLS and store settings need a restart (a warning says so).
   */
  reload(config: Config): Promise<void>;
  close(): Promise<void>;
}

/** Lives as long as the process: the store connection and the metric counters survive reloads. */
interface Shared {
  store: Store;
  log: Logger;
  metrics: Metrics;
  publicURL: string;
  fetch: typeof fetch | undefined;
  /** The current generation's PATs, for the metrics gauge. */
  pats: () => Pats;
}

async function buildGeneration(config: Config, shared: Shared): Promise<Generation> {
  const { store, log, metrics, publicURL } = shared;
  const raw = config.raw;
  const { key, certificatePath } = await resolveSigningKey(config, log);
  const signer = new RegistryTokenSigner(key, config.token.issuer, config.token.ttlSeconds, config.token.kidFormat);
  const refreshTokens = new RefreshTokens(store, config.token.refreshTTLSeconds);
  const staticUsers = new StaticUsers(config.users);
  const namespace = new AccountNamespace(namespaceSources(raw, config.users.keys()));
  // Without a configured key (only possible with the memory store, the loader insists otherwise)
  // nothing sealed outlives the process anyway.
  const sealer = raw.secrets.encryptionKey ? new Sealer(raw.secrets.encryptionKey) : Sealer.random();
  const accounts = new Accounts(store, sealer, namespace);
  const pats = new Pats(store, { defaultTTLSeconds: config.seconds.patsDefaultTTL, maxTTLSeconds: config.seconds.patsMaxTTL, maxPerUser: raw.pats.maxPerUser }, refreshTokens);
  const connectors = new Map<string, CallbackConnector>();
  for (const [id, c] of createConnectors(raw.connectors, { publicURL, ...(shared.fetch ? { fetch: shared.fetch } : {}) })) connectors.set(id, instrumentConnector(c, metrics));
  const ca = { ttlSeconds: config.seconds.continuousAccessTTL, graceSeconds: config.seconds.continuousAccessGrace };
  // The static users are a sign-in source like the others; their passwords go through the gate,
  // which is built below (the closure runs only at sign-in).
  const local = createLocalConnector(config.users, (u, p, ip) => credentials.password(u, p, ip, { only: ['static'] }));
  const sources = new Map<string, Connector>([...connectors, [local.id, local]]);
  const access = new ContinuousAccess(accounts, sources, ca, log, (rec) => void store.publish(ACCOUNT_CHANGED_CHANNEL, rec.key).catch(() => {}));
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
  const federation = new FederationVerifier(raw.federation, { tokenTTLSeconds: config.token.ttlSeconds, log, baseDir: config.baseDir });
  // Admins are named by account name and group as the ACL sees them, which the namespace makes
  // unique to one source (a provider cannot send `admin` or a group of another connector's).
  const adminAccounts = new Set(raw.admin.accounts);
  const adminGroups = new Set(raw.admin.groups);
  const isAdmin = (a: CurrentAccount) => adminAccounts.has(a.name) || (labelsOf(a.identity).groups ?? []).some((g) => adminGroups.has(g));

  const limits = raw.limits;
  // Replicas must agree on the fingerprint of a failed secret, so derive it from the shared key.
  const fingerprintKey = raw.secrets.encryptionKey ? Buffer.from(hkdfSync('sha256', raw.secrets.encryptionKey, Buffer.alloc(0), 'berth auth-failure fingerprint', 32)) : randomBytes(32);
  const limiter = new AuthLimiter(
    store,
    store instanceof RedisStore ? store.rawClient : null,
    { failuresPerAccount: limits.failuresPerAccount, failuresPerAccountTotal: limits.failuresPerAccountTotal, failuresPerIP: limits.failuresPerIP, windowSeconds: config.seconds.limitsWindow, lockoutSeconds: config.seconds.limitsLockout },
    fingerprintKey,
  );
  const patVerifier = new PatVerifier(pats, accounts, access, refreshTokens);
  // The credential gate: every secret any route takes goes through it (static users last: by shape,
  // a password is whatever no other kind claims).
  const credentials = new Credentials([patVerifier, new RobotVerifier(robots), federation, staticUsers], refreshTokens, limiter, raw.token.reuseWindow, () => staticUsers.anonymous());

  const reuse = new TokenReuse(raw.token.reuseWindow);
  // Koa and the token pipeline resolve the client with the same code and options: they must agree
  // on who the client is (the pipeline's resolver skips Koa's per-request memo; it asks once).
  const clientOpts = { trustProxy: config.server.trustProxy, trustedProxies: config.server.trustedProxies, realIPHeader: config.server.realIPHeader };
  const resolveClient = clientResolver(clientOpts);
  const clientIp = clientIpResolver(clientOpts);
  const audit = createAuditLogger(log);
  const onOutcome = (o: TokenOutcome) => {
    metrics.countToken(o.outcome, o.grant === 'refresh_token' ? 'refresh' : o.kind, o.seconds, o.reused);
    if (o.outcome === 'unavailable') metrics.storeErrors.inc();
    if (o.outcome === 'rate_limited') metrics.rateLimited.inc({ scope: 'token' });
  };
  const unsubscribes: Unsubscribe[] = [];
  for (const channel of [PAT_REVOKED_CHANNEL, ROBOT_REVOKED_CHANNEL, ACCOUNT_CHANGED_CHANNEL]) {
    unsubscribes.push(
      await store.subscribe(channel, () => {
        reuse.clear();
        credentials.forget();
      }),
    );
  }

  // Every token request (any method) is answered by the pipeline on node:http, ahead of Koa.
  const tokenPaths = new Set([config.token.path, `${config.token.path}/token`].map(routeKey));
  const hsts = config.server.tls !== null || publicURL.startsWith('https:');
  const answerToken = tokenPipeline({ paths: tokenPaths, services: config.token.services, credentials, acl: config.acl, signer, realm: config.token.issuer, log, onOutcome, reuse, clientIp, audit, hsts });
  const { app, router } = createApp({
    log,
    resolveClient,
    hsts,
    onStoreError: () => metrics.storeErrors.inc(),
    appTitle: raw.web.title,
  });
  app.use(parseBodies({ enableTypes: ['form', 'json'], formLimit: '16kb', jsonLimit: '64kb' }));
  mountOperations(router, { store, metrics, jwks: { keys: [key, ...config.token.publishedKeys].map((k) => ({ ...k.jwk, kid: k.thumbprintKid, alg: k.alg, use: 'sig' })) } });

  const webDeps: WebDeps = {
    env: { appTitle: raw.web.title, registryHost: raw.web.registryHost, demo: raw.demo === true },
    publicURL,
    connectors,
    redirectURI: (id: string) => redirectURIFor(raw.connectors.find((c) => c.id === id) ?? { id }, publicURL),
    localLogin: raw.web.localLogin && [...config.users.values()].some((u) => u.hash),
    credentials,
    patVerifier,
    local,
    accounts,
    access,
    pats,
    sessions: new Sessions(store, config.seconds.webSessionTTL, publicURL.startsWith('https:')),
    recheckMinutes: Math.round(ca.ttlSeconds / 60),
    loginStarts: new LoginStarts(store),
    isAdmin,
    aclRules: raw.acl,
    metrics,
    log,
  };
  mountWebRoutes(router, webDeps);
  mountTokenApi(router, webDeps);
  mountRobotApi(router, { web: webDeps, robots, isAdmin });
  mountRobotPages(router, webDeps, robots, isAdmin);
  mountDeviceRoutes(router, { web: webDeps, store, sealer });
  app.use(router.routes()).use(router.allowedMethods());

  const koa = app.callback();
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (!answerToken(req, res)) void koa(req, res);
  };
  const dispose = async () => {
    await Promise.all(unsubscribes.splice(0).map((u) => u()));
  };
  return { config, handler, signingKey: key, certificatePath, pats, accounts, robots, connectors, dispose };
}

function restartOnlyChanges(old: Config, next: Config): string[] {
  const out: string[] = [];
  if (JSON.stringify(old.raw.server.addr) !== JSON.stringify(next.raw.server.addr)) out.push('server.addr');
  if (JSON.stringify([old.raw.server.certificate, old.raw.server.key]) !== JSON.stringify([next.raw.server.certificate, next.raw.server.key])) out.push('server TLS files');
  if (JSON.stringify(old.raw.store) !== JSON.stringify(next.raw.store)) out.push('store');
  if (old.server.publicURL !== next.server.publicURL) out.push('server.publicURL');
  return out;
}

export async function startServer(config: Config, opts: StartOptions = {}): Promise<RunningServer> {
  limitHeapGrowth();
  const log = opts.log ?? createLogger(config.raw.log.level);
  for (const w of configWarnings(config)) log.warn(w);
  const store = opts.store ?? (await openStore(config, log));
  let current: Generation | null = null;

  // The listener exists before the app: the default public URL (for OAuth redirects) is the
  // address it got, which with port 0 is known only after listen().
  const dispatch = (req: IncomingMessage, res: ServerResponse) => {
    if (current) current.handler(req, res);
    else {
      res.statusCode = 503;
      res.end();
    }
  };
  const server = config.server.tls ? createHttpsServer({ key: config.server.tls.key, cert: config.server.tls.cert }, dispatch) : createHttpServer(dispatch);
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? config.server.port, opts.host ?? config.server.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const scheme = config.server.tls ? 'https' : 'http';
  const hostForUrl = addr.family === 'IPv6' ? (addr.address === '::' ? '127.0.0.1' : `[${addr.address}]`) : addr.address === '0.0.0.0' ? '127.0.0.1' : addr.address;
  const url = `${scheme}://${hostForUrl}:${addr.port}`;
  const publicURL = config.server.publicURL ?? url;
  if (!config.server.publicURL && config.raw.connectors.length) log.warn({ publicURL }, 'server.publicURL not set: using the listening address for OAuth redirect URLs');

  const shared: Shared = { store, log, metrics: new Metrics(() => shared.pats().countActive()), publicURL, fetch: opts.fetch, pats: () => current!.pats };
  try {
    current = await buildGeneration(config, shared);
  } catch (e) {
    server.close();
    throw e;
  }
  // The subscriptions are set up in the background (Redis may be down at start); give them a moment,
  // so that a healthy start is ready at once rather than after the first probe fails.
  for (let i = 0; i < 20 && store.subscriptionProblem() !== null; i++) await new Promise((r) => setTimeout(r, 50));
  log.info({ url, tokenPath: config.token.path }, 'berth listening');
  const gen = () => current!;
  return {
    url,
    port: addr.port,
    server,
    store,
    log,
    publicURL,
    get signingKey() {
      return gen().signingKey;
    },
    get certificatePath() {
      return gen().certificatePath;
    },
    get pats() {
      return gen().pats;
    },
    get accounts() {
      return gen().accounts;
    },
    get robots() {
      return gen().robots;
    },
    get connectors() {
      return gen().connectors;
    },
    async reload(next: Config) {
      const ignored = restartOnlyChanges(gen().config, next);
      if (ignored.length) log.warn({ settings: ignored }, 'configuration reloaded; these settings take effect only after a restart');
      const previous = gen();
      current = await buildGeneration(next, shared);
      // Requests in flight finish on the old handler; only its revocation handlers go, so that
      // nothing keeps it (and its caches) alive.
      await previous.dispose();
      log.info({ rules: next.raw.acl.length, users: next.users.size, connectors: next.raw.connectors.length }, 'configuration reloaded');
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await gen().dispose();
      if (!opts.store) await store.close();
    },
  };
}
