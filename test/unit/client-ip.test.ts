import type { IncomingMessage, ServerResponse } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/http/app.js';
import { clientResolver, type ClientIpOptions } from '../../src/http/client-ip.js';
import { createLogger } from '../../src/log.js';
import { compileRule, parseClientIp } from '../../src/policy/acl.js';
import { parseStandardCidr, parseStandardIp } from '../../src/util/ip.js';

// Repeated token GETs are answered before Koa exists for the request, keyed by the client address;
// the rest of the app reads Koa's ctx.ip. Both come from client-ip.ts: these tests hold Koa's
// context to it, and the resolver itself to a model of how proxies build X-Forwarded-For.

const addressish = fc.oneof(
  fc.stringMatching(/^[0-9a-fx.:, \t]{0,40}$/),
  fc.string({ maxLength: 40 }),
  fc.tuple(fc.array(fc.oneof(fc.ipV4(), fc.ipV6(), fc.constant(''), fc.constant(' '), fc.constant('167772169')), { maxLength: 4 }), fc.constantFrom(',', ', ', ' ,')).map(([xs, sep]) => xs.join(sep)),
);

function request(headers: Record<string, string>, peer: string | undefined, encrypted = false): IncomingMessage {
  // The request as node:http hands it over: headers and the socket's peer address.
  return { headers, socket: { remoteAddress: peer, encrypted }, url: '/auth', method: 'GET' } as unknown as IncomingMessage;
}

const configs: ClientIpOptions[] = [
  { trustProxy: false },
  { trustProxy: true },
  { trustProxy: true, realIPHeader: 'X-Real-IP' },
  { trustedProxies: ['127.0.0.0/8', '10.0.0.0/8', '2001:db8::/32'] },
];

describe("Koa's ctx.ip and ctx.protocol", () => {
  for (const opts of configs) {
    it(`are the resolver's answer (${JSON.stringify(opts)})`, () => {
      const { app } = createApp({ log: createLogger('silent'), ...opts });
      const resolve = clientResolver(opts);
      fc.assert(
        fc.property(
          fc.option(addressish),
          fc.option(addressish),
          fc.option(fc.constantFrom('https', 'http', 'https, http', 'http, https', 'HTTPS', 'ftp')),
          fc.oneof(fc.ipV4(), fc.ipV6(), fc.constantFrom('127.0.0.1', '::ffff:127.0.0.1', '10.0.0.2'), fc.constant(undefined)),
          fc.boolean(),
          (xff, xri, proto, peer, tls) => {
            const headers: Record<string, string> = {};
            if (xff !== null) headers['x-forwarded-for'] = xff;
            if (xri !== null) headers['x-real-ip'] = xri;
            if (proto !== null) headers['x-forwarded-proto'] = proto;
            const ctx = app.createContext(request(headers, peer, tls), {} as ServerResponse);
            const expected = resolve(request(headers, peer, tls));
            expect(ctx.ip).toBe(expected.ip);
            expect(ctx.protocol).toBe(expected.protocol);
            expect(ctx.secure).toBe(expected.protocol === 'https');
          },
        ),
        { numRuns: 2000 },
      );
    });
  }
});

describe('the client address behind trusted proxies', () => {
  const trustedProxies = ['10.0.0.0/8', '2001:db8::/32'];
  const resolve = clientResolver({ trustedProxies });
  const proxy = fc.oneof(fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255)).map(([a, b, c]) => `10.${a}.${b}.${c}`), fc.nat(0xffff).map((n) => `2001:db8::${n.toString(16)}`));
  const outsider = fc.oneof(fc.ipV4(), fc.ipV6()).filter((a) => {
    const p = parseStandardIp(a);
    return p !== null && !p.match(...(p.kind() === 'ipv4' ? parseStandardCidr('10.0.0.0/8') : parseStandardCidr('2001:db8::/32')) as [never, number]);
  });

  it('is what the first trusted proxy saw, whatever the client wrote', () => {
    fc.assert(
      fc.property(fc.option(addressish), outsider, fc.array(proxy, { minLength: 1, maxLength: 4 }), (written, client, proxies) => {
        // Each proxy appends the address of its own peer: the client, then the proxies in turn.
        const seen = [client, ...proxies.slice(0, -1)].join(', ');
        const xff = written === null ? seen : `${written}, ${seen}`;
        const got = resolve(request({ 'x-forwarded-for': xff }, proxies.at(-1)));
        expect(got.ip).toBe(parseStandardIp(client)!.toString());
      }),
      { numRuns: 3000 },
    );
  });

  it('is the peer itself when the peer is not a trusted proxy', () => {
    fc.assert(
      fc.property(fc.option(addressish), fc.option(fc.constantFrom('https', 'http')), outsider, (xff, proto, peer) => {
        const headers: Record<string, string> = {};
        if (xff !== null) headers['x-forwarded-for'] = xff;
        if (proto !== null) headers['x-forwarded-proto'] = proto;
        expect(resolve(request(headers, peer))).toEqual({ ip: peer, protocol: 'http' });
      }),
    );
  });
});

describe('standard address forms only', () => {
  it('round-trips every dotted-quad IPv4 address', () => {
    fc.assert(
      fc.property(fc.ipV4(), (a) => {
        expect(parseStandardIp(a)?.toString()).toBe(a);
      }),
    );
  });

  it('reads no address from integer, hex, octal or zoned spellings, so no CIDR can match them', () => {
    for (const s of ['167772169', '0xa.0.0.9', '0xa000009', '010.0.0.1', '10.0.0.010', '10.1', '10.0.0.9.', '::ffff:0xa.0.0.9', '::ffff:010.0.0.1', 'fe80::1%eth0', '[::1]', '10.0.0.9:80', '']) {
      expect(parseStandardIp(s), s).toBeNull();
      expect(parseClientIp(s), s).toBeNull();
    }
    expect(parseClientIp('::ffff:10.0.0.9')?.toString()).toBe('10.0.0.9');
  });

  it('refuses ACL ip rules in non-standard form', () => {
    for (const ip of ['167772160/8', '0xa.0.0.0/8', '010.0.0.0/8', '::ffff:0xa.0.0.0/104', 'fe80::1%eth0']) {
      expect(() => compileRule({ match: { ip }, actions: ['pull'] }, 0), ip).toThrow();
    }
    expect(() => compileRule({ match: { ip: '::ffff:10.0.0.0/104' }, actions: ['pull'] }, 0)).not.toThrow();
  });

  it('refuses trusted-proxy entries in non-standard form', () => {
    for (const s of ['010.0.0.0/8', '167772160/8', '10.0.0.0/33', '10.0.0.0/08', 'fc00::/129', 'localhost']) expect(() => parseStandardCidr(s), s).toThrow();
    expect(parseStandardCidr('::ffff:10.0.0.0/104').map(String)).toEqual(['10.0.0.0', '8']);
  });
});
