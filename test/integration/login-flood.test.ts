import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { startFakeGithub, type FakeGithub } from '../helpers/fake-github.js';
import { cleanPrefix, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';
import { WebClient } from '../helpers/web-client.js';

// GET /login/:id writes a 10-minute login-attempt record before the browser ever reaches the
// provider. Unlimited, one address could fill Redis (measured: 142k requests in 20 s, 141,900 keys).

const FLOOD = 400;
let dir: string;
let gh: FakeGithub;
let prefix: string;
let redis: Redis;
let berth: RunningServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-login-flood-'));
  gh = await startFakeGithub();
  prefix = uniqueKeyPrefix('login-flood');
  const url = await redisUrl();
  redis = new Redis(url);
  const config = await loadConfigText(
    `
server: { trustedProxies: [127.0.0.1] }
token: { issuer: flood, generatedKeyDir: keys }
store: { type: redis, redis: { url: "${url}", keyPrefix: "${prefix}" } }
secrets: { encryptionKey: "${'k'.repeat(43)}" }
connectors:
  - { type: github, id: github, clientID: ${gh.clientID}, clientSecret: ${gh.clientSecret}, baseURL: "${gh.baseURL}", apiURL: "${gh.apiURL}" }
users: { "": {} }
acl: []
`,
    dir,
  );
  berth = await startServer(config, { port: 0, host: '127.0.0.1', log: createLogger('silent') });
});

afterAll(async () => {
  await berth?.close();
  await gh?.close();
  redis?.disconnect();
  await cleanPrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
});

async function keysMatching(pattern: string): Promise<number> {
  let n = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}${pattern}`, 'COUNT', 1000);
    cursor = next;
    n += keys.length;
  } while (cursor !== '0');
  return n;
}

const start = (from: string) => fetch(`${berth.url}/login/github`, { redirect: 'manual', headers: { 'x-forwarded-for': from } });

describe('GET /login/:id', () => {
  it('bounds the login records one address can create, and answers the rest 429 with a page', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < FLOOD; i += 40) {
      const batch = await Promise.all(Array.from({ length: 40 }, () => start('198.51.100.20')));
      for (const r of batch) {
        statuses.push(r.status);
        if (r.status === 429) {
          expect(r.headers.get('retry-after')).toMatch(/^\d+$/);
          expect(r.headers.get('content-type')).toMatch(/text\/html/);
          expect(await r.text()).toMatch(/Too many sign-ins/);
        } else await r.body?.cancel();
      }
    }
    const redirected = statuses.filter((s) => s === 302).length;
    expect(redirected).toBeGreaterThan(0);
    expect(redirected).toBeLessThanOrEqual(60);
    expect(statuses.filter((s) => s === 429).length).toBe(FLOOD - redirected);
    expect(await keysMatching('login:*')).toBeLessThanOrEqual(60);
  });

  it('bounds them with the memory store too', async () => {
    const config = await loadConfigText(
      `
token: { issuer: flood-memory, generatedKeyDir: keys }
connectors:
  - { type: github, id: github, clientID: ${gh.clientID}, clientSecret: ${gh.clientSecret}, baseURL: "${gh.baseURL}", apiURL: "${gh.apiURL}" }
users: { "": {} }
acl: []
`,
      dir,
    );
    const memory = await startServer(config, { port: 0, host: '127.0.0.1', log: createLogger('silent') });
    try {
      let redirected = 0;
      for (let i = 0; i < 200; i += 40) {
        const batch = await Promise.all(Array.from({ length: 40 }, () => fetch(`${memory.url}/login/github`, { redirect: 'manual' })));
        for (const r of batch) {
          if (r.status === 302) redirected++;
          else expect(r.status).toBe(429);
          await r.body?.cancel();
        }
      }
      expect(redirected).toBeGreaterThan(0);
      expect(redirected).toBeLessThanOrEqual(60);
    } finally {
      await memory.close();
    }
  });

  it('still lets another address start a sign-in', async () => {
    const res = await start('198.51.100.21');
    expect(res.status).toBe(302);
    expect(new URL(res.headers.get('location')!).origin).toBe(gh.baseURL);
  });
});

describe('a GitHub sign-in with an incomplete membership answer', () => {
  it('ends on a page that says why, and creates no session', async () => {
    gh.addUser({ id: 4242, login: 'partial', emails: [{ email: 'p@example.com', primary: true, verified: true }], orgs: ['acme'], teams: [{ org: 'acme', slug: 'ops' }] });
    gh.signInAs('partial');
    gh.refuse.set('/user/teams', 403);
    try {
      const browser = new WebClient(berth.url);
      const { res, html } = await browser.get('/login/github');
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/text\/html/);
      expect(html).toMatch(/Sign-in failed/);
      expect(html).toMatch(/team memberships/);
      expect(browser.cookieHeader()).not.toMatch(/berth_session=/);
    } finally {
      gh.refuse.clear();
    }
  });
});
