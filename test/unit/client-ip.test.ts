import type { IncomingMessage, ServerResponse } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/http/app.js';
import { clientIpResolver } from '../../src/http/client-ip.js';
import { createLogger } from '../../src/log.js';

// Repeated token GETs are answered before Koa exists for the request, keyed by the client address;
// the rest of the app reads Koa's ctx.ip. The two must never disagree, or an answer decided for one
// address (ACL `ip` rules) could be handed to another.

const addressish = fc.oneof(
  fc.stringMatching(/^[0-9a-f.:, \t]{0,40}$/),
  fc.string({ maxLength: 40 }),
  fc.tuple(fc.array(fc.oneof(fc.ipV4(), fc.ipV6(), fc.constant(''), fc.constant(' ')), { maxLength: 4 }), fc.constantFrom(',', ', ', ' ,')).map(([xs, sep]) => xs.join(sep)),
);

describe('client address outside Koa', () => {
  for (const [trustProxy, realIPHeader] of [[false, undefined], [true, undefined], [true, 'X-Real-IP']] as const) {
    it(`matches Koa's ctx.ip (trustProxy ${trustProxy}${realIPHeader ? `, ${realIPHeader}` : ''})`, () => {
      const { app } = createApp({ log: createLogger('silent'), trustProxy, realIPHeader });
      const resolve = clientIpResolver({ trustProxy, realIPHeader });
      fc.assert(
        fc.property(fc.option(addressish), fc.option(addressish), fc.oneof(fc.ipV4(), fc.ipV6(), fc.constant(undefined)), (xff, xri, peer) => {
          const headers: Record<string, string> = {};
          if (xff !== null) headers['x-forwarded-for'] = xff;
          if (xri !== null) headers['x-real-ip'] = xri;
          // The request as node:http hands it over: headers and the socket's peer address.
          const req = { headers, socket: { remoteAddress: peer }, url: '/auth', method: 'GET' } as unknown as IncomingMessage;
          const ctx = app.createContext(req, {} as ServerResponse);
          expect(resolve(req)).toBe(ctx.ip);
        }),
        { numRuns: 3000 },
      );
    });
  }
});
