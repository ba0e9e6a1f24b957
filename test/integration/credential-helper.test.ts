import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bodyParser } from '@koa/bodyparser';
import { hashSync } from '@node-rs/bcrypt';
import { ensureBuilt } from '../helpers/build.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText, type Config } from '../../src/app/load-config.js';
import { createApp } from '../../src/http/app.js';
import type { DeviceFlowSettings } from '../../src/http/device/grants.js';
import { mountDeviceRoutes, type DeviceWebDeps } from '../../src/http/device/routes.js';
import { Sessions } from '../../src/http/web/session.js';
import { Accounts } from '../../src/identity/accounts.js';
import { Credentials } from '../../src/identity/credentials.js';
import { createLocalConnector } from '../../src/connectors/local/index.js';
import { StaticUsers } from '../../src/identity/static-users.js';
import { AccountNamespace } from '../../src/model/account-names.js';
import { ContinuousAccess, LOCAL_CONNECTOR } from '../../src/identity/continuous-access.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { RedisStore } from '../../src/store/redis.js';
import { Pats } from '../../src/tokens/pats.js';
import { RefreshTokens } from '../../src/tokens/refresh-tokens.js';
import { Sealer } from '../../src/util/sealed.js';
import { cleanPrefix, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';

// The helper as docker runs it (the compiled bin, a child process, stdin/stdout/exit status), and
// Berth's device endpoints served by several app instances sharing one real Redis, like replicas.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HELPER = join(ROOT, 'dist/credential-helper/main.js');
const NOT_FOUND = 'credentials not found in native keychain\n';
const GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const USER_CODE = /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/;


interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function runHelper(args: string[], input: string | null, env: Record<string, string>, onStderr?: (text: string) => void): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HELPER, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      onStderr?.(stderr);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
    if (input !== null) child.stdin.end(input);
    else child.stdin.end();
  });
}

let work: string;
const homes: string[] = [];
function freshHome(): { HOME: string; XDG_CONFIG_HOME: string; dir: string } {
  const home = mkdtempSync(join(work, 'home-'));
  homes.push(home);
  return { HOME: home, XDG_CONFIG_HOME: join(home, 'config'), dir: join(home, 'config', 'berth') };
}

const readCreds = (dir: string) => JSON.parse(readFileSync(join(dir, 'credentials.json'), 'utf8')) as { version: number; credentials: Record<string, Record<string, unknown>> };

