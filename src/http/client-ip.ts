import type { IncomingMessage } from 'node:http';

export interface ClientIpOptions {
  trustProxy: boolean;
  /** Header the nearest proxy writes the client address to; X-Forwarded-For by default. */
  realIPHeader?: string | undefined;
}

/**
 * The client address as Koa's `ctx.ip` gives it with `maxIpsCount: 1` (see createApp): the socket's
 * peer, or behind a trusted proxy the last entry of its header — the one the nearest proxy
 * appended, not what the client wrote. Token requests answered ahead of Koa (fast-path.ts) need
 * the same address without a Koa context; a property test holds the two to the same answers.
 */
export function clientIpResolver(opts: ClientIpOptions): (req: IncomingMessage) => string {
  const peer = (req: IncomingMessage) => req.socket.remoteAddress ?? '';
  if (!opts.trustProxy) return peer;
  const header = (opts.realIPHeader ?? 'X-Forwarded-For').toLowerCase();
  return (req) => {
    const raw = req.headers[header];
    // Node joins repeated X-Forwarded-For lines with ", " and keeps the first of other repeated
    // headers; either way a string (or, for unusual names, an array Koa would not split either).
    const value = typeof raw === 'string' ? raw : '';
    if (!value) return peer(req);
    const last = value.slice(value.lastIndexOf(',') + 1).trim();
    return last || peer(req);
  };
}
