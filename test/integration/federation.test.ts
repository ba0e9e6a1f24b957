import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import yaml from 'js-yaml';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { compilePolicy, evaluatePolicy } from '../../src/federation/policy.js';
import { federationPolicySchema } from '../../src/config/federation.js';
import { loadConfigText } from '../../src/app/load-config.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { RefreshTokens } from '../../src/tokens/refresh-tokens.js';
import { startCiIssuer, tamper, type CiIssuer } from '../helpers/ci-issuer.js';
import { buildOciImage, type OciImage } from '../helpers/oci-image.js';
import { cleanPrefix, freePort, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';
import { basicAuth, decodeJwt, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { copy, describeResult, inspect } from '../helpers/skopeo.js';

const SERVICE = 'registry-federation';
const ISSUER = 'berth-federation-test';
const AUDIENCE = 'berth-ci';
const TOKEN_TTL = 300;
// Policies here use a 1 s JWKS cooldown; waiting a little longer lets an unknown kid trigger a re-read.
const COOLDOWN_MS = 1100;
const adminPassword = randomBytes(12).toString('base64url');

let workDir: string;
let keyPrefix: string;
let github: CiIssuer;
let stranger: CiIssuer;
let downIssuer: string;
let berth: RunningServer;
let registry: RunningRegistry;
const tempDirs: string[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const realm = () => `${berth.url}/auth`;
const ref = (repo: string) => `docker://${registry.host}/${repo}`;

function image(): OciImage {
  const img = buildOciImage();
  tempDirs.push(img.dir);
  return img;
}

async function berthConfig(): Promise<string> {
  return yaml.dump({
    server: { addr: '127.0.0.1:0' },
    log: { level: 'silent' },
    store: { type: 'redis', redis: { url: await redisUrl(), keyPrefix } },
    secrets: { encryptionKey: randomBytes(32).toString('hex') },
    // The refusal tests fail on purpose many times from one address and one user name.
    limits: { failuresPerAccount: 1000, failuresPerIP: 1000 },
    token: { issuer: ISSUER, expiration: TOKEN_TTL, services: [SERVICE], generatedKeyDir: join(workDir, 'keys') },
    users: { admin: { password: await hash(adminPassword, 4) } },
    federation: [
      {
        id: 'gh-deploy',
        issuer: github.issuer,
        audience: AUDIENCE,
        claims: { repository: 'octo-org/deployer', environment: 'production', ref: 'refs/heads/main' },
        account: 'deploy:${repository}',
        labels: { deploy: ['prod', 'run-${run_id}'] },
        maxTokenTTL: '1h',
        // Deploy jobs wait for an approval: their ID token may be older when it is used.
        maxTokenAge: '3h',
        allowInsecureIssuer: true,
        jwksCooldown: '1s',
      },
      {
        id: 'gh-app',
        issuer: github.issuer,
        audience: [AUDIENCE, 'https://github.com/octo-org'],
        claims: { repository_owner: 'octo-org', repository: 'octo-org/*', ref: ['refs/heads/main', 'refs/tags/v*'], ref_protected: true },
        account: 'ci:${repository}',
        labels: { ci: 'github', workflow: '${workflow}', env: '${environment}' },
        maxTokenTTL: '2m',
        allowInsecureIssuer: true,
        jwksCooldown: '1s',
      },
      {
        id: 'unreachable',
        issuer: downIssuer,
        audience: AUDIENCE,
        claims: { repository: 'octo-org/app' },
        account: 'down:${repository}',
        allowInsecureIssuer: true,
      },
    ],
    acl: [
      { match: { account: 'admin' }, actions: ['*'] },
      { match: { account: 'ci:octo-org/*', type: 'repository', name: 'octo-org/**' }, actions: ['push', 'pull'], comment: 'octo-org CI pushes to its namespace' },
      { match: { labels: { deploy: 'prod' }, type: 'repository', name: 'releases/**' }, actions: ['push', 'pull'], comment: 'production deploy jobs publish releases' },
      { match: { labels: { ci: 'github' }, type: 'repository', name: 'shared/**' }, actions: ['pull'], comment: 'any GitHub CI job pulls shared images' },
      { match: { labels: { env: 'production' }, type: 'repository', name: 'prod/**' }, actions: ['pull'], comment: 'jobs in the production environment pull prod images' },
    ],
  });
}

async function tokenGet(scopes: string[], authorization?: string, extra: Record<string, string> = {}): Promise<Response> {
  const q = new URLSearchParams({ service: SERVICE, ...extra });
  for (const s of scopes) q.append('scope', s);
  return fetch(`${realm()}?${q}`, authorization ? { headers: { Authorization: authorization } } : {});
}

async function tokenPost(form: Record<string, string>): Promise<Response> {
  return fetch(realm(), { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ service: SERVICE, client_id: 'ci', ...form }).toString() });
}

async function registryToken(idToken: string, scopes: string[], user = 'oidc'): Promise<{ payload: Record<string, unknown>; expiresIn: number }> {
  const res = await tokenGet(scopes, basicAuth(user, idToken));
  const body = (await res.json()) as { token?: string; expires_in?: number; errors?: unknown };
  expect(res.status, JSON.stringify(body)).toBe(200);
  return { payload: decodeJwt(body.token!).payload, expiresIn: body.expires_in! };
}

/** A refusal as the client sees it: 401 with a Basic challenge and the registry error format. */
async function refusal(idToken: string, user = 'oidc'): Promise<string> {
  const res = await tokenGet(['repository:octo-org/app:pull'], basicAuth(user, idToken));
  expect(res.status).toBe(401);
  expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  expect(body.errors[0]!.code).toBe('UNAUTHORIZED');
  const message = body.errors[0]!.message;
  // Neither the token nor any part of its signature comes back.
  expect(message).not.toContain(idToken);
  expect(message).not.toContain(idToken.split('.')[2] || '\u0000');
  return message;
}

const now = () => Math.floor(Date.now() / 1000);

describe('CI federation: an OIDC ID token as the registry password', { timeout: 60_000 }, () => {
  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'berth-federation-'));
    tempDirs.push(workDir);
    keyPrefix = uniqueKeyPrefix('federation');
    github = await startCiIssuer();
    stranger = await startCiIssuer();
    downIssuer = `http://127.0.0.1:${await freePort()}`;
    berth = await startServer(await loadConfigText(await berthConfig(), workDir), { port: 0 });
    registry = await startRegistry({ realm: realm(), service: SERVICE, issuer: ISSUER, rootCertBundlePath: berth.certificatePath! });
  });

  afterAll(async () => {
    await registry?.stop();
    await berth?.close();
    await github?.close();
    await stranger?.close();
    if (keyPrefix) await cleanPrefix(keyPrefix);
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });

  beforeEach((ctx) => {
    ctx.onTestFailed(() => {
      console.error(`--- registry log (last 10000 chars) ---\n${registry?.log().slice(-10_000)}`);
    });
  });

  it('a GitHub Actions job pushes with skopeo (user oidc, password = ID token) and becomes the templated account', async () => {
    const idToken = await github.mint(AUDIENCE);
    const creds = { username: 'oidc', password: idToken };
    const img = image();
    const push = await copy(`oci:${img.dir}`, `${ref('octo-org/app')}:v1`, creds);
    expect(push.code, describeResult(push)).toBe(0);
    const insp = await inspect(`${ref('octo-org/app')}:v1`, creds);
    expect(insp.code, describeResult(insp)).toBe(0);
    expect((JSON.parse(insp.stdout) as { Digest: string }).Digest).toBe(img.manifestDigest);

    const { payload } = await registryToken(idToken, ['repository:octo-org/app:push,pull', 'repository:other-org/app:push,pull']);
    expect(payload.sub).toBe('ci:octo-org/app');
    expect(payload.iss).toBe(ISSUER);
    expect(payload.access).toEqual([
      { type: 'repository', name: 'octo-org/app', actions: ['push', 'pull'] },
      { type: 'repository', name: 'other-org/app', actions: [] },
    ]);
    // Discovery happened once; the key set is cached.
    expect(github.requests.discovery).toBe(1);

    const outside = await copy(`oci:${img.dir}`, `${ref('other-org/app')}:v1`, creds);
    expect(outside.code).not.toBe(0);
    expect(outside.stderr).toMatch(/unauthorized|denied|authentication required/i);
  });

  it('labels from the matching policy grant through the ACL; the first matching policy decides', async () => {
    const deployToken = await github.mint(AUDIENCE, { repository: 'octo-org/deployer', environment: 'production' });
    const img = image();
    const push = await copy(`oci:${img.dir}`, `${ref('releases/tool')}:1.0`, { username: 'oidc', password: deployToken });
    expect(push.code, describeResult(push)).toBe(0);

    // octo-org/deployer would match gh-app as well; gh-deploy comes first and its account carries no ci: grant.
    const deploy = await registryToken(deployToken, ['repository:releases/tool:push', 'repository:octo-org/deployer:push', 'repository:shared/base:pull']);
    expect(deploy.payload.sub).toBe('deploy:octo-org/deployer');
    expect(deploy.payload.access).toEqual([
      { type: 'repository', name: 'releases/tool', actions: ['push'] },
      { type: 'repository', name: 'octo-org/deployer', actions: [] },
      { type: 'repository', name: 'shared/base', actions: [] },
    ]);

    // A job without an environment gets no env label (its template claim is missing), so no prod/ access.
    const app = await registryToken(await github.mint(AUDIENCE), ['repository:shared/base:pull,push', 'repository:releases/tool:push', 'repository:prod/db:pull']);
    expect(app.payload.access).toEqual([
      { type: 'repository', name: 'shared/base', actions: ['pull'] },
      { type: 'repository', name: 'releases/tool', actions: [] },
      { type: 'repository', name: 'prod/db', actions: [] },
    ]);
  });

  it('the Basic user may name one policy; POST grant_type=password works too', async () => {
    const deployToken = await github.mint(AUDIENCE, { repository: 'octo-org/deployer', environment: 'production' });
    const viaApp = await registryToken(deployToken, ['repository:octo-org/deployer:push', 'repository:prod/db:pull'], 'gh-app');
    expect(viaApp.payload.sub).toBe('ci:octo-org/deployer');
    // gh-app's env label is filled from the token's environment claim.
    expect(viaApp.payload.access).toEqual([
      { type: 'repository', name: 'octo-org/deployer', actions: ['push'] },
      { type: 'repository', name: 'prod/db', actions: ['pull'] },
    ]);

    const appToken = await github.mint(AUDIENCE);
    const msg = await refusal(appToken, 'gh-deploy');
    expect(msg).toContain('policy gh-deploy');
    expect(msg).not.toContain('policy gh-app');
    expect(msg).toContain('repository is "octo-org/app" (expected "octo-org/deployer")');
    expect(msg).toContain('environment is missing (expected "production")');

    expect(await refusal(appToken, 'admin')).toMatch(/user name "oidc" or the id of a federation policy/);

    const res = await tokenPost({ grant_type: 'password', username: 'oidc', password: appToken, scope: 'repository:octo-org/app:pull' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string; scope: string };
    expect(body.scope).toBe('repository:octo-org/app:pull');
    expect(decodeJwt(body.access_token).payload.sub).toBe('ci:octo-org/app');
  });

  it('a static user whose password is not JWT-shaped still signs in with bcrypt', async () => {
    const res = await tokenGet(['repository:octo-org/app:pull'], basicAuth('admin', adminPassword));
    expect(res.status).toBe(200);
    const { payload } = decodeJwt(((await res.json()) as { token: string }).token);
    expect(payload.sub).toBe('admin');
    expect((payload.exp as number) - (payload.iat as number)).toBe(TOKEN_TTL);
  });

  it('refuses a wrong audience and a job from another repository or owner, naming the claims', async () => {
    const wrongAud = await refusal(await github.mint('https://github.com/evil-org'));
    expect(wrongAud).toContain(`issuer "${github.issuer}"`);
    expect(wrongAud).toContain('policy gh-deploy: aud is "https://github.com/evil-org" (expected "berth-ci")');
    expect(wrongAud).toContain('policy gh-app: aud is "https://github.com/evil-org" (expected one of "berth-ci", "https://github.com/octo-org")');

    const evil = await github.mint(AUDIENCE, { repository: 'evil-org/app' });
    const wrongRepo = await refusal(evil);
    expect(wrongRepo).toContain('repository_owner is "evil-org" (expected "octo-org")');
    expect(wrongRepo).toContain('repository is "evil-org/app" (expected "octo-org/*")');
    const img = image();
    const push = await copy(`oci:${img.dir}`, `${ref('octo-org/app')}:evil`, { username: 'oidc', password: evil });
    expect(push.code).not.toBe(0);

    const branch = await refusal(await github.mint(AUDIENCE, { ref: 'refs/heads/feature', claims: { ref_protected: 'false' } }));
    expect(branch).toContain('ref is "refs/heads/feature" (expected one of "refs/heads/main", "refs/tags/v*")');
    expect(branch).toContain('ref_protected is "false" (expected "true")');

    // A tag matching the glob passes the same policy.
    const tag = await registryToken(await github.mint(AUDIENCE, { ref: 'refs/tags/v1.2.3' }), ['repository:octo-org/app:push']);
    expect(tag.payload.sub).toBe('ci:octo-org/app');
  });

  it('refuses expired and not-yet-valid tokens, with 60 s of leeway', async () => {
    expect(await refusal(await github.mint(AUDIENCE, { iatOffset: -600, lifetime: 300 }))).toMatch(/expired/);
    expect(await refusal(await github.sign({ ...github.jobClaims(), aud: AUDIENCE, nbf: now() + 300 }))).toMatch(/not yet valid/);
    expect(await refusal(await github.sign({ ...github.jobClaims(), aud: AUDIENCE, iat: now() + 300 }))).toMatch(/issued in the future/);
    // Expired 30 s ago: within the leeway for a CI runner's clock.
    const late = await registryToken(await github.mint(AUDIENCE, { iatOffset: -330, lifetime: 300 }), ['repository:octo-org/app:pull']);
    expect(late.payload.sub).toBe('ci:octo-org/app');
  });

  it('refuses alg none, HS256 keyed with the public key, and a tampered payload', async () => {
    const claims = { ...github.jobClaims(), aud: AUDIENCE };
    expect(await refusal(github.unsigned(claims))).toMatch(/algorithm "none" is not accepted/);
    expect(await refusal(github.hmacWithPublicKey(claims))).toMatch(/algorithm "HS256" is not accepted/);
    const genuine = await github.sign(claims);
    expect(await refusal(tamper(genuine, { repository: 'octo-org/other', sub: 'repo:octo-org/other:ref:refs/heads/main' }))).toMatch(/signature does not verify/);
    // The untampered original is fine: the refusal was about the change.
    expect((await registryToken(genuine, ['repository:octo-org/app:pull'])).payload.sub).toBe('ci:octo-org/app');
  });

  it('an unknown kid makes Berth re-read the key set once, then refuses', async () => {
    await sleep(COOLDOWN_MS);
    const before = github.requests.jwks;
    const forged = await github.signWithUnknownKey({ ...github.jobClaims(), aud: AUDIENCE });
    const msg = await refusal(forged);
    expect(msg).toMatch(/the issuer publishes no key with the ID token's kid ".+" \(issuer "http:/);
    expect(github.requests.jwks).toBe(before + 1);
    // Within the cooldown a second unknown kid does not hit the issuer again.
    await refusal(await github.signWithUnknownKey({ ...github.jobClaims(), aud: AUDIENCE }));
    expect(github.requests.jwks).toBe(before + 1);
  });

  it('accepts a rotated key once the key set is re-read, and refuses the withdrawn one', async () => {
    const oldToken = await github.mint(AUDIENCE);
    expect((await registryToken(oldToken, ['repository:octo-org/app:pull'])).payload.sub).toBe('ci:octo-org/app');
    const oldKid = github.currentKid();
    const newKid = await github.rotate({ dropOld: true });
    expect(newKid).not.toBe(oldKid);
    await sleep(COOLDOWN_MS);
    const before = github.requests.jwks;
    const fresh = await github.mint(AUDIENCE);
    expect((await registryToken(fresh, ['repository:octo-org/app:push'])).payload.sub).toBe('ci:octo-org/app');
    expect(github.requests.jwks).toBe(before + 1);
    await sleep(COOLDOWN_MS);
    expect(await refusal(oldToken)).toContain(`no key with the ID token's kid "${oldKid}"`);
  });

  it('refuses an issuer that is not configured without contacting it, and answers 503 when a configured one is down', async () => {
    const msg = await refusal(await stranger.mint(AUDIENCE));
    expect(msg).toContain(`issuer "${stranger.issuer}" is not configured for federation`);
    expect(stranger.requests).toEqual({ discovery: 0, jwks: 0 });

    const downToken = await stranger.sign({ ...stranger.jobClaims(), iss: downIssuer, aud: AUDIENCE });
    const res = await tokenGet(['repository:octo-org/app:pull'], basicAuth('oidc', downToken));
    expect(res.status).toBe(503);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('UNAVAILABLE');
    expect(body.errors[0]!.message).toContain(`issuer ${downIssuer}`);
  });

  it('the registry token lives min(token.expiration, maxTokenTTL), per request even when concurrent', async () => {
    const [app, deploy, app2] = await Promise.all([
      registryToken(await github.mint(AUDIENCE), ['repository:octo-org/app:pull']),
      registryToken(await github.mint(AUDIENCE, { repository: 'octo-org/deployer', environment: 'production' }), ['repository:releases/tool:pull']),
      registryToken(await github.mint(AUDIENCE), ['repository:octo-org/app:pull']),
    ]);
    for (const r of [app, app2]) {
      expect((r.payload.exp as number) - (r.payload.iat as number)).toBe(120);
      expect(r.expiresIn).toBe(120);
    }
    // gh-deploy allows 1h, but token.expiration (300 s) is the ceiling.
    expect(deploy.payload.sub).toBe('deploy:octo-org/deployer');
    expect((deploy.payload.exp as number) - (deploy.payload.iat as number)).toBe(TOKEN_TTL);
    expect(deploy.expiresIn).toBe(TOKEN_TTL);
  });

  it('docker login asking for an offline token gets an access token but no refresh token', async () => {
    const idToken = await github.mint(AUDIENCE);
    const res = await tokenGet([], basicAuth('oidc', idToken), { offline_token: 'true', client_id: 'docker', account: 'oidc' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body.token).toBeTruthy();
    expect(body.refresh_token).toBeUndefined();
  });

  it('refuses an ID token older than maxTokenAge (default 1h) however far ahead its exp; a policy may allow more', async () => {
    const hour = 3600;
    // iat a year ago, exp ten years ahead: a long-lived token is only good for maxTokenAge after iat.
    const ancient = await github.mint(AUDIENCE, { iatOffset: -365 * 24 * hour, lifetime: 3650 * 24 * hour });
    // Too old for every policy of the issuer: the longest limit is the one reported.
    expect(await refusal(ancient)).toMatch(/the ID token was issued 365 days ago, more than maxTokenAge allows \(3h\); request a fresh one in the job/);
    // Two hours old and still unexpired: too old for gh-app (default 1h) …
    const twoHours = { iatOffset: -2 * hour, lifetime: 3 * hour };
    expect(await refusal(await github.mint(AUDIENCE, twoHours))).toMatch(/policy gh-app: issued 120 minutes ago, more than its maxTokenAge \(1h\)/);
    expect(await refusal(await github.mint(AUDIENCE, twoHours), 'gh-app')).toMatch(/the ID token was issued 120 minutes ago, more than maxTokenAge allows \(1h\)/);
    // … but within gh-deploy's maxTokenAge of 3h.
    const deploy = await registryToken(await github.mint(AUDIENCE, { ...twoHours, repository: 'octo-org/deployer', environment: 'production' }), ['repository:releases/tool:pull']);
    expect(deploy.payload.sub).toBe('deploy:octo-org/deployer');
    // 50 minutes old is fine with the default; a missing iat is refused.
    expect((await registryToken(await github.mint(AUDIENCE, { iatOffset: -50 * 60, lifetime: 3600 }), ['repository:octo-org/app:pull'])).payload.sub).toBe('ci:octo-org/app');
    expect(await refusal(await github.mint(AUDIENCE, { claims: { iat: undefined } }))).toMatch(/has no iat claim/);
  });

  it('requires a kid once the issuer publishes more than one key', async () => {
    const claims = () => ({ ...github.jobClaims(), aud: AUDIENCE });
    // One key published: a token without a kid can only mean that key.
    expect((await registryToken(await github.signWithoutKid(claims()), ['repository:octo-org/app:pull'])).payload.sub).toBe('ci:octo-org/app');
    // A second key of another type; an unknown kid makes Berth read the grown key set.
    await github.publishExtraKey();
    await sleep(COOLDOWN_MS);
    await refusal(await github.signWithUnknownKey(claims()));
    expect(await refusal(await github.signWithoutKid(claims()))).toMatch(/the ID token names no kid, and the issuer publishes 2 keys/);
    // The same key, named by its kid, is still accepted.
    expect((await registryToken(await github.mint(AUDIENCE), ['repository:octo-org/app:pull'])).payload.sub).toBe('ci:octo-org/app');
  });

  it('a refresh token naming a federated principal is never honoured', async () => {
    const refreshTokens = new RefreshTokens(berth.store, 60);
    const rt = await refreshTokens.issue({ account: 'ci:octo-org/app', kind: 'federated', labels: { ci: ['github'] } }, SERVICE);
    const res = await tokenPost({ grant_type: 'refresh_token', refresh_token: rt, scope: 'repository:octo-org/app:pull' });
    expect(res.status).toBe(401);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.message).toMatch(/cannot be refreshed: present a fresh ID token/);
  });
});