beforeAll(() => {
  ensureBuilt('credential-helper');
  work = mkdtempSync(join(tmpdir(), 'berth-credhelper-'));
}, 120_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('docker credential-helper protocol', () => {
  it('store / get / list / erase / version with docker-compatible output and exit codes', async () => {
    const h = freshHome();
    const env = { HOME: h.HOME, XDG_CONFIG_HOME: h.XDG_CONFIG_HOME, BERTH_NO_LOGIN: '1' };

    const version = await runHelper(['version'], null, env);
    expect(version).toMatchObject({ code: 0, stdout: 'docker-credential-berth (berth) 0.1.0\n' });

    expect(await runHelper(['get'], 'registry.example.com\n', env)).toMatchObject({ code: 1, stdout: NOT_FOUND });
    expect(await runHelper(['list'], null, env)).toMatchObject({ code: 0, stdout: '{}\n' });

    const stored = await runHelper(['store'], JSON.stringify({ ServerURL: 'registry.example.com', Username: 'alice', Secret: 'berth_pat_example' }), env);
    expect(stored).toMatchObject({ code: 0, stdout: '' });
    // Docker hands some registries over as URLs; they are the same entry.
    await runHelper(['store'], JSON.stringify({ ServerURL: 'https://other.example:5000/v1/', Username: 'bob', Secret: 's3cret' }), env);

    const got = await runHelper(['get'], 'registry.example.com', env);
    expect(got.code).toBe(0);
    expect(got.stdout).toBe('{"ServerURL":"registry.example.com","Username":"alice","Secret":"berth_pat_example"}\n');
    const viaURL = await runHelper(['get'], 'other.example:5000\n', env);
    expect(JSON.parse(viaURL.stdout)).toEqual({ ServerURL: 'other.example:5000', Username: 'bob', Secret: 's3cret' });

    expect(await runHelper(['list'], null, env)).toMatchObject({ code: 0, stdout: '{"registry.example.com":"alice","other.example:5000":"bob"}\n' });

    // Readable by the user only.
    expect(statSync(join(h.dir, 'credentials.json')).mode & 0o777).toBe(0o600);
    expect(statSync(h.dir).mode & 0o777).toBe(0o700);
    expect(readCreds(h.dir).credentials['registry.example.com']).toMatchObject({ username: 'alice', secret: 'berth_pat_example', source: 'docker' });

    expect(await runHelper(['erase'], 'registry.example.com\n', env)).toMatchObject({ code: 0, stdout: '' });
    expect(await runHelper(['get'], 'registry.example.com', env)).toMatchObject({ code: 1, stdout: NOT_FOUND });
    expect(await runHelper(['erase'], 'registry.example.com', env)).toMatchObject({ code: 1, stdout: NOT_FOUND });
    expect(await runHelper(['list'], null, env)).toMatchObject({ stdout: '{"other.example:5000":"bob"}\n' });
  });

  it('reports bad input the way docker-credential-helpers does', async () => {
    const h = freshHome();
    const env = { HOME: h.HOME, XDG_CONFIG_HOME: h.XDG_CONFIG_HOME, BERTH_NO_LOGIN: '1' };
    expect(await runHelper([], null, env)).toMatchObject({ code: 1, stdout: 'Usage: docker-credential-berth <store|get|erase|list|version>\n' });
    expect(await runHelper(['fetch'], null, env)).toMatchObject({ code: 1, stdout: 'Unknown credential action `fetch`\n' });
    expect(await runHelper(['get'], '  \n', env)).toMatchObject({ code: 1, stdout: 'no credentials server URL\n' });
    expect(await runHelper(['erase'], '', env)).toMatchObject({ code: 1, stdout: 'no credentials server URL\n' });
    expect(await runHelper(['store'], '{"ServerURL":"r.example","Secret":"x"}', env)).toMatchObject({ code: 1, stdout: 'no credentials username\n' });
    expect(await runHelper(['store'], '{"Username":"u","Secret":"x"}', env)).toMatchObject({ code: 1, stdout: 'no credentials server URL\n' });
    const garbage = await runHelper(['store'], 'not json', env);
    expect(garbage.code).toBe(1);
    expect(garbage.stdout).toMatch(/^invalid credentials JSON on stdin/);
  });

  it('tightens a credentials file others can read, and refuses a malformed or cleartext-remote config', async () => {
    const h = freshHome();
    const env = { HOME: h.HOME, XDG_CONFIG_HOME: h.XDG_CONFIG_HOME, BERTH_NO_LOGIN: '1' };
    await runHelper(['store'], JSON.stringify({ ServerURL: 'r.example', Username: 'u', Secret: 'x' }), env);
    chmodSync(join(h.dir, 'credentials.json'), 0o644);
    const got = await runHelper(['get'], 'r.example', env);
    expect(got.code).toBe(0);
    expect(got.stderr).toContain('readable by others');
    expect(statSync(join(h.dir, 'credentials.json')).mode & 0o777).toBe(0o600);

    writeFileSync(join(h.dir, 'helper.json'), JSON.stringify({ registries: { 'r.example': 'http://berth.example.com' } }));
    const plain = await runHelper(['get'], 'r.example', env);
    expect(plain.code).toBe(1);
    expect(plain.stdout).toContain('refusing plain-http http://berth.example.com');
    writeFileSync(join(h.dir, 'helper.json'), '{"registries": ');
    const broken = await runHelper(['list'], null, env);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/helper\.json: not valid JSON/);
    writeFileSync(join(h.dir, 'helper.json'), JSON.stringify({ registry: {} }));
    expect((await runHelper(['list'], null, env)).stdout).toContain('unknown key "registry"');
  });
});

// --- Berth replicas sharing Redis ---

interface Replica {
  url: string;
  pats: Pats;
}

const PASSWORD = 'carol-password';
// Replicas share the configured encryption key, so one can open what another sealed.
const ENCRYPTION_KEY = 'integration-test-shared-encryption-key-0123456789';
let prefix: string;
let store: RedisStore;
let dir: string;
let a: RunningServer;
let b: RunningServer;
let short: Replica;
let closeShort: () => Promise<void>;

/**
 * Berth's device routes alone with short lifetimes, on the replicas' store: what expiry looks like
 * without waiting ten minutes. Sign-in happens at the full replicas (the session lives in the store).
 */
