import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Koa from 'koa';
import type { RunningServer } from '../src/server.js';
import { benchScopes, BENCH_SERVICE, largeAcl, PAT_USER, ROBOT_NAME, SMALL_ACL, STATIC_USER } from './acl-fixture.js';

/**
 * One server under load, in its own process so that the load generator never shares its event loop.
 * Started by run.ts with fork(); the spec comes as argv[2] (JSON), `ready` goes back over IPC and
 * `stop` ends the process (cleanly, so that --cpu-prof can write its profile).
 */

export type StoreSpec = { type: 'redis'; url: string; keyPrefix: string } | { type: 'memory' };

export type TargetSpec =
  | { kind: 'koa'; bodyBytes?: number }
  /** node:http and nothing else: what the hardware allows for an answer of `bodyBytes`, with or without one signature. */
  | { kind: 'floor'; bodyBytes: number; sign: boolean }
  /** keyDir: a key pair made beforehand, as on every start after the first (the key is loaded, not generated). */
  | { kind: 'berth'; credential: 'pat' | 'static' | 'robot'; acl: 'small' | 'large'; scopes: number; store: StoreSpec; logLevel: string; reuse: boolean; keyAlg?: 'ES256' | 'RS256'; keyDir?: string };

export interface TargetReady {
  type: 'ready';
  url: string;
  /** Path and query of the request under load. */
  path: string;
  headers: Record<string, string>;
}

export type TargetMessage = TargetReady | { type: 'error'; message: string } | { type: 'memory'; usage: NodeJS.MemoryUsage };

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** A stand-in for a token answer of about `bodyBytes`: the same fields, the token as padding. */
function tokenSizedAnswer(bodyBytes: number): { token: string; access_token: string; expires_in: number } {
  const padding = 'x'.repeat(Math.max(0, Math.floor((bodyBytes - 40) / 2)));
  return { token: padding, access_token: padding, expires_in: 900 };
}

async function startKoa(bodyBytes = 0): Promise<{ ready: TargetReady; stop: () => Promise<void> }> {
  const app = new Koa();
  // With bodyBytes, the answer is as large as a token response (a JWT with x5c, sent as both
  // `token` and `access_token`): writing 2 kB costs a bare route a third of its throughput.
  const sized = tokenSizedAnswer(bodyBytes);
  app.use((ctx) => {
    if (ctx.path === '/json') ctx.body = bodyBytes ? sized : { status: 'ok', service: BENCH_SERVICE };
    else ctx.status = 404;
  });
  const server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    ready: { type: 'ready', url: `http://127.0.0.1:${port}`, path: '/json', headers: {} },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The floor under the token endpoint: node:http answering a body as large as a token response, and
 * with `sign` one ES256 signature per request over an input as large as a token's (header with x5c,
 * and a payload naming the requested path), on libuv's thread pool as Berth signs. No parsing, no
 * credential, no ACL, no log line, no metrics: Berth's cold path cannot be faster than this.
 */
