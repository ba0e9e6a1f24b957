import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import fc from 'fast-check';
import { importJWK, jwtVerify, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { MemoryStore } from '../../src/store/memory.js';
import { generateKeyPair } from '../../src/tokens/keygen.js';

let dir: string;
let main: RunningServer; // token.services configured, anonymous allowed
let closed: RunningServer; // any service, no anonymous user

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
  text: string;
}

async function call(server: RunningServer, path: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(server.url + path, { ...init, redirect: 'manual' });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    /* left empty: the assertions on body then fail with the text visible */
  }
  return { status: res.status, headers: res.headers, body, text };
}

function query(params: [string, string][]): string {
  return new URLSearchParams(params).toString();
}

const form = (params: [string, string][]) => ({ method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: query(params) });

/** Asserts the registry error shape and a message that names the problem. */
function expectError(a: Answer, status: number, code: string, message: RegExp): void {
  expect(a.status, a.text).toBe(status);
  expect(a.headers.get('content-type')).toMatch(/^application\/json/);
  const errors = a.body.errors as { code: string; message: string }[];
  expect(errors).toHaveLength(1);
  expect(Object.keys(errors[0]!).sort()).toEqual(['code', 'message']);
  expect(errors[0]!.code).toBe(code);
  expect(errors[0]!.message).toMatch(message);
}

async function verified(server: RunningServer, token: string, audience: string): Promise<JWTPayload & { access: { type: string; name: string; actions: string[] }[] }> {
  const { payload } = await jwtVerify(token, server.signingKey.publicKey, { issuer: 'Berth test', audience });
  return payload as JWTPayload & { access: { type: string; name: string; actions: string[] }[] };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-token-endpoint-'));
  const pair = await generateKeyPair('ES256');
  writeFileSync(join(dir, 'key.pem'), pair.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'cert.pem'), pair.certPem);
  const adminHash = (await hash('badmin', 5)).replace(/^\$2b\$/, '$2y$');
  const aliceHash = await hash('alice-pw', 5);
  const users = `
users:
  admin: {password: "${adminHash}"}
  alice: {password: "${aliceHash}", labels: {groups: [web]}}
`;
  const acl = `
acl:
  - match: {account: admin}
    actions: ["*"]
    comment: admin does everything
  - match: {account: alice, name: "\${labels:groups}/*"}
    actions: [pull, push]
  - match: {name: hello-world}
    actions: [pull]
    comment: everyone pulls hello-world
`;
  const token = (extra: string) => `
token:
  issuer: Berth test
  expiration: 15m
  key: key.pem
  certificate: cert.pem
${extra}`;
  const log = createLogger('silent');
  main = await startServer(await loadConfigText(`${token('  services: [registry.test]')}${users}  "": {}\n${acl}`, dir), { store: new MemoryStore(), port: 0, host: '127.0.0.1', log });
  closed = await startServer(await loadConfigText(`${token('')}${users}${acl}`, dir), { store: new MemoryStore(), port: 0, host: '127.0.0.1', log });
});