async function startShortLived(config: Config, settings: Partial<DeviceFlowSettings>): Promise<void> {
  const log = createLogger('silent');
  const sealer = new Sealer(ENCRYPTION_KEY);
  const accounts = new Accounts(store, sealer, new AccountNamespace({ staticUsers: [...config.users.keys()], connectors: [] }));
  const pats = new Pats(store, { defaultTTLSeconds: 30 * 86400, maxTTLSeconds: 90 * 86400, maxPerUser: 20 }, new RefreshTokens(store, 3600));
  let publicURL = '';
  // The one gate, without a limiter (these device routes only need it to count failures), and the
  // static users as their sign-in source.
  const gate = new Credentials([new StaticUsers(config.users)], new RefreshTokens(store, 3600), null);
  const local = createLocalConnector(config.users, (u, p, ip) => gate.password(u, p, ip, { only: ['static'] }));
  const web: DeviceWebDeps = {
    env: { appTitle: 'Berth', registryHost: 'registry.example.com' },
    get publicURL() {
      return publicURL;
    },
    sessions: new Sessions(store, 3600, false),
    accounts,
    access: new ContinuousAccess(accounts, new Map([[local.id, local]]), { ttlSeconds: 900, graceSeconds: 3600 }, log),
    pats,
    log,
    credentials: gate,
  };
  const { app, router } = createApp({ log, trustProxy: false });
  app.use(bodyParser({ enableTypes: ['form', 'json'] }));
  mountDeviceRoutes(router, { web, store, sealer, settings });
  app.use(router.routes()).use(router.allowedMethods());
  const server: Server = await new Promise((resolve) => {
    const srv = app.listen(0, '127.0.0.1', () => resolve(srv));
  });
  publicURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  short = { url: publicURL, pats };
  closeShort = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-device-'));
  prefix = uniqueKeyPrefix('device');
  store = new RedisStore({ url: await redisUrl(), keyPrefix: prefix });
  await store.open();
  const config = await loadConfigText(
    `
server: { addr: "127.0.0.1:0" }
token: { issuer: device-test, services: [registry], generatedKeyDir: keys }
secrets: { encryptionKey: "${ENCRYPTION_KEY}" }
users:
  carol: { password: "${hashSync(PASSWORD, 4)}", labels: { groups: [team-c] } }
  dave: { password: "${hashSync('dave-pw', 4)}", labels: { groups: [team-d] } }
acl:
  - match: { account: "/.+/" }
    actions: [pull]
`,
    dir,
  );
  a = await startServer(config, { store, log: createLogger('silent'), port: 0 });
  b = await startServer(config, { store, log: createLogger('silent'), port: 0 });
  await startShortLived(config, { intervalSeconds: 1, expiresInSeconds: 2 });
}, 60_000);

afterAll(async () => {
  await closeShort?.();
  await a?.close();
  await b?.close();
  await store?.close();
  if (prefix) await cleanPrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
});

/** A browser stand-in: keeps cookies across requests and replicas (they share one origin in production). */
class Jar {
  private readonly cookies = new Map<string, string>();
  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      this.cookies.set(pair!.slice(0, eq), pair!.slice(eq + 1));
    }
    return res;
  }
  post(url: string, fields: Record<string, string>): Promise<Response> {
    return this.fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });
  }
}

const csrfOf = (page: string) => /name="csrf" value="([^"]+)"/.exec(page)![1]!;

async function signIn(replica: { url: string }): Promise<Jar> {
  const jar = new Jar();
  const form = await (await jar.fetch(`${replica.url}/`)).text();
  const res = await jar.post(`${replica.url}/login/local`, { csrf: csrfOf(form), username: 'carol', password: PASSWORD, returnTo: '/device' });
  expect(res.status).toBe(302);
  expect(res.headers.get('location')).toBe('/device');
  return jar;
}

async function deviceCode(replica: { url: string }, body?: string, type = 'application/x-www-form-urlencoded'): Promise<Record<string, unknown>> {
  const res = await fetch(`${replica.url}/device/code`, { method: 'POST', headers: { 'content-type': type }, body: body ?? 'client_id=integration-test' });
  expect(res.status).toBe(200);
  expect(res.headers.get('cache-control')).toBe('no-store');
  return (await res.json()) as Record<string, unknown>;
}

async function poll(replica: { url: string }, code: string, extra: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${replica.url}/device/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: GRANT, device_code: code, ...extra }).toString() });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A real keychain for the helper to delegate to: docker-credential-pass (Debian's
 * golang-docker-credential-helpers) over pass and gpg, in a GnuPG home and password store of the
 * test's own, with a key that has no passphrase.
 */
let keychain: { GNUPGHOME: string; PASSWORD_STORE_DIR: string } | null = null;
function passKeychain(): { GNUPGHOME: string; PASSWORD_STORE_DIR: string } {
  if (keychain) return keychain;
  const env = { GNUPGHOME: mkdtempSync(join(work, 'gnupg-')), PASSWORD_STORE_DIR: join(work, 'password-store') };
  chmodSync(env.GNUPGHOME, 0o700);
  const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  run('gpg', ['--batch', '--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', 'Berth Test <berth-test@example.test>', 'default', 'default', 'never']);
  const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(run('gpg', ['--batch', '--with-colons', '--list-secret-keys']))?.[1];
  if (!fpr) throw new Error('gpg made no key');
  run('pass', ['init', fpr]);
  keychain = env;
  return env;
}

