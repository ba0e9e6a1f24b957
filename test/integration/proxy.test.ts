import { mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';

// Behind a load balancer only the addresses trusted proxies appended may count: a client must not
// choose its own address (ACL ip rules, per-address lockouts) or scheme by writing X-Forwarded-*.

let dir: string;
const servers: RunningServer[] = [];

async function start(server: string, acl = '  - { match: { ip: 10.0.0.0/8 }, actions: [pull], comment: office network }'): Promise<RunningServer> {
  const config = await loadConfigText(
    `
server: ${server}
token: { issuer: proxy, services: [registry], generatedKeyDir: keys }
users: { "": {} }
acl:
${acl}
`,
    dir,
  );
  const s = await startServer(config, { port: 0, host: '127.0.0.1', log: createLogger('silent') });
  servers.push(s);
  return s;
}

let legacy: RunningServer;
let untrusted: RunningServer;
let chain: RunningServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-proxy-'));
  // trustProxy alone: one hop, from loopback/private peers (the tests connect from 127.0.0.1).
  legacy = await start('{ trustProxy: true }');
  // The only trusted proxy is somewhere else: these tests' direct connections are "clients".
  untrusted = await start('{ trustedProxies: [203.0.113.0/24] }');
  // Two proxies: loopback (inner) and 198.51.100.0/24 (outer).
  chain = await start('{ trustedProxies: [127.0.0.1, "198.51.100.0/24"] }', '  - { match: { ip: 192.0.2.0/24 }, actions: [pull] }');
});

afterAll(async () => {
  for (const s of servers) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function granted(xff: string, s = legacy): Promise<string[]> {
  const res = await fetch(`${s.url}/auth?service=registry&scope=repository:a/b:pull`, { headers: { 'x-forwarded-for': xff } });
  const { token } = (await res.json()) as { token: string };
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).access[0].actions;
}

/** Response headers of GET / (fetch can't show Set-Cookie's Secure flag portably; node:http can). */
function get(s: RunningServer, path: string, headers: Record<string, string>): Promise<import('node:http').IncomingHttpHeaders> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, s.url);
    const req = request(u, { headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.headers));
    });
    req.on('error', reject);
    req.end();
  });
}

const secureCookie = async (s: RunningServer, proto: string) => {
  const h = await get(s, '/', { 'x-forwarded-for': '192.0.2.5', 'x-forwarded-proto': proto });
  const cookie = (h['set-cookie'] ?? []).find((c) => c.startsWith('berth_csrf='));
  expect(cookie).toBeDefined();
  return /;\s*secure/i.test(cookie!);
};

describe('trustProxy (no trustedProxies)', () => {
  it('uses the address appended by the nearest proxy', async () => {
    expect(await granted('192.0.2.5, 10.1.2.3')).toEqual(['pull']);
  });

  it('ignores addresses the client wrote itself', async () => {
    expect(await granted('10.1.2.3, 192.0.2.5')).toEqual([]);
  });

  it('keys repeated answers by that address too', async () => {
    // The second and third requests repeat the first byte for byte except for the header: the
    // answer decided for the office address must not be handed to another one, and back.
    expect(await granted('198.51.100.7, 10.9.9.9')).toEqual(['pull']);
    expect(await granted('10.9.9.9, 198.51.100.7')).toEqual([]);
    expect(await granted('198.51.100.8, 10.9.9.9')).toEqual(['pull']);
  });

  it('reads no address out of non-standard forms (decimal, hex, octal, mapped hex)', async () => {
    for (const forged of ['167772169', '0xa.0.0.9', '010.0.0.1', '10.0.0.010', '::ffff:0xa.0.0.9', '10.1.2.3:443', ' 10.1.2.3x']) {
      expect(await granted(`192.0.2.5, ${forged}`), forged).toEqual([]);
    }
    // Standard IPv6 spellings still count: mapped IPv4 is the same client.
    expect(await granted('::ffff:10.1.2.3')).toEqual(['pull']);
  });

  it('takes the scheme from the same hop as the address, not from what the client wrote', async () => {
    // The proxy appended "http": the client's own "https" must not make cookies Secure-only
    // because the client connected over plain http.
    expect(await secureCookie(legacy, 'https, http')).toBe(false);
    expect(await secureCookie(legacy, 'https')).toBe(true);
    expect(await secureCookie(legacy, 'http')).toBe(false);
  });
});

describe('trustedProxies', () => {
  it('ignores forwarded headers from a peer that is not a trusted proxy', async () => {
    // A client reaching Berth directly, around the proxy.
    expect(await granted('10.1.2.3', untrusted)).toEqual([]);
    expect(await granted('192.0.2.5, 10.1.2.3', untrusted)).toEqual([]);
    expect(await secureCookie(untrusted, 'https')).toBe(false);
  });

  it('walks from the right past every trusted hop to the real client', async () => {
    expect(await granted('192.0.2.5, 198.51.100.1', chain)).toEqual(['pull']);
    // Anything left of the first untrusted address was written by the client.
    expect(await granted('192.0.2.5, 203.0.113.9, 198.51.100.1', chain)).toEqual([]);
    expect(await granted('192.0.2.77', chain)).toEqual(['pull']);
    // Not an address: the client is the hop that forwarded it (the outer proxy, not in 192.0.2.0/24).
    expect(await granted('192.0.2.5, 3221225989, 198.51.100.1', chain)).toEqual([]);
  });

  it('takes the scheme from the hop that saw the client', async () => {
    // Outer proxy overwrote the header with the client's scheme; the inner one passed it on.
    const h = async (xff: string, proto: string) => {
      const res = await get(chain, '/', { 'x-forwarded-for': xff, 'x-forwarded-proto': proto });
      return /;\s*secure/i.test((res['set-cookie'] ?? []).find((c) => c.startsWith('berth_csrf='))!);
    };
    expect(await h('192.0.2.5, 198.51.100.1', 'https')).toBe(true);
    // Both proxies appended: client→outer was http, outer→inner https; the client's own claim is left of both.
    expect(await h('192.0.2.5, 198.51.100.1', 'https, http, https')).toBe(false);
    expect(await h('192.0.2.5, 198.51.100.1', 'http, https, http')).toBe(true);
  });
});

describe('TLS hygiene', () => {
  it('sends HSTS when published over https, and not over plain http', async () => {
    const published = await start('{ publicURL: "https://berth.example" }');
    expect((await get(published, '/healthz', {}))['strict-transport-security']).toMatch(/^max-age=\d{7,}/);
    expect((await get(published, '/', {}))['strict-transport-security']).toMatch(/^max-age=\d{7,}/);
    expect((await get(legacy, '/healthz', {}))['strict-transport-security']).toBeUndefined();
  });

  it('sends HSTS and Secure cookies when serving https itself', async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt'), '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
    const tls = await start('{ certificate: tls.crt, key: tls.key }');
    expect(tls.url).toMatch(/^https:/);
    const headers = await new Promise<import('node:http').IncomingHttpHeaders>((resolve, reject) => {
      const req = httpsRequest(new URL('/', tls.url), { rejectUnauthorized: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers));
      });
      req.on('error', reject);
      req.end();
    });
    expect(headers['strict-transport-security']).toMatch(/^max-age=\d{7,}/);
    expect((headers['set-cookie'] ?? []).find((c) => c.startsWith('berth_csrf='))).toMatch(/;\s*secure/i);
  });
});