describe('policy evaluation', () => {
  const policy = (over: Record<string, unknown> = {}) =>
    compilePolicy(federationPolicySchema.parse({ id: 'p', issuer: 'https://ci.example.com', audience: 'berth', claims: { repository: 'octo-org/*' }, account: 'ci:${repository}', ...over }), 900);
  const claims = (over: Record<string, unknown> = {}) => ({ aud: 'berth', repository: 'octo-org/app', ...over });

  it('fills the account and labels from the claims, leaving out label values whose claim is missing', () => {
    const p = policy({ labels: { team: ['${repository_owner}', 'all'], env: '${environment}', run: 'run-${run_id}' } });
    expect(evaluatePolicy(p, claims({ repository_owner: 'octo-org', run_id: 42 }))).toEqual({
      matched: true,
      account: 'ci:octo-org/app',
      labels: { team: ['octo-org', 'all'], run: ['run-42'] },
    });
  });

  it('a missing account claim, a non-text claim or an aud list without ours does not match', () => {
    expect(evaluatePolicy(policy({ account: '${actor}' }), claims())).toEqual({ matched: false, reasons: ['the account template needs claim actor, which the token lacks'] });
    expect(evaluatePolicy(policy(), claims({ repository: ['octo-org/app'] }))).toEqual({ matched: false, reasons: ['repository is missing (expected "octo-org/*")'] });
    expect(evaluatePolicy(policy(), claims({ aud: ['a', 'b'] }))).toEqual({ matched: false, reasons: ['aud is "a", "b" (expected "berth")'] });
    expect(evaluatePolicy(policy(), claims({ aud: ['a', 'berth'] })).matched).toBe(true);
  });

  it('globs keep * inside one segment; booleans and numbers compare as text; /regex/ is anchored', () => {
    expect(evaluatePolicy(policy(), claims({ repository: 'octo-org/app/extra' })).matched).toBe(false);
    expect(evaluatePolicy(policy({ claims: { repository: 'octo-org/**' } }), claims({ repository: 'octo-org/app/extra' })).matched).toBe(true);
    expect(evaluatePolicy(policy({ claims: { ref_protected: true } }), claims({ ref_protected: true })).matched).toBe(true);
    expect(evaluatePolicy(policy({ claims: { ref_protected: true } }), claims({ ref_protected: 'true' })).matched).toBe(true);
    expect(evaluatePolicy(policy({ claims: { ref_protected: 'true' } }), claims({ ref_protected: false })).matched).toBe(false);
    expect(evaluatePolicy(policy({ claims: { repository_id: 7 } }), claims({ repository_id: '7' })).matched).toBe(true);
    expect(evaluatePolicy(policy({ claims: { repository: '/octo-org\\/a.p/' } }), claims({ repository: 'octo-org/app' })).matched).toBe(true);
    expect(evaluatePolicy(policy({ claims: { repository: '/octo-org\\/a.p/' } }), claims({ repository: 'octo-org/apps' })).matched).toBe(false);
  });

  it('the policy lifetime is min(token.expiration, maxTokenTTL)', () => {
    expect(policy().ttlSeconds).toBe(900);
    expect(policy({ maxTokenTTL: '5m' }).ttlSeconds).toBe(300);
    expect(policy({ maxTokenTTL: '2h' }).ttlSeconds).toBe(900);
  });
});