/** docker-credential-pass itself, as docker would run it. */
function passHelper(action: string, input: string): { code: number; stdout: string } {
  const r = spawnSync('docker-credential-pass', [action], { input, env: { ...process.env, ...passKeychain() } });
  return { code: r.status ?? 1, stdout: r.stdout.toString() };
}

/** The entry pass holds under `label`, or null (0.6 answers a missing entry with empty fields). */
function inPass(label: string): { Username: string; Secret: string } | null {
  const r = passHelper('get', label);
  if (r.code !== 0) return null;
  const doc = JSON.parse(r.stdout) as { Username: string; Secret: string };
  return doc.Secret ? doc : null;
}

afterAll(() => {
  if (keychain) spawnSync('gpgconf', ['--kill', 'gpg-agent'], { env: { ...process.env, ...keychain } });
});

describe('secrets in another credential helper (helper.json secretStore)', () => {
  function homeWithStore(secretStore: unknown) {
    const h = freshHome();
    mkdirSync(h.dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(h.dir, 'helper.json'), JSON.stringify({ secretStore }));
    return { h, env: { HOME: h.HOME, XDG_CONFIG_HOME: h.XDG_CONFIG_HOME, BERTH_NO_LOGIN: '1', ...passKeychain() } };
  }

  it('keeps the PAT in docker-credential-pass and none in credentials.json; erase removes it there too', async () => {
    const { h, env } = homeWithStore('pass');
    const secret = 'berth_pat_kept_in_the_keychain_0123456789';
    expect(await runHelper(['store'], JSON.stringify({ ServerURL: 'registry.example.com', Username: 'alice', Secret: secret }), env)).toMatchObject({ code: 0, stdout: '' });
    const file = readFileSync(join(h.dir, 'credentials.json'), 'utf8');
    expect(file).not.toContain(secret);
    expect(readCreds(h.dir).credentials['registry.example.com']).toMatchObject({ username: 'alice', source: 'docker', secretStore: 'pass' });
    // What pass holds, asked without Berth in between:
    expect(inPass('https://registry.example.com/berth-pat')).toMatchObject({ Username: 'alice', Secret: secret });

    expect(JSON.parse((await runHelper(['get'], 'registry.example.com', env)).stdout)).toEqual({ ServerURL: 'registry.example.com', Username: 'alice', Secret: secret });
    expect(await runHelper(['list'], null, env)).toMatchObject({ code: 0, stdout: '{"registry.example.com":"alice"}\n' });

    expect(await runHelper(['erase'], 'registry.example.com', env)).toMatchObject({ code: 0, stdout: '' });
    expect(inPass('https://registry.example.com/berth-pat')).toBeNull();
    expect(await runHelper(['get'], 'registry.example.com', env)).toMatchObject({ code: 1, stdout: NOT_FOUND });
  });

  it('forgets an entry whose secret was deleted from the keychain', async () => {
    const { h, env } = homeWithStore('pass');
    await runHelper(['store'], JSON.stringify({ ServerURL: 'gone.example.com', Username: 'bob', Secret: 'berth_pat_deleted_elsewhere' }), env);
    expect(passHelper('erase', 'https://gone.example.com/berth-pat').code).toBe(0);
    const got = await runHelper(['get'], 'gone.example.com', env);
    expect(got).toMatchObject({ code: 1, stdout: NOT_FOUND });
    expect(got.stderr).toContain('no longer in pass');
    expect(readCreds(h.dir).credentials['gone.example.com']).toMatchObject({ secretStore: 'pass' });
  });

  it('refuses a store name that is not another helper, and says when the program is missing', async () => {
    const self = homeWithStore('berth');
    const refused = await runHelper(['list'], null, self.env);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('"secretStore" must name another docker credential helper');
    expect((await runHelper(['list'], null, homeWithStore('../../bin/sh').env)).code).toBe(1);
    const missing = homeWithStore('not-installed-here');
    const stored = await runHelper(['store'], JSON.stringify({ ServerURL: 'r.example', Username: 'u', Secret: 'berth_pat_x' }), missing.env);
    expect(stored).toMatchObject({ code: 1, stdout: 'docker-credential-not-installed-here not found on PATH (helper.json "secretStore": "not-installed-here")\n' });
    expect(existsSync(join(missing.h.dir, 'credentials.json'))).toBe(false);
  });
});

