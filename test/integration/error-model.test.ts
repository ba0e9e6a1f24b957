// Issue 10 item 2: domain modules throw domain errors; http/ maps them once (httpErrorOf) and
// answers in the caller's format. And item 1: every token request, whatever its method or whether
// it is a repeat, is answered by the one pipeline, so the same rules (limits, headers) hold for all.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { FederationUnavailableError } from '../../src/federation/verifier.js';
import { httpErrorOf, HttpError } from '../../src/http/errors.js';
import { AuthenticationError } from '../../src/model/principal.js';
import { createLogger } from '../../src/log.js';
import { RobotError, robotName } from '../../src/robots/robots.js';
import { RateLimitedError } from '../../src/security/auth-limiter.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { StoreUnavailableError } from '../../src/store/store.js';

let dir: string;
let berth: RunningServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-error-model-'));
  const config = await loadConfigText(
    `
server: { publicURL: "https://berth.example" }
token: { issuer: errors, services: [registry], generatedKeyDir: keys }
users: { "": {} }
acl:
  - { match: { name: pub/* }, actions: [pull] }
`,
    dir,
  );
  berth = await startServer(config, { port: 0, host: '127.0.0.1', log: createLogger('silent') });
});

afterAll(async () => {
  await berth?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('domain errors are mapped to HTTP in one place', () => {
  it('httpErrorOf gives each domain error its status, code and headers; an unknown error is a bug (null)', () => {
    const auth = httpErrorOf(new AuthenticationError('wrong password'));
    expect([auth?.status, auth?.code, auth?.message]).toEqual([401, 'UNAUTHORIZED', 'wrong password']);
    const limited = httpErrorOf(new RateLimitedError(42));
    expect([limited?.status, limited?.code, limited?.headers['Retry-After']]).toEqual([429, 'TOOMANYREQUESTS', '42']);
    const store = httpErrorOf(new StoreUnavailableError('redis down'));
    expect([store?.status, store?.code, store?.headers['Retry-After']]).toEqual([503, 'UNAVAILABLE', '1']);
    // The store's own message (a host name, a Redis error) is not the client's business.
    expect(store?.message).not.toContain('redis down');
    const issuer = httpErrorOf(new FederationUnavailableError('issuer https://ci.example keys unreachable'));
    expect([issuer?.status, issuer?.code, issuer?.headers['Retry-After']]).toEqual([503, 'UNAVAILABLE', '5']);
    expect(issuer?.message).toContain('issuer https://ci.example');
    expect(httpErrorOf(new RobotError('invalid', 'bad name'))?.status).toBe(400);
    expect(httpErrorOf(new RobotError('not_found', 'no robot'))?.code).toBe('NOT_FOUND');
    expect([httpErrorOf(new RobotError('conflict', 'exists'))?.status, httpErrorOf(new RobotError('conflict', 'exists'))?.code]).toEqual([409, 'CONFLICT']);
    const http = new HttpError(418, 'TEAPOT', 'short and stout');
    expect(httpErrorOf(http)).toBe(http);
    expect(httpErrorOf(new TypeError('x is undefined'))).toBeNull();
  });

  it('robot and federation modules speak in domain terms: a robot refusal has a reason, not a status', () => {
    let caught: unknown;
    try {
      robotName('Not A Name');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(RobotError);
    expect((caught as RobotError).reason).toBe('invalid');
  });

  it('no domain module imports the HTTP layer', () => {
    const domain = ['federation', 'robots', 'identity', 'security', 'store', 'policy', 'tokens'];
    const offenders: string[] = [];
    for (const d of domain) {
      for (const f of readdirSync(join('src', d))) {
        if (!f.endsWith('.ts')) continue;
        const text = readFileSync(join('src', d, f), 'utf8');
        // A type-only import of the wire shapes (tokens/registry-jwt.ts signs AccessEntry lists) costs nothing at run time.
        for (const m of text.matchAll(/^import (?!type )[^;]*from '\.\.\/http\/[^']*'/gm)) offenders.push(`${d}/${f}: ${m[0]}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});

describe('one failure, one answer per format', () => {
  const long = `x=${'a'.repeat(9000)}`;

  it('a query string past the limit is 414 on every route, in the format of the route that answers', async () => {
    for (const path of ['/auth', '/auth/token']) {
      for (const method of ['GET', 'POST']) {
        const res = await fetch(`${berth.url}${path}?${long}`, { method, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: method === 'POST' ? 'grant_type=password' : null });
        expect(res.status, `${method} ${path}`).toBe(414);
        expect(await res.json()).toEqual({ errors: [{ code: 'INVALID_REQUEST', message: 'query string longer than 8192 bytes' }] });
      }
    }
    const api = await fetch(`${berth.url}/api/v1/tokens?${long}`);
    expect(api.status).toBe(414);
    expect(((await api.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('INVALID_REQUEST');
    const device = await fetch(`${berth.url}/device/token?${long}`, { method: 'POST' });
    expect(device.status).toBe(414);
    expect(await device.json()).toMatchObject({ error: 'invalid_request', error_description: 'query string longer than 8192 bytes' });
    const page = await fetch(`${berth.url}/tokens?${long}`);
    expect(page.status).toBe(414);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toContain('Address too long');
  });

  it('a token refusal is the same registry body whether the request was a GET or a POST', async () => {
    const get = await fetch(`${berth.url}/auth?service=elsewhere&scope=repository:pub/a:pull`);
    const post = await fetch(`${berth.url}/auth`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=password&client_id=t&username=u&password=p&service=elsewhere' });
    expect(get.status).toBe(400);
    expect(post.status).toBe(400);
    const g = await get.json();
    expect(g).toEqual(await post.json());
    expect(g).toEqual({ errors: [{ code: 'INVALID_REQUEST', message: 'unknown service "elsewhere"' }] });
  });
});

describe('one pipeline for every token request', () => {
  it('a repeated GET answered from the reuse cache carries the headers a fresh answer carries (HSTS, no-store, type)', async () => {
    const url = `${berth.url}/auth?service=registry&scope=repository:pub/app:pull`;
    const fresh = await fetch(url);
    const repeat = await fetch(url);
    expect(fresh.status).toBe(200);
    expect(repeat.status).toBe(200);
    const a = (await fresh.json()) as { token: string };
    const b = (await repeat.json()) as { token: string };
    expect(b.token).toBe(a.token);
    for (const h of ['strict-transport-security', 'cache-control', 'content-type']) expect(repeat.headers.get(h), h).toBe(fresh.headers.get(h));
    expect(repeat.headers.get('strict-transport-security')).toMatch(/^max-age=\d{7,}/);
  });

  it('a gzip-compressed POST form is read by the pipeline; an unknown encoding is 415, a broken one 400, too large 413', async () => {
    const body = 'grant_type=refresh_token&client_id=t&refresh_token=berth_rt_nope&service=registry';
    const post = (data: Buffer | string, encoding: string) => fetch(`${berth.url}/auth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': encoding }, body: typeof data === 'string' ? data : new Uint8Array(data) });
    const ok = await post(gzipSync(body), 'gzip');
    // Read and parsed: the refresh token itself is refused by the credential gate.
    expect(ok.status).toBe(401);
    expect(ok.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    expect((await post(body, 'compress')).status).toBe(415);
    expect((await post(body, 'gzip')).status).toBe(400);
    expect((await post(gzipSync(`password=${'x'.repeat(20_000)}`), 'gzip')).status).toBe(413);
    // The connection still carries requests.
    expect((await fetch(`${berth.url}/healthz`)).status).toBe(200);
  });

  it('PHP-style list fields are lists; other bracketed names are refused by name', async () => {
    const post = (body: string) => fetch(`${berth.url}/auth`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    const nested = await post('grant_type=password&client_id=t&username[a]=b&password=x&service=registry');
    expect(((await nested.json()) as { errors: { message: string }[] }).errors[0]!.message).toBe('parameter username must be a string');
    const list = await post('grant_type=refresh_token&client_id=t&refresh_token[]=berth_rt_x&service=registry');
    expect(list.status).toBe(401);
  });
});
