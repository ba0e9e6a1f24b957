import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashSync } from '@node-rs/bcrypt';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText, type Config } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { RedisStore } from '../../src/store/redis.js';
import { cleanPrefix, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';
import { basic, WebClient } from '../helpers/web-client.js';

// One credential gate: whichever route a secret arrives on, it is verified, counted and re-checked
// under the same rules. Real Berth, real Redis.

const SERVICE = 'registry';
const CI_HASH = hashSync('ci-pw', 4);
const OTHER_HASH = hashSync('new-pw', 4);

let berth: RunningServer | undefined;
let store: RedisStore | undefined;
let prefix = '';
const dirs: string[] = [];

async function config(users: string, limits = ''): Promise<Config> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-gate-'));
  dirs.push(dir);
  return loadConfigText(
    `
token: { issuer: gate-test, services: [${SERVICE}, other], generatedKeyDir: keys }
store: { type: redis, redis: { url: "${await redisUrl()}", keyPrefix: "${prefix}" } }
secrets: { encryptionKey: "a-gate-test-key-of-at-least-32-characters" }
users:
${users}
${limits}
acl:
  - match: { account: "/.+/" }
    actions: [pull]
`,
    dir,
  );
}

async function start(cfg: Config): Promise<RunningServer> {
  store = new RedisStore({ url: await redisUrl(), keyPrefix: prefix });
  await store.open();
  berth = await startServer(cfg, { store, log: createLogger('silent'), port: 0, host: '127.0.0.1' });
  return berth;
}

afterEach(async () => {
  await berth?.close();
  berth = undefined;
  if (store) {
    await cleanPrefix(prefix).catch(() => {});
    await store.close();
    store = undefined;
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function login(b: RunningServer, user: string, password: string, service = SERVICE): Promise<Response> {
  return fetch(`${b.url}/auth?${new URLSearchParams({ service, offline_token: 'true', client_id: 'docker', account: user })}`, { headers: { authorization: basic(user, password) } });
}

function refresh(b: RunningServer, rt: string, service = SERVICE): Promise<Response> {
  return fetch(`${b.url}/auth`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: rt, service, client_id: 'docker', scope: 'repository:a/b:pull' }),
  });
}

describe('refresh tokens are re-checked against their source on every use', () => {
  it("a static user's refresh token dies when the user is removed from the file (and reloaded)", async () => {
    prefix = uniqueKeyPrefix('gate');
    const b = await start(await config(`  ci: { password: "${CI_HASH}" }\n  keep: { password: "${CI_HASH}" }`));
    const rt = ((await (await login(b, 'ci', 'ci-pw')).json()) as { refresh_token: string }).refresh_token;
    expect((await refresh(b, rt)).status).toBe(200);
    await b.reload(await config(`  keep: { password: "${CI_HASH}" }`));
    const res = await refresh(b, rt);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(/no longer exists/);
    // Gone for good, not only while the user is absent.
    await b.reload(await config(`  ci: { password: "${CI_HASH}" }`));
    expect((await refresh(b, rt)).status).toBe(401);
  });

  it('…and when its password changes', async () => {
    prefix = uniqueKeyPrefix('gate');
    const b = await start(await config(`  ci: { password: "${CI_HASH}" }`));
    const rt = ((await (await login(b, 'ci', 'ci-pw')).json()) as { refresh_token: string }).refresh_token;
    await b.reload(await config(`  ci: { password: "${OTHER_HASH}" }`));
    const res = await refresh(b, rt);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(/password of this user has changed/);
  });

  it('a refresh token buys tokens only for the service it was issued for', async () => {
    prefix = uniqueKeyPrefix('gate');
    const b = await start(await config(`  ci: { password: "${CI_HASH}" }`));
    const rt = ((await (await login(b, 'ci', 'ci-pw', 'other')).json()) as { refresh_token: string }).refresh_token;
    expect((await refresh(b, rt, 'other')).status).toBe(200);
    const res = await refresh(b, rt, SERVICE);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(/issued for another service/);
  });
});

describe('every entry point counts into the same limits', () => {
  it('wrong passwords on the web form and at the token endpoint add up to one lockout', async () => {
    prefix = uniqueKeyPrefix('gate');
    const b = await start(await config(`  ci: { password: "${CI_HASH}" }`, 'limits: { failuresPerAccount: 3, failuresPerIP: 100 }'));
    const web = new WebClient(b.url);
    expect((await web.signInLocal('ci', 'wrong-1')).status).toBe(401);
    expect((await web.signInLocal('ci', 'wrong-2')).status).toBe(401);
    expect((await login(b, 'ci', 'wrong-3')).status).toBe(401);
    // Locked on both doors now, even with the right password.
    expect((await login(b, 'ci', 'ci-pw')).status).toBe(429);
    expect((await web.signInLocal('ci', 'ci-pw')).status).toBe(429);
  });

  it('the JSON API takes PATs only, through the gate: other secrets are refused and counted', async () => {
    prefix = uniqueKeyPrefix('gate');
    const b = await start(await config(`  ci: { password: "${CI_HASH}" }`, 'limits: { failuresPerAccount: 3, failuresPerIP: 100 }'));
    // A password is no API credential, and each attempt counts against the account (the same wrong
    // secret twice within seconds counts once: containerd's POST-then-GET).
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${b.url}/api/v1/tokens`, { headers: { authorization: basic('ci', `guess-${i}`) } });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(/expected a personal access token/);
    }
    expect((await login(b, 'ci', 'ci-pw')).status).toBe(429);
    const unknown = await fetch(`${b.url}/api/v1/tokens`, { headers: { authorization: 'Bearer berth_pat_00000000000000000000000000000000000000' } });
    expect(unknown.status).toBe(401);
  });

  it('unknown device codes count against the address like any other failed secret', async () => {
    prefix = uniqueKeyPrefix('gate');
    const b = await start(await config(`  ci: { password: "${CI_HASH}" }`, 'limits: { failuresPerAccount: 100, failuresPerIP: 3 }'));
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${b.url}/device/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: `berth_dc_guess${i}`, client_id: 'docker-credential-berth' }),
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_grant');
    }
    // The address is now locked out of password sign-ins: the same limiter saw the guesses.
    expect((await login(b, 'ci', 'ci-pw')).status).toBe(429);
  });
});