describe('device authorization endpoints (replicas sharing Redis)', () => {
  it('issues RFC 8628 codes from form or JSON requests and refuses a malformed client_id', async () => {
    const c = await deviceCode(a);
    expect(c.user_code).toMatch(USER_CODE);
    expect(c.device_code).toMatch(/^berth_dc_[0-9A-Za-z]{38}$/);
    expect(c.verification_uri).toBe(`${a.url}/device`);
    expect(c.verification_uri_complete).toBe(`${a.url}/device?user_code=${c.user_code}`);
    expect(c).toMatchObject({ expires_in: 600, interval: 5 });
    const j = await deviceCode(b, JSON.stringify({ client_id: 'json-client' }), 'application/json');
    expect(j.user_code).toMatch(USER_CODE);
    expect(j.user_code).not.toBe(c.user_code);
    const none = await deviceCode(a, '');
    expect(none.device_code).toBeTypeOf('string');

    const bad = await fetch(`${a.url}/device/code`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_id: 'has space' }) });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: 'invalid_request', error_description: 'client_id must be 1 to 100 printable characters' });
  });

  it('answers token requests with RFC 8628 errors, slow_down adding 5 s per too-early poll', async () => {
    const noGrant = await fetch(`${a.url}/device/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'device_code=x' });
    expect(noGrant.status).toBe(400);
    expect((await noGrant.json()).error).toBe('invalid_request');
    const other = await fetch(`${a.url}/device/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=password&username=a&password=b' });
    expect(other.status).toBe(400);
    expect((await other.json()).error).toBe('unsupported_grant_type');
    expect((await poll(a, 'berth_dc_not-a-real-one')).body.error).toBe('invalid_grant');

    const c = await deviceCode(a);
    const code = c.device_code as string;
    // Issued by one replica, polled at the other.
    let r = await poll(b, code);
    expect(r).toEqual({ status: 400, body: { error: 'authorization_pending', error_description: expect.any(String) } });
    r = await poll(a, code);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'slow_down', interval: 10 });
    r = await poll(b, code);
    expect(r.body).toMatchObject({ error: 'slow_down', interval: 15 });
    expect((await poll(a, code, { client_id: 'someone-else' })).body.error).toBe('invalid_grant');
  });

  it('keeps the polling interval: a poll after the interval is pending, not slow_down', async () => {
    const c = await deviceCode(short);
    expect(c.interval).toBe(1);
    expect((await poll(short, c.device_code as string)).body.error).toBe('authorization_pending');
    await sleep(1050);
    expect((await poll(short, c.device_code as string)).body.error).toBe('authorization_pending');
  });

  it('approval on one replica hands the PAT out exactly once on another; the code is single use', async () => {
    const c = await deviceCode(a);
    const jar = await signIn(a);
    // The verification_uri_complete page, opened on the other replica with the same session, fills
    // in the code; sending the form shows what approving grants.
    const link = await (await jar.fetch(`${b.url}/device?user_code=${String(c.user_code).toLowerCase()}`)).text();
    expect(link).toContain(`value="${String(c.user_code)}"`);
    const confirm = await jar.post(`${b.url}/device`, { csrf: csrfOf(link), user_code: String(c.user_code) });
    expect(confirm.status).toBe(200);
    const page = await confirm.text();
    expect(page).toContain(`<p class="user-code" id="confirm-code">${c.user_code}</p>`);
    expect(page).toContain('integration-test');
    expect(page).toContain('credential helper (device)');
    expect(page).toContain('team-c');

    // Without the form's CSRF token nothing happens (the code stays usable, as the approval below shows).
    const forged = await jar.post(`${b.url}/device/decision`, { user_code: String(c.user_code), decision: 'approve' });
    expect(forged.status).toBe(403);

    const approved = await jar.post(`${b.url}/device/decision`, { csrf: csrfOf(page), user_code: String(c.user_code), decision: 'approve' });
    expect(approved.status).toBe(200);
    expect(await approved.text()).toContain('Device approved');

    const r = await poll(a, c.device_code as string);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ token_type: 'Bearer', username: 'carol', token_id: expect.any(String) });
    expect(r.body.access_token).toMatch(/^berth_pat_[0-9A-Za-z]{38}$/);
    expect(r.body.expires_in).toBeGreaterThan(30 * 86400 - 60);
    expect(r.body.expires_in).toBeLessThanOrEqual(30 * 86400);
    const rec = await a.pats.lookup(r.body.access_token as string);
    expect(rec).toMatchObject({ username: 'carol', name: 'credential helper (device)', id: r.body.token_id, owner: `${LOCAL_CONNECTOR}:carol` });

    // Handed out once: the next poll learns nothing.
    expect((await poll(b, c.device_code as string)).body.error).toBe('invalid_grant');
    // The user code is used up.
    const again = await jar.post(`${a.url}/device/decision`, { csrf: csrfOf(page), user_code: String(c.user_code), decision: 'approve' });
    expect(again.status).toBe(400);
    expect(await again.text()).toContain('unknown, was already used, or has expired');

    // The PAT works with Berth's API.
    const api = await fetch(`${b.url}/api/v1/tokens`, { headers: { authorization: `Bearer ${String(r.body.access_token)}` } });
    expect(api.status).toBe(200);
    expect(((await api.json()) as { tokens: { id: string }[] }).tokens.map((t) => t.id)).toContain(r.body.token_id);
  });

  it('denial answers access_denied and mints nothing', async () => {
    const c = await deviceCode(b);
    const jar = await signIn(b);
    const before = (await a.pats.list(`${LOCAL_CONNECTOR}:carol`)).length;
    const entry = await (await jar.fetch(`${a.url}/device`)).text();
    expect(entry).toContain('Enter the code');
    const confirm = await jar.post(`${a.url}/device`, { csrf: csrfOf(entry), user_code: ` ${String(c.user_code).replace('-', ' ').toLowerCase()} ` });
    expect(confirm.status).toBe(200);
    const page = await confirm.text();
    const denied = await jar.post(`${a.url}/device/decision`, { csrf: csrfOf(page), user_code: String(c.user_code), decision: 'deny' });
    expect(await denied.text()).toContain('Device denied');
    const r = await poll(b, c.device_code as string);
    expect(r).toEqual({ status: 400, body: { error: 'access_denied', error_description: expect.any(String) } });
    expect((await a.pats.list(`${LOCAL_CONNECTOR}:carol`)).length).toBe(before);
  });

  it('sends people who are not signed in to sign-in and back, and limits wrong codes per session', async () => {
    const anon = await fetch(`${a.url}/device?user_code=bcdf-ghjk`, { redirect: 'manual' });
    expect(anon.status).toBe(302);
    expect(anon.headers.get('location')).toBe(`/?returnTo=${encodeURIComponent('/device?user_code=BCDF-GHJK')}&error=sign_in_required`);

    const c = await deviceCode(a);
    const jar = await signIn(a);
    const entry = await (await jar.fetch(`${a.url}/device`)).text();
    for (let i = 0; i < 10; i++) {
      const res = await jar.post(`${i % 2 ? a.url : b.url}/device`, { csrf: csrfOf(entry), user_code: i % 3 ? 'ZZZZ-ZZZZ' : 'not a code' });
      expect(res.status).toBe(400);
    }
    // The eleventh try is refused even with the right code, on any replica.
    const blocked = await jar.post(`${b.url}/device`, { csrf: csrfOf(entry), user_code: String(c.user_code) });
    expect(blocked.status).toBe(429);
    expect(await blocked.text()).toContain('Too many wrong codes');
    const decided = await jar.post(`${a.url}/device/decision`, { csrf: csrfOf(entry), user_code: String(c.user_code), decision: 'approve' });
    expect(decided.status).toBe(429);
    // Another session of the same person still has its own allowance.
    const other = await signIn(b);
    const otherEntry = await (await other.fetch(`${a.url}/device`)).text();
    expect((await other.post(`${a.url}/device`, { csrf: csrfOf(otherEntry), user_code: String(c.user_code) })).status).toBe(200);
  });

  it('expires device and user codes: expired_token for the device, unknown code for the person', async () => {
    const c = await deviceCode(short);
    expect(c.expires_in).toBe(2);
    expect(c.verification_uri).toBe(`${short.url}/device`);
    await sleep(2300);
    expect((await poll(short, c.device_code as string)).body.error).toBe('expired_token');
    const jar = await signIn(a);
    const entry = await (await jar.fetch(`${short.url}/device?user_code=${String(c.user_code)}`)).text();
    const res = await jar.post(`${short.url}/device`, { csrf: csrfOf(entry), user_code: String(c.user_code) });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('has expired');
  });

  it('a token approved but never collected before expiry is revoked, not left behind', async () => {
    const jar = await signIn(a);
    const owner = `${LOCAL_CONNECTOR}:carol`;
    const before = (await short.pats.list(owner)).length;
    const c = await deviceCode(short);
    const page = await (await jar.fetch(`${short.url}/device?user_code=${String(c.user_code)}`)).text();
    const approved = await jar.post(`${short.url}/device/decision`, { csrf: csrfOf(page), user_code: String(c.user_code), decision: 'approve' });
    expect(approved.status).toBe(200);
    expect((await short.pats.list(owner)).length).toBe(before + 1);
    await sleep(2300);
    expect((await poll(short, c.device_code as string)).body.error).toBe('expired_token');
    expect((await short.pats.list(owner)).length).toBe(before);
  });

  it('the helper shows the code on stderr only and gives up when it expires', async () => {
    const h = freshHome();
    let shown = '';
    const run = await runHelper(['get'], 'registry.example.com', { HOME: h.HOME, XDG_CONFIG_HOME: h.XDG_CONFIG_HOME, BERTH_URL: short.url, BERTH_REGISTRIES: 'registry.example.com' }, (text) => (shown = text));
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('the sign-in code expired before it was approved; run the command again to get a new one\n');
    const code = /enter the code ([A-Z]{4}-[A-Z]{4})/.exec(shown)?.[1];
    expect(code).toMatch(USER_CODE);
    expect(run.stderr).toContain(`open ${short.url}/device in a browser`);
    expect(run.stderr).toContain(`${short.url}/device?user_code=${code}`);
    expect(run.stdout).not.toContain(code);
    expect(existsSync(join(h.dir, 'credentials.json'))).toBe(false);
  });
});

