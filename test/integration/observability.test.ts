import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { hash } from '@node-rs/bcrypt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { startDevProvider, type DevProvider } from '../../src/demo/dev-provider.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { cleanPrefix, freePort, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';
import { basic, WebClient } from '../helpers/web-client.js';

// Runs every flow with logging at trace level against real Redis and a real OpenID provider, then
// checks that no secret reached the log, that audit events say who/what/why, and that /metrics
// counted it all.

const STATIC_PASSWORD = 'static-Secret-4711';
const WRONG_PASSWORD = 'wrong-Guess-0815';
const CLIENT_SECRET = 'oidc-client-Secret-9d2f';
const ALICE_PASSWORD = 'alice-Provider-pw-77';
const ENCRYPTION_KEY = 'enc-key-0123456789abcdef0123456789abcdef';
// What a password manager generates, typed into the user name field by mistake.
const SWAPPED_RANDOM = 'q8Zt3vN1xW7pL0cR4mYk';
const PROXY_CREDENTIAL = 'cHJveHktdXNlcjpwcm94eS1wYXNz';
const CSRF_HEADER = 'csrf-Header-Value-31337';
const API_KEY_HEADER = 'api-Key-Header-Value-4242';

let dir: string;
let prefix: string;
let provider: DevProvider;
let berth: RunningServer;
const lines: string[] = [];
const secrets: string[] = [STATIC_PASSWORD, WRONG_PASSWORD, CLIENT_SECRET, ALICE_PASSWORD, ENCRYPTION_KEY];

async function token(query: string, auth?: string): Promise<Response> {
  return fetch(`${berth.url}/auth?service=registry&${query}`, auth ? { headers: { authorization: auth } } : {});
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-obs-'));
  prefix = uniqueKeyPrefix('obs');
  const port = await freePort();
  const publicURL = `http://127.0.0.1:${port}`;
  provider = await startDevProvider({
    users: [{ username: 'alice', password: ALICE_PASSWORD, email: 'alice@example.test', emailVerified: true, groups: ['team-a'] }],
    clients: [{ clientId: 'berth', clientSecret: CLIENT_SECRET, redirectUris: [`${publicURL}/callback/corp`] }],
  });
  process.env.OBS_TEST_CLIENT_SECRET = CLIENT_SECRET;
  process.env.OBS_TEST_ENC_KEY = ENCRYPTION_KEY;
  const config = await loadConfigText(
    `
server: { addr: "127.0.0.1:${port}", publicURL: "${publicURL}" }
token: { issuer: obs, services: [registry], generatedKeyDir: keys }
store: { type: redis, redis: { url: "${await redisUrl()}", keyPrefix: "${prefix}" } }
secrets: { encryptionKey: "\${env:OBS_TEST_ENC_KEY}" }
limits: { failuresPerAccount: 3, failuresPerIP: 1000, window: 1m, lockout: 1m }
log: { level: trace }
connectors:
  - { type: oidc, id: corp, name: Corp, issuer: "${provider.issuer}", clientID: berth, clientSecret: "\${env:OBS_TEST_CLIENT_SECRET}", allowInsecureIssuer: true, scopes: [openid, profile, email, groups, offline_access] }
users:
  ops: { password: "${await hash(STATIC_PASSWORD, 4)}", labels: { groups: [ops] } }
  victim: { password: "${await hash(STATIC_PASSWORD, 4)}" }
  steady: { password: "${await hash(STATIC_PASSWORD, 4)}" }
acl:
  - { match: { labels: { groups: ops } }, actions: ["*"], comment: ops does everything }
  - { match: { name: "\${labels:groups}/**" }, actions: [push, pull], comment: team namespaces }
`,
    dir,
  );
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  berth = await startServer(config, { log: createLogger('trace', sink) });
});

afterAll(async () => {
  await berth?.close();
  await provider?.close();
  await cleanPrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
});