async function startFloor(bodyBytes: number, withSignature: boolean): Promise<{ ready: TargetReady; stop: () => Promise<void> }> {
  const key = { key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, dsaEncoding: 'ieee-p1363' as const };
  const header = 'h'.repeat(1000);
  const fixed = JSON.stringify(tokenSizedAnswer(bodyBytes));
  const answer = (res: import('node:http').ServerResponse, body: string) => {
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
    res.end(body);
  };
  const server = createServer((req, res) => {
    if (!withSignature) return answer(res, fixed);
    const input = `${header}.${Buffer.from(`{"sub":"alice","access":[{"type":"repository","name":${JSON.stringify(req.url)},"actions":["pull","push"]}]}`).toString('base64url')}`;
    sign('sha256', Buffer.from(input), key, (err, sig) => {
      if (err) return answer(res, '{}');
      const token = `${input}.${sig.toString('base64url')}`;
      answer(res, `{"token":"${token}","access_token":"${token}","expires_in":900}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const query = `service=${BENCH_SERVICE}&${benchScopes(1).map((s) => `scope=${encodeURIComponent(s)}`).join('&')}`;
  return {
    ready: { type: 'ready', url: `http://127.0.0.1:${port}`, path: `/auth?${query}`, headers: {} },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function startBerth(spec: Extract<TargetSpec, { kind: 'berth' }>): Promise<{ ready: TargetReady; stop: () => Promise<void> }> {
  // Loaded here, not at the top: the bare Koa target's memory must not include Berth's modules.
  const [{ hash }, { default: yaml }, { loadConfigText }, { startServer }, { accountKey }] = await Promise.all([
    import('@node-rs/bcrypt'),
    import('js-yaml'),
    import('../src/app/load-config.js'),
    import('../src/server.js'),
    import('../src/identity/accounts.js'),
  ]);
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-'));
  const doc = {
    server: { addr: '127.0.0.1:0' },
    // reuseWindow 0: every request goes through the whole pipeline and signs a new token.
    token: { issuer: 'berth-bench', services: [BENCH_SERVICE], generatedKeyDir: spec.keyDir ?? 'keys', generatedKeyAlg: spec.keyAlg ?? 'ES256', ...(spec.reuse ? {} : { reuseWindow: 0 }) },
    store: spec.store.type === 'redis' ? { type: 'redis', redis: { url: spec.store.url, keyPrefix: spec.store.keyPrefix } } : { type: 'memory' },
    secrets: { encryptionKey: randomBytes(32).toString('hex') },
    log: { level: spec.logLevel },
    users: { [STATIC_USER.username]: { password: await hash(STATIC_USER.password, 10), labels: { groups: [...STATIC_USER.groups] } } },
    // Never contacted: the bench account has no upstream token, so continuous access keeps its groups.
    connectors: [{ type: 'oidc', id: 'corp', issuer: 'http://127.0.0.1:9/', clientID: 'bench', clientSecret: 'bench', allowInsecureIssuer: true }],
    acl: spec.acl === 'large' ? largeAcl(1000) : SMALL_ACL,
  };
  const config = await loadConfigText(yaml.dump(doc), dir);
  let running: RunningServer;
  try {
    running = await startServer(config, { port: 0, host: '127.0.0.1' });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let password: string = STATIC_USER.password;
  let username: string = STATIC_USER.username;
  if (spec.credential === 'pat') {
    const identity = { connector: 'corp', subject: 'bench-subject', username: PAT_USER.username, email: PAT_USER.email, groups: [...PAT_USER.groups] };
    await running.accounts.recordLogin(identity);
    const { secret } = await running.pats.create({ owner: accountKey(identity), username: PAT_USER.username, name: 'bench' });
    password = secret;
    username = PAT_USER.username;
  }
  if (spec.credential === 'robot') {
    // A later round reuses the target's Redis prefix: start from no robot.
    if (await running.robots.get(`robot:${ROBOT_NAME}`)) await running.robots.delete(`robot:${ROBOT_NAME}`);
    const { secret, record } = await running.robots.create({ name: ROBOT_NAME, owner: 'bench', restriction: { repositories: ['team-a/**'], actions: ['pull', 'push'] } });
    password = secret;
    username = record.name;
  }
  const query = [`service=${BENCH_SERVICE}`, ...benchScopes(spec.scopes).map((s) => `scope=${encodeURIComponent(s)}`)].join('&');
  return {
    ready: { type: 'ready', url: running.url, path: `/auth?${query}`, headers: { authorization: basic(username, password) } },
    stop: async () => {
      await running.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function main(): Promise<void> {
  const send = (m: TargetMessage) => process.send?.(m);
  let stop: (() => Promise<void>) | undefined;
  process.on('message', (m: { type?: string }) => {
    if (m?.type === 'memory') send({ type: 'memory', usage: process.memoryUsage() });
    if (m?.type !== 'stop') return;
    const done = () => process.exit(0);
    (stop ? stop() : Promise.resolve()).then(done, done);
  });
  // The parent going away must not leave a server behind.
  process.on('disconnect', () => process.exit(0));
  try {
    const spec = JSON.parse(process.argv[2] ?? '') as TargetSpec;
    const started = spec.kind === 'koa' ? await startKoa(spec.bodyBytes) : spec.kind === 'floor' ? await startFloor(spec.bodyBytes, spec.sign) : await startBerth(spec);
    stop = started.stop;
    send(started.ready);
  } catch (e) {
    send({ type: 'error', message: (e as Error).stack ?? String(e) });
    process.exit(1);
  }
}

void main();