describe('the helper signing in through the device flow', () => {
  it('two helpers started at once run one sign-in and both answer with its token', async () => {
    const h = freshHome();
    const env = { HOME: h.HOME, XDG_CONFIG_HOME: h.XDG_CONFIG_HOME, BERTH_URL: a.url, BERTH_REGISTRIES: 'registry.example.com' };
    let approve!: (url: string) => void;
    let queued!: () => void;
    const shown = new Promise<string>((r) => (approve = r));
    const waiting = new Promise<void>((r) => (queued = r));
    const watch = (text: string) => {
      const m = /\(or open (\S+)\)/.exec(text);
      if (m) approve(m[1]!);
      if (text.includes('Another docker-credential-berth is signing in')) queued();
    };
    const first = runHelper(['get'], 'registry.example.com\n', env, watch);
    const second = runHelper(['get'], 'registry.example.com\n', env, watch);
    // Approve only once one shows the code and the other is queued behind it.
    const ended = Promise.all([first, second]).then((rs) => Promise.reject(new Error(`helpers ended before approval: ${JSON.stringify(rs)}`)));
    const [url] = await Promise.race([Promise.all([shown, waiting]), ended]);
    const jar = await signIn(b);
    const page = await (await jar.fetch(url.replace(a.url, b.url))).text();
    // The link only fills in the code (GETs never look codes up).
    const code = /id="user_code" name="user_code" value="([A-Z-]+)"/.exec(page)![1]!;
    expect((await jar.post(`${b.url}/device/decision`, { csrf: csrfOf(page), user_code: code, decision: 'approve' })).status).toBe(200);

    const [r1, r2] = await Promise.all([first, second]);
    expect(r1.code, r1.stdout).toBe(0);
    expect(r2.code, r2.stdout).toBe(0);
    expect(r1.stdout).toBe(r2.stdout);
    const out = JSON.parse(r1.stdout) as { ServerURL: string; Username: string; Secret: string };
    expect(out).toMatchObject({ ServerURL: 'registry.example.com', Username: 'carol' });
    // Exactly one of them asked for a code; the other waited for it.
    expect([r1.stderr, r2.stderr].filter((e) => e.includes('enter the code')).length).toBe(1);
    expect([r1.stderr, r2.stderr].filter((e) => e.includes('Another docker-credential-berth is signing in')).length).toBe(1);
    expect(readCreds(h.dir).credentials['registry.example.com']).toMatchObject({ username: 'carol', secret: out.Secret, source: 'device', berthURL: a.url });
    expect(statSync(join(h.dir, 'credentials.json')).mode & 0o777).toBe(0o600);
    expect(existsSync(join(h.dir, 'credentials.lock'))).toBe(false);
  });
});