afterAll(async () => {
  await main?.close();
  await closed?.close();
  await main?.store.close();
  await closed?.store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('issuing tokens', () => {
  it('anonymous pulls hello-world and gets nothing else', async () => {
    const a = await call(main, `/auth?${query([['service', 'registry.test'], ['scope', 'repository:hello-world:pull,push'], ['scope', 'repository:other:pull']])}`);
    expect(a.status, a.text).toBe(200);
    expect(a.headers.get('cache-control')).toBe('no-store');
    expect(a.body.token).toBe(a.body.access_token);
    expect(a.body.expires_in).toBe(900);
    expect(a.body.issued_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    const p = await verified(main, a.body.token as string, 'registry.test');
    expect(p.sub).toBe('');
    expect(p.access).toEqual([
      { type: 'repository', name: 'hello-world', actions: ['pull'] },
      { type: 'repository', name: 'other', actions: [] },
    ]);
  });

  it("admin with docker_auth's $2y$ hash gets everything asked, host:port names included", async () => {
    const a = await call(main, `/auth?${query([['service', 'registry.test'], ['scope', 'repository:reg:5000/x/y:pull,push registry:catalog:*'], ['account', 'admin']])}`, { headers: { authorization: basic('admin', 'badmin') } });
    expect(a.status, a.text).toBe(200);
    const p = await verified(main, a.body.token as string, 'registry.test');
    expect(p.sub).toBe('admin');
    expect(p.access).toEqual([
      { type: 'repository', name: 'reg:5000/x/y', actions: ['pull', 'push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
  });

  it('labels from the users section feed ${labels:groups}', async () => {
    const a = await call(main, `/auth?${query([['service', 'registry.test'], ['scope', 'repository:web/app:push'], ['scope', 'repository:db/app:push']])}`, { headers: { authorization: basic('alice', 'alice-pw') } });
    const p = await verified(main, a.body.token as string, 'registry.test');
    expect(p.access.map((e) => e.actions)).toEqual([['push'], []]);
  });

  it('answers on the /auth/token alias too', async () => {
    const a = await call(main, `/auth/token?${query([['service', 'registry.test'], ['scope', 'repository:hello-world:pull']])}`);
    expect(a.status, a.text).toBe(200);
    expect((await verified(main, a.body.token as string, 'registry.test')).access[0]!.actions).toEqual(['pull']);
  });

  it('a token without scopes is still issued (docker login)', async () => {
    const a = await call(main, `/auth?service=registry.test`, { headers: { authorization: basic('alice', 'alice-pw') } });
    expect(a.status).toBe(200);
    expect((await verified(main, a.body.token as string, 'registry.test')).access).toEqual([]);
  });

  it('any service is accepted when token.services is not configured', async () => {
    const a = await call(closed, `/auth?service=whatever.example`, { headers: { authorization: basic('admin', 'badmin') } });
    expect(a.status, a.text).toBe(200);
    expect((await jwtVerify(a.body.token as string, closed.signingKey.publicKey)).payload.aud).toBe('whatever.example');
  });

  it('offline_token=true returns a refresh token that POST grant_type=refresh_token accepts', async () => {
    const first = await call(main, `/auth?${query([['service', 'registry.test'], ['offline_token', 'true'], ['client_id', 'docker']])}`, { headers: { authorization: basic('alice', 'alice-pw') } });
    expect(first.status, first.text).toBe(200);
    const refresh = first.body.refresh_token as string;
    expect(typeof refresh).toBe('string');
    const second = await call(main, '/auth', form([['grant_type', 'refresh_token'], ['refresh_token', refresh], ['client_id', 'docker'], ['service', 'registry.test'], ['scope', 'repository:web/x:pull,push']]));
    expect(second.status, second.text).toBe(200);
    expect(second.body.scope).toBe('repository:web/x:pull,push');
    expect(second.body.expires_in).toBe(900);
    const p = await verified(main, second.body.access_token as string, 'registry.test');
    expect(p.sub).toBe('alice');
  });

  it('POST grant_type=password with access_type=offline', async () => {
    const a = await call(main, '/auth', form([['grant_type', 'password'], ['username', 'admin'], ['password', 'badmin'], ['client_id', 'containerd'], ['service', 'registry.test'], ['access_type', 'offline'], ['scope', 'repository:a:pull']]));
    expect(a.status, a.text).toBe(200);
    expect(a.body.token_type).toBe('Bearer');
    expect(a.body.refresh_token).toMatch(/^berth_rt_/);
    expect((await verified(main, a.body.access_token as string, 'registry.test')).sub).toBe('admin');
  });

  it('a POST form with many (but not too many) scope fields keeps them all, in order', async () => {
    const scopes = Array.from({ length: 40 }, (_, i) => `repository:r${i}:pull`);
    const a = await call(main, '/auth', form([['grant_type', 'password'], ['username', 'admin'], ['password', 'badmin'], ['client_id', 'c'], ['service', 'registry.test'], ...scopes.map((s): [string, string] => ['scope', s])]));
    expect(a.status, a.text).toBe(200);
    expect(a.body.scope).toBe(scopes.join(' '));
  });

  it('the JWKS endpoint lists the signing key, and it verifies issued tokens', async () => {
    const jwks = await call(main, '/.well-known/jwks.json');
    expect(jwks.status).toBe(200);
    const keys = jwks.body.keys as { kid: string; alg: string; use: string; kty: string }[];
    expect(keys).toHaveLength(1);
    expect(keys[0]!.kid).toBe(main.signingKey.thumbprintKid);
    expect(keys[0]!.alg).toBe('ES256');
    expect(keys[0]!.use).toBe('sig');
    expect(JSON.stringify(keys[0])).not.toMatch(/"d"/);
    const t = await call(main, `/auth?service=registry.test`);
    await expect(jwtVerify(t.body.token as string, await importJWK(keys[0]!, 'ES256'))).resolves.toBeTruthy();
  });
});

describe('client quirks', () => {
  const get = (scopes: string[], auth = basic('alice', 'alice-pw')) =>
    call(main, `/auth?${query([['service', 'registry.test'], ...scopes.map((s): [string, string] => ['scope', s])])}`, { headers: { authorization: auth } });

  it('Helm asks pull and pull,push for one repository: one entry with both', async () => {
    const a = await get(['repository:web/chart:pull', 'repository:web/chart:pull,push']);
    expect((await verified(main, a.body.token as string, 'registry.test')).access).toEqual([{ type: 'repository', name: 'web/chart', actions: ['pull', 'push'] }]);
  });

  it('repository(plugin):NAME is decided as the repository, and merged with a plain ask for it', async () => {
    const alone = await get(['repository(plugin):web/p:pull']);
    expect((await verified(main, alone.body.token as string, 'registry.test')).access).toEqual([{ type: 'repository', class: 'plugin', name: 'web/p', actions: ['pull'] }]);
    const both = await get(['repository(plugin):web/p:pull', 'repository:web/p:push']);
    expect((await verified(main, both.body.token as string, 'registry.test')).access).toEqual([{ type: 'repository', name: 'web/p', actions: ['pull', 'push'] }]);
  });

  it('a cross-repository mount gets pull on its source decided on its own', async () => {
    // docker push mounting a blob from hello-world (everyone pulls) and from secret/x (nobody does).
    const a = await get(['repository:web/app:pull,push', 'repository:hello-world:pull', 'repository:secret/x:pull']);
    expect((await verified(main, a.body.token as string, 'registry.test')).access).toEqual([
      { type: 'repository', name: 'web/app', actions: ['pull', 'push'] },
      { type: 'repository', name: 'hello-world', actions: ['pull'] },
      { type: 'repository', name: 'secret/x', actions: [] },
    ]);
  });

  it('docker login (no scope) gets a working token with empty access', async () => {
    const a = await get([]);
    expect(a.status).toBe(200);
    expect((await verified(main, a.body.token as string, 'registry.test')).access).toEqual([]);
  });
});

describe('malformed requests: 400 with the registry error shape and a message naming the problem', () => {
  const bad = (q: [string, string][], init: RequestInit = {}) => call(main, `/auth?${query(q)}`, init);

  it('a bad scope', async () => {
    expectError(await bad([['service', 'registry.test'], ['scope', 'garbage']]), 400, 'INVALID_REQUEST', /invalid scope "garbage"/);
    expectError(await bad([['service', 'registry.test'], ['scope', 'repository::pull']]), 400, 'INVALID_REQUEST', /invalid resource name/);
    expectError(await bad([['service', 'registry.test'], ['scope', 'repository:a:PULL']]), 400, 'INVALID_REQUEST', /invalid action "PULL"/);
  });

  it('an unknown service when token.services is configured', async () => {
    expectError(await bad([['service', 'evil.example']]), 400, 'INVALID_REQUEST', /unknown service "evil\.example"/);
  });

  it('a missing service', async () => {
    expectError(await bad([]), 400, 'INVALID_REQUEST', /missing service/);
    expectError(await bad([['service', '']]), 400, 'INVALID_REQUEST', /missing service/);
  });

  it('a parameter given twice', async () => {
    expectError(await bad([['service', 'registry.test'], ['service', 'registry.test']]), 400, 'INVALID_REQUEST', /parameter service given 2 times/);
  });

  it('account different from the Basic user', async () => {
    expectError(await bad([['service', 'registry.test'], ['account', 'admin']], { headers: { authorization: basic('alice', 'alice-pw') } }), 400, 'INVALID_REQUEST', /account parameter does not match/);
  });

  it('a garbage Authorization header', async () => {
    const svc: [string, string][] = [['service', 'registry.test']];
    expectError(await bad(svc, { headers: { authorization: 'Basic !!!not-base64!!!' } }), 400, 'INVALID_REQUEST', /use HTTP Basic/);
    expectError(await bad(svc, { headers: { authorization: `Basic ${Buffer.from('no-colon').toString('base64')}` } }), 400, 'INVALID_REQUEST', /expected user:password/);
    expectError(await bad(svc, { headers: { authorization: 'Basic' } }), 400, 'INVALID_REQUEST', /use HTTP Basic/);
    expectError(await bad(svc, { headers: { authorization: 'Bearer abc.def.ghi' } }), 400, 'INVALID_REQUEST', /use HTTP Basic/);
    expectError(await bad(svc, { headers: { authorization: `Basic ${'A'.repeat(9000)}` } }), 400, 'INVALID_REQUEST', /too long/);
  });

  it('a scope parameter repeated more than 64 times, distinct or identical', async () => {
    const distinct: [string, string][] = [['service', 'registry.test'], ...Array.from({ length: 65 }, (_, i): [string, string] => ['scope', `repository:r${i}:pull`])];
    expectError(await bad(distinct), 400, 'INVALID_REQUEST', /too many scope/);
    const same: [string, string][] = [['service', 'registry.test'], ...Array.from({ length: 65 }, (): [string, string] => ['scope', 'repository:r:pull'])];
    expectError(await bad(same), 400, 'INVALID_REQUEST', /too many scope/);
    const ok: [string, string][] = [['service', 'registry.test'], ...Array.from({ length: 64 }, (_, i): [string, string] => ['scope', `repository:r${i}:pull`])];
    expect((await bad(ok)).status).toBe(200);
  });

  it('too many scopes in a POST form as well', async () => {
    const params: [string, string][] = [['grant_type', 'password'], ['username', 'admin'], ['password', 'badmin'], ['client_id', 'c'], ['service', 'registry.test'], ...Array.from({ length: 65 }, (_, i): [string, string] => ['scope', `repository:r${i}:pull`])];
    expectError(await call(main, '/auth', form(params)), 400, 'INVALID_REQUEST', /too many scope/);
  });

  it('POST without client_id', async () => {
    expectError(await call(main, '/auth', form([['grant_type', 'password'], ['username', 'admin'], ['password', 'badmin'], ['service', 'registry.test']])), 400, 'INVALID_REQUEST', /missing client_id/);
  });

  it('POST with an unsupported or missing grant_type', async () => {
    expectError(await call(main, '/auth', form([['grant_type', 'client_credentials'], ['client_id', 'c'], ['service', 'registry.test']])), 400, 'INVALID_REQUEST', /unsupported grant_type "client_credentials"/);
    expectError(await call(main, '/auth', form([['client_id', 'c'], ['service', 'registry.test']])), 400, 'INVALID_REQUEST', /missing grant_type/);
  });

  it('POST password grant without a username, refresh grant without a token', async () => {
    expectError(await call(main, '/auth', form([['grant_type', 'password'], ['password', 'x'], ['client_id', 'c'], ['service', 'registry.test']])), 400, 'INVALID_REQUEST', /needs username and password/);
    expectError(await call(main, '/auth', form([['grant_type', 'refresh_token'], ['client_id', 'c'], ['service', 'registry.test']])), 400, 'INVALID_REQUEST', /needs refresh_token/);
  });

  it('a POST that is not a form', async () => {
    const json = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ grant_type: 'password', username: 'admin', password: 'badmin', client_id: 'c', service: 'registry.test' }) };
    expectError(await call(main, '/auth', json), 400, 'INVALID_REQUEST', /application\/x-www-form-urlencoded/);
    expectError(await call(main, '/auth', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'grant_type=password' }), 400, 'INVALID_REQUEST', /application\/x-www-form-urlencoded/);
    expectError(await call(main, '/auth', { method: 'POST' }), 400, 'INVALID_REQUEST', /application\/x-www-form-urlencoded/);
    const broken = await call(main, '/auth', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"grant_type":' });
    expect(broken.status).toBe(400);
    expect((broken.body.errors as unknown[]).length).toBe(1);
  });

  it('form fields given as nested objects', async () => {
    const a = await call(main, '/auth', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=password&username[a]=b&password=x&client_id=c&service=registry.test' });
    expectError(a, 400, 'INVALID_REQUEST', /parameter username must be a string/);
  });
});

describe('authentication failures', () => {
  it('a wrong password is 401 with a Basic challenge', async () => {
    const a = await call(main, `/auth?service=registry.test`, { headers: { authorization: basic('admin', 'wrong') } });
    expectError(a, 401, 'UNAUTHORIZED', /invalid username or password/);
    expect(a.headers.get('www-authenticate')).toBe('Basic realm="Berth test"');
  });

  it('an unknown user is 401 with the same message', async () => {
    const a = await call(main, `/auth?service=registry.test`, { headers: { authorization: basic('mallory', 'x') } });
    expectError(a, 401, 'UNAUTHORIZED', /invalid username or password/);
  });

  it('anonymous is 401 when there is no "" user', async () => {
    const a = await call(closed, `/auth?service=registry.test&scope=repository:hello-world:pull`);
    expectError(a, 401, 'UNAUTHORIZED', /authentication required/);
    expect(a.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
  });

  it('a Basic header with an empty user name is not the anonymous user', async () => {
    const a = await call(main, `/auth?service=registry.test`, { headers: { authorization: basic('', '') } });
    expectError(a, 401, 'UNAUTHORIZED', /invalid username or password/);
  });

  it('an unknown or forged refresh token is 401', async () => {
    const a = await call(main, '/auth', form([['grant_type', 'refresh_token'], ['refresh_token', 'berth_rt_forged'], ['client_id', 'c'], ['service', 'registry.test']]));
    expectError(a, 401, 'UNAUTHORIZED', /invalid or expired refresh token/);
  });
});

describe('no input makes a 500', () => {
  it('raw percent-encoding garbage in the query', async () => {
    for (const q of ['service=%', 'service=%zz&scope=%', 'scope=%E0%A4%A&service=registry.test', 'service=registry.test&scope=repository%3Aa%3Apull%00', '%%%=%%%']) {
      const a = await call(main, `/auth?${q}`);
      expect([200, 400], `${q}: ${a.text}`).toContain(a.status);
    }
  });

  it('random query strings, methods and Authorization headers', async () => {
    const text = fc.string({ unit: 'binary', maxLength: 40 });
    const scopeish = fc.oneof(text, fc.constantFrom('repository:a:pull', 'registry:catalog:*', 'repository(x):h:1/a:pull', ':::', 'a:b:c:d', 'repository:a:pull push'));
    const param = fc.tuple(fc.constantFrom('scope', 'service', 'account', 'offline_token', 'client_id', 'grant_type', 'username', 'password', 'refresh_token', 'access_type', 'x'), scopeish);
    const auth = fc.oneof(fc.constant(undefined), text.map((t) => `Basic ${Buffer.from(t).toString('base64')}`), text.map((t) => `Basic ${t}`), text);
    await fc.assert(
      fc.asyncProperty(fc.array(param, { maxLength: 8 }), auth, fc.boolean(), async (params, authorization, post) => {
        const headers: Record<string, string> = {};
        // fetch refuses header values with control characters; those never reach a server anyway.
        if (authorization !== undefined && /^[\t\x20-\x7e\x80-\xff]*$/.test(authorization)) headers.authorization = authorization;
        const body = new URLSearchParams(params).toString();
        const a = post ? await call(main, '/auth', { method: 'POST', headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, body }) : await call(main, `/auth?${body}`, { headers });
        // 429: enough random wrong passwords lock the test's address out, which is also a proper answer.
        expect([200, 400, 401, 429], a.text).toContain(a.status);
        if (a.status !== 200) expect((a.body.errors as { code: string; message: string }[])[0]!.message.length).toBeGreaterThan(0);
      }),
      { numRuns: 300 },
    );
  });
});
