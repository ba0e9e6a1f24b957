import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { MAX_NAME_LENGTH } from '../../src/policy/scope.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { cleanPrefix, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';
import { basic, WebClient } from '../helpers/web-client.js';

// Any signed-in person could stall the server with a PAT restriction like `/.*.*.*.*.*z/` and a
// long repository name (one request held the event loop, and /healthz, for about 2 s; longer ones
// for hours). Restrictions are globs now, matched in linear time, and the limit on tokens per user
// holds under parallel creation.

let dir: string;
let server: RunningServer;
let replica: RunningServer;
let prefix: string;
let web: WebClient;
let pat: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-restrictions-'));
  prefix = uniqueKeyPrefix('restrictions');
  const text = `
token: { issuer: restrictions, generatedKeyDir: keys }
store: { type: redis, redis: { url: "${await redisUrl()}", keyPrefix: "${prefix}" } }
secrets: { encryptionKey: "restrictions-test-encryption-key-0123456789" }
users:
  ops: { password: "${await hash('ops-pw', 4)}" }
acl:
  - { match: { account: ops }, actions: ["*"] }
admin: { accounts: [ops] }
pats: { maxPerUser: 5 }
`;
  server = await startServer(await loadConfigText(text, dir), { port: 0, host: '127.0.0.1', log: createLogger('silent') });
  replica = await startServer(await loadConfigText(text, dir), { port: 0, host: '127.0.0.1', log: createLogger('silent') });
  web = new WebClient(server.url);
  expect((await web.signInLocal('ops', 'ops-pw')).status).toBe(200);
  pat = await web.createPat('admin');
});

afterAll(async () => {
  await server.close();
  await replica.close();
  await cleanPrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
});

const api = (path: string, body: unknown, on = server) =>
  fetch(`${on.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${pat}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function expectRefused(res: Response, message: RegExp): Promise<void> {
  expect(res.status).toBe(400);
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  expect(body.errors[0]!.code).toBe('INVALID_REQUEST');
  expect(body.errors[0]!.message).toMatch(message);
}

describe('restrictions from the web form and the API', () => {
  it('the token form refuses a /regex/ with a message on the page', async () => {
    const r = await web.postForm('/tokens', { csrf: await web.csrf(), name: 'slow', repositories: '/.*.*.*.*.*z/', actions: 'pull' });
    expect(r.res.status).toBe(400);
    expect(r.html).toMatch(/is a regular expression; restrictions take globs only/);
    expect(r.html).not.toMatch(/pat-secret/);
  });

  it('the token and robot APIs refuse a /regex/ in the registry error format', async () => {
    await expectRefused(await api('/api/v1/tokens', { name: 'slow', repositories: ['team/**', '/.*.*.*.*.*z/'], actions: ['pull'] }), /regular expression; restrictions take globs only/);
    await expectRefused(await api('/api/v1/robots', { name: 'slow', repositories: ['/(a+)+z/'], actions: ['pull'] }), /regular expression; restrictions take globs only/);
  });

  it('a pathological glob restriction against a 512-character name answers in milliseconds, /healthz with it', async () => {
    const made = await api('/api/v1/tokens', { name: 'glob', repositories: ['*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b'], actions: ['pull'] });
    expect(made.status).toBe(201);
    const restricted = ((await made.json()) as { token: string }).token;
    const name = 'a'.repeat(MAX_NAME_LENGTH);
    const t = performance.now();
    const [token, health] = await Promise.all([
      fetch(`${server.url}/auth?service=registry&scope=repository:${name}:pull,push`, { headers: { authorization: basic('ops', restricted) } }),
      fetch(`${server.url}/healthz`),
    ]);
    const ms = performance.now() - t;
    expect(token.status).toBe(200);
    expect(health.status).toBe(200);
    const { access } = JSON.parse(Buffer.from(((await token.json()) as { token: string }).token.split('.')[1]!, 'base64url').toString()) as { access: { actions: string[] }[] };
    expect(access[0]!.actions).toEqual([]);
    // Includes a PAT lookup and signing; the old RegExp took hours here. Slack for a loaded machine.
    expect(ms).toBeLessThan(1500);
  });

  it('12 parallel creations through the API, on two replicas, never exceed pats.maxPerUser', async () => {
    const before = ((await (await fetch(`${server.url}/api/v1/tokens`, { headers: { authorization: `Bearer ${pat}` } })).json()) as { tokens: unknown[] }).tokens.length;
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => api('/api/v1/tokens', { name: `p${i}`, expiresInDays: 1 }, i % 2 ? replica : server)));
    expect(answers.filter((a) => a.status === 201)).toHaveLength(5 - before);
    for (const a of answers.filter((x) => x.status !== 201)) await expectRefused(a, /at most 5 tokens per user/);
    const after = ((await (await fetch(`${server.url}/api/v1/tokens`, { headers: { authorization: `Bearer ${pat}` } })).json()) as { tokens: unknown[] }).tokens;
    expect(after).toHaveLength(5);
  });
});