// --- renewal ---

describe('renewal', () => {
  const owner = `${LOCAL_CONNECTOR}:dave`;

  beforeAll(async () => {
    await a.accounts.recordLogin({ connector: LOCAL_CONNECTOR, subject: 'dave', username: 'dave', groups: ['team-d'], claims: { labels: { groups: ['team-d'] } } });
  });

  /** A helper home holding a PAT it obtained `ageDays` ago with `lifetimeDays`, as a device sign-in leaves it. */
  async function homeWithToken(ageDays: number, lifetimeDays: number, helperJson?: object) {
    const h = freshHome();
    const now = Date.now();
    const pat = await a.pats.create({ owner, username: 'dave', name: 'credential helper (device)', ttlSeconds: Math.round((lifetimeDays - ageDays) * 86400) });
    mkdirSync(h.dir, { recursive: true, mode: 0o700 });
    const entry = { username: 'dave', secret: pat.secret, source: 'device', berthURL: a.url, tokenId: pat.record.id, tokenName: 'credential helper (device)', createdAt: now - ageDays * 86_400_000, expiresAt: pat.record.expiresAt };
    writeFileSync(join(h.dir, 'credentials.json'), JSON.stringify({ version: 1, credentials: { 'registry.example.com': entry } }), { mode: 0o600 });
    if (helperJson) writeFileSync(join(h.dir, 'helper.json'), JSON.stringify(helperJson));
    return { h, pat, env: { HOME: h.HOME, XDG_CONFIG_HOME: h.XDG_CONFIG_HOME, BERTH_NO_LOGIN: '1' } };
  }

  async function tokenStatus(password: string): Promise<number> {
    const res = await fetch(`${a.url}/auth?service=registry&scope=repository:x/y:pull`, { headers: { authorization: `Basic ${Buffer.from(`dave:${password}`).toString('base64')}` } });
    await res.arrayBuffer();
    return res.status;
  }

  it('leaves a token with enough life alone', async () => {
    const { h, pat, env } = await homeWithToken(5, 30);
    const count = (await a.pats.list(owner)).length;
    const got = await runHelper(['get'], 'registry.example.com', env);
    expect(got.code).toBe(0);
    expect(JSON.parse(got.stdout).Secret).toBe(pat.secret);
    expect((await a.pats.list(owner)).length).toBe(count);
    expect(readCreds(h.dir).credentials['registry.example.com']!.tokenId).toBe(pat.record.id);
  });

  it('replaces a token near expiry with a new PAT, stores it 0600, and revokes the old one', async () => {
    // 28 of 30 days used: under a quarter left.
    const { h, pat, env } = await homeWithToken(28, 30);
    expect(await tokenStatus(pat.secret)).toBe(200);
    const got = await runHelper(['get'], 'registry.example.com', env);
    expect(got.code, got.stdout).toBe(0);
    const out = JSON.parse(got.stdout) as { Username: string; Secret: string };
    expect(out.Username).toBe('dave');
    expect(out.Secret).toMatch(/^berth_pat_/);
    expect(out.Secret).not.toBe(pat.secret);
    expect(got.stderr).toContain('Renewed the token for registry.example.com');

    const saved = readCreds(h.dir).credentials['registry.example.com']!;
    expect(saved).toMatchObject({ secret: out.Secret, source: 'renewal', username: 'dave', tokenName: 'credential helper (device)', berthURL: a.url });
    expect(statSync(join(h.dir, 'credentials.json')).mode & 0o777).toBe(0o600);
    const fresh = await a.pats.lookup(out.Secret);
    expect(fresh).toMatchObject({ id: saved.tokenId, name: 'credential helper (device)' });
    // Same 30-day lifetime as its predecessor.
    expect(Math.round((fresh!.expiresAt - fresh!.createdAt) / 86_400_000)).toBe(30);
    expect(await a.pats.lookup(pat.secret)).toBeNull();
    expect(await tokenStatus(pat.secret)).toBe(401);
    expect(await tokenStatus(out.Secret)).toBe(200);

    // The next get uses the new token as is.
    const again = await runHelper(['get'], 'registry.example.com', env);
    expect(JSON.parse(again.stdout).Secret).toBe(out.Secret);
  });

  it('with a secretStore, moves a renewed PAT into the keychain and out of the file', async () => {
    // A file from before secretStore was set: the old secret is inline.
    const { h, pat, env } = await homeWithToken(28, 30, { secretStore: 'pass' });
    const got = await runHelper(['get'], 'registry.example.com', { ...env, ...passKeychain() });
    expect(got.code, got.stdout).toBe(0);
    const renewed = JSON.parse(got.stdout).Secret as string;
    expect(renewed).not.toBe(pat.secret);
    const file = readFileSync(join(h.dir, 'credentials.json'), 'utf8');
    expect(file).not.toContain(renewed);
    expect(file).not.toContain(pat.secret);
    expect(inPass('https://registry.example.com/berth-pat')?.Secret).toBe(renewed);
    expect(await tokenStatus(renewed)).toBe(200);
    expect(await tokenStatus(pat.secret)).toBe(401);
  });

  it('renews by remaining days when helper.json asks for it', async () => {
    const { pat, env } = await homeWithToken(10, 30, { renew: { remainingFraction: 0, remainingDays: 21 } });
    const got = await runHelper(['get'], 'registry.example.com', env);
    expect(JSON.parse(got.stdout).Secret).not.toBe(pat.secret);
    expect(await a.pats.lookup(pat.secret)).toBeNull();
  });

  it('drops a token Berth no longer accepts instead of renewing it', async () => {
    const { h, pat, env } = await homeWithToken(29, 30);
    await a.pats.revoke(owner, pat.record.id);
    const got = await runHelper(['get'], 'registry.example.com', env);
    expect(got).toMatchObject({ code: 1, stdout: NOT_FOUND });
    expect(got.stderr).toContain('no longer accepts the stored token');
    expect(readCreds(h.dir).credentials).toEqual({});
  });

  it('erase revokes a token the helper obtained', async () => {
    const { pat, env } = await homeWithToken(1, 30);
    expect(await runHelper(['erase'], 'registry.example.com', env)).toMatchObject({ code: 0, stdout: '' });
    expect(await a.pats.lookup(pat.secret)).toBeNull();
  });
});