describe('federation configuration', () => {
  const base = (policy: Record<string, unknown>, more: Record<string, unknown>[] = []) =>
    yaml.dump({
      federation: [
        { id: 'gh', issuer: 'https://token.actions.githubusercontent.com', audience: 'berth', claims: { repository_owner: 'octo-org' }, account: 'ci:${repository}', ...policy },
        ...more,
      ],
    });
  const problems = async (text: string): Promise<string[]> => {
    try {
      await loadConfigText(text, tmpdir());
    } catch (e) {
      if (e instanceof ConfigError) return e.problems;
      throw e;
    }
    throw new Error('configuration was accepted');
  };

  it('accepts a GitHub policy and keeps condition values as text', async () => {
    const config = await loadConfigText(base({ claims: { repository_owner: 'octo-org', ref_protected: true, repository_id: 708113441 } }), tmpdir());
    expect(config.raw.federation[0]!.claims).toEqual({ repository_owner: ['octo-org'], ref_protected: ['true'], repository_id: ['708113441'] });
    expect(config.raw.federation[0]!.audience).toEqual(['berth']);
    expect(config.raw.federation[0]!.jwksCooldown).toBe('30s');
    expect(config.raw.federation[0]!.maxTokenAge).toBe('1h');
    expect(await problems(base({ maxTokenAge: '1 hour' }))).toEqual([expect.stringMatching(/^federation\[0\]\.maxTokenAge: /)]);
  });

  it('refuses insecure issuers, missing conditions, bad templates and duplicate ids, naming the YAML path', async () => {
    expect(await problems(base({ issuer: 'http://127.0.0.1:9999' }))).toEqual([expect.stringMatching(/^federation\[0\]\.issuer: must be https/)]);
    expect(await problems(base({ issuer: 'http://ci.example.com', allowInsecureIssuer: true }))).toEqual([expect.stringMatching(/^federation\[0\]\.issuer: .*loopback/)]);
    expect(await problems(base({ claims: {} }))).toEqual([expect.stringMatching(/^federation\[0\]\.claims: at least one claim condition/)]);
    expect(await problems(base({ claims: { repository: '**', ref: ['*', 'refs/heads/main'] } }))).toEqual([expect.stringMatching(/^federation\[0\]\.claims: every condition matches anything/)]);
    expect(await problems(base({ claims: { repository: '/(/' } }))).toEqual([expect.stringMatching(/^federation\[0\]\.claims\.repository: invalid pattern/)]);
    expect(await problems(base({ account: 'ci:${repository' }))).toEqual([expect.stringMatching(/^federation\[0\]\.account: unterminated/)]);
    expect(await problems(base({ labels: { team: ['ok', '${team'] } }))).toEqual([expect.stringMatching(/^federation\[0\]\.labels\.team\[1\]: unterminated/)]);
    expect(await problems(base({ account: 'ci:${ repo }' }))).toEqual([expect.stringMatching(/^federation\[0\]\.account: \$\{ repo \} is not a claim reference/)]);
    expect(await problems(base({ id: 'oidc' }))).toEqual([expect.stringMatching(/^federation\[0\]\.id: "oidc" is the user name for any policy/)]);
    expect(await problems(base({ audiences: 'x' }))).toEqual(['federation[0].audiences: unknown key']);
    expect(await problems(base({}, [{ id: 'gh', issuer: 'https://gitlab.com', audience: 'berth', claims: { project_path: 'g/p' }, account: 'gl:${project_path}' }]))).toEqual([
      'federation[1].id: duplicate id gh (also federation[0])',
    ]);
    expect(await problems(base({}, [{ id: 'gh2', issuer: 'https://token.actions.githubusercontent.com', audience: 'berth', claims: { repository: 'a/b' }, account: 'ci:${repository}', jwksURI: 'https://example.com/keys' }]))).toEqual([
      expect.stringMatching(/^federation\[1\]: policies for issuer .* must agree on jwksURI/),
    ]);
  });

  it('the example configuration loads', async () => {
    const path = join(import.meta.dirname, '..', '..', 'config', 'examples', 'federation.yaml');
    const config = await loadConfigText(readFileSync(path, 'utf8'), join(import.meta.dirname, '..', '..', 'config', 'examples'));
    const ids = config.raw.federation.map((p) => p.id);
    expect(ids).toEqual(['github-release', 'github-main', 'gitlab']);
    expect(config.raw.federation.every((p) => p.issuer.startsWith('https://'))).toBe(true);
  });
});