describe('every flow at trace level', () => {
  it('issues tokens, signs in, creates and uses PATs, refreshes — and logs no secret', async () => {
    expect((await token('scope=repository:x/y:pull', basic('ops', STATIC_PASSWORD))).status).toBe(200);
    expect((await token('scope=repository:x/y:pull', basic('ops', WRONG_PASSWORD))).status).toBe(401);

    const offline = await fetch(`${berth.url}/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', client_id: 'test', service: 'registry', username: 'ops', password: STATIC_PASSWORD, access_type: 'offline', scope: 'repository:x/y:pull' }).toString(),
    });
    const offlineBody = (await offline.json()) as { refresh_token: string; access_token: string };
    expect(offlineBody.refresh_token).toMatch(/^berth_rt_/);
    secrets.push(offlineBody.refresh_token, offlineBody.access_token);
    const refreshed = await fetch(`${berth.url}/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', client_id: 'test', service: 'registry', refresh_token: offlineBody.refresh_token, scope: 'repository:x/y:push' }).toString(),
    });
    expect(refreshed.status).toBe(200);

    const web = new WebClient(berth.url);
    await web.signInOidc('corp', 'alice', ALICE_PASSWORD);
    secrets.push(...web.cookieHeader().split('; ').map((c) => c.split('=')[1]!).filter((v) => v.length > 16));
    const pat = await web.createPat('laptop');
    secrets.push(pat);
    const used = await token('scope=repository:team-a/app:push,pull', basic('alice', pat));
    expect(used.status).toBe(200);
    secrets.push(((await used.json()) as { token: string }).token);

    const apiCreated = await fetch(`${berth.url}/api/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${pat}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'script', expiresInDays: 1 }) });
    expect(apiCreated.status).toBe(201);
    const created = (await apiCreated.json()) as { token: string; id: string };
    secrets.push(created.token);
    expect((await fetch(`${berth.url}/api/v1/tokens/${created.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${pat}` } })).status).toBe(204);
    expect((await token('scope=repository:team-a/app:pull', basic('alice', created.token))).status).toBe(401);

    const local = new WebClient(berth.url);
    expect((await local.signInLocal('ops', STATIC_PASSWORD)).status).toBe(200);
    expect((await new WebClient(berth.url).signInLocal('ops', WRONG_PASSWORD)).status).toBe(401);

    // Fields swapped: the secret typed as the user name, on the token endpoint and the sign-in form.
    const jwtLike = `eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.${Buffer.from(JSON.stringify({ sub: 'swapped', n: SWAPPED_RANDOM })).toString('base64url')}.c2lnbmF0dXJlLW9mLWEtdGVzdC1qd3Q`;
    secrets.push(SWAPPED_RANDOM, jwtLike);
    expect((await token('scope=repository:x/y:pull', basic(pat, 'alice'))).status).toBe(401);
    expect((await token('scope=repository:x/y:pull', basic(SWAPPED_RANDOM, 'ops'))).status).toBe(401);
    expect((await token('scope=repository:x/y:pull', basic(jwtLike, 'oidc'))).status).toBe(401);
    expect((await new WebClient(berth.url).signInLocal(SWAPPED_RANDOM, 'ops')).status).toBe(401);
    expect((await new WebClient(berth.url).signInLocal(pat, 'alice')).status).toBe(401);
    // Headers that carry credentials besides Authorization and Cookie.
    expect((await fetch(`${berth.url}/healthz`, { headers: { 'proxy-authorization': `Basic ${PROXY_CREDENTIAL}`, 'x-csrf-token': CSRF_HEADER, 'x-api-key': API_KEY_HEADER } })).status).toBe(200);
    secrets.push(PROXY_CREDENTIAL, CSRF_HEADER, API_KEY_HEADER);

    const log = lines.join('');
    expect(log.length).toBeGreaterThan(1000);
    for (const s of secrets) expect(log.includes(s), `a secret (${s.slice(0, 6)}…) reached the log`).toBe(false);
    // The swapped attempts are still audited, with a placeholder instead of the user name.
    const failures = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.audit && e.outcome === 'unauthorized' && typeof e.user === 'string' && e.user.startsWith('[looks like a secret'));
    expect(failures.length).toBeGreaterThanOrEqual(3);
  });

  it('writes audit events that say who asked what, what was granted and which rule decided', () => {
    const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.audit);
    const grant = events.find((e) => e.audit === 'token' && e.account === 'alice');
    expect(grant).toBeDefined();
    expect(grant!.ip).toBeTruthy();
    expect(grant!.decisions).toEqual([{ scope: 'repository:team-a/app:push,pull', granted: ['push', 'pull'], rule: 1, comment: 'team namespaces' }]);
    expect(events.some((e) => e.audit === 'token' && e.outcome === 'unauthorized' && e.user === 'ops')).toBe(true);
    expect(events.some((e) => e.audit === 'login' && e.outcome === 'success' && e.connector === 'corp' && e.account === 'alice')).toBe(true);
    expect(events.some((e) => e.audit === 'login' && e.outcome === 'failure' && e.connector === 'local')).toBe(true);
    expect(events.filter((e) => e.audit === 'pat.create').length).toBe(2);
    expect(events.some((e) => e.audit === 'pat.revoke' && e.found === true)).toBe(true);
  });

  it('exposes Prometheus metrics for what happened', async () => {
    const res = await fetch(`${berth.url}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    expect(value(/berth_token_requests_total\{outcome="granted",kind="static"\} (\d+)/)).toBeGreaterThanOrEqual(2);
    expect(value(/berth_token_requests_total\{outcome="granted",kind="pat"\} (\d+)/)).toBe(1);
    expect(value(/berth_token_requests_total\{outcome="granted",kind="refresh"\} (\d+)/)).toBe(1);
    expect(value(/berth_token_requests_total\{outcome="unauthorized",kind="unknown"\} (\d+)/)).toBeGreaterThanOrEqual(2);
    expect(value(/berth_logins_total\{connector="corp",outcome="success"\} (\d+)/)).toBe(1);
    expect(value(/berth_idp_requests_total\{connector="corp",operation="callback",outcome="ok"\} (\d+)/)).toBe(1);
    expect(value(/berth_active_pats (\d+)/)).toBe(1);
    expect(text).toContain('berth_token_request_duration_seconds_bucket');
  });

  it('answers health and readiness with JSON', async () => {
    const h = await fetch(`${berth.url}/healthz`);
    expect(await h.json()).toEqual({ status: 'ok' });
    const r = await fetch(`${berth.url}/readyz`);
    expect(r.status).toBe(200);
    expect(((await r.json()) as { checks: Record<string, string> }).checks).toEqual({ store: 'ok', pubsub: 'ok', signingKey: 'ok', config: 'ok' });
  });
});

describe('failed-authentication limits', () => {
  it('locks an account out after repeated failures with 429, Retry-After and the registry error JSON', async () => {
    for (let i = 0; i < 3; i++) expect((await token('', basic('victim', `bad-${i}`))).status).toBe(401);
    const locked = await token('', basic('victim', STATIC_PASSWORD));
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await locked.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('TOOMANYREQUESTS');
    // Others are not affected, and successful requests are never slowed or counted.
    for (let i = 0; i < 10; i++) expect((await token('', basic('ops', STATIC_PASSWORD))).status).toBe(200);
  });

  it('does not hold up a password verified moments ago: guesses by others cannot lock its owner out mid-push', async () => {
    const scoped = (n: number) => fetch(`${berth.url}/auth?service=registry&scope=repository:steady/app-${n}:pull`, { headers: { authorization: basic('steady', STATIC_PASSWORD) } });
    expect((await scoped(1)).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await token('', basic('steady', `guess-${i}`))).status).toBe(401);
    expect((await token('', basic('steady', 'guess-4'))).status).toBe(429);
    // A new scope, so not a repeat: the password is recalled (token.reuseWindow), not verified again.
    expect((await scoped(2)).status).toBe(200);
  });

  it('counts a containerd POST-then-GET retry of the same wrong secret once', async () => {
    const post = () =>
      fetch(`${berth.url}/auth`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'password', client_id: 'containerd', service: 'registry', username: 'carol', password: 'same-wrong' }).toString(),
      });
    for (let i = 0; i < 3; i++) {
      expect((await post()).status).toBe(401);
      expect((await token('', basic('carol', 'same-wrong'))).status).toBe(401);
    }
    // Three distinct failures would lock; six requests of one secret counted once do not.
    expect((await token('', basic('carol', 'another-wrong'))).status).toBe(401);
    expect((await token('', basic('carol', 'third-wrong'))).status).toBe(401);
    expect((await token('', basic('carol', 'fourth-wrong'))).status).toBe(429);
  });
});
