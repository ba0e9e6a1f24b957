import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { inCidrs, parseStandardCidr, parseStandardIp, type Cidr } from '../util/ip.js';

export interface ClientIpOptions {
  /**
   * Without trustedProxies: honour one forwarded hop, and only from a loopback or private-network
   * peer (the pre-trustedProxies meaning of `trustProxy: true`, kept so old configs work).
   */
  trustProxy?: boolean | undefined;
  /** CIDRs (or bare addresses) of the proxies whose forwarded headers count; walked past from the right. */
  trustedProxies?: readonly string[] | undefined;
  /** Header the proxies write client addresses to; X-Forwarded-For by default. */
  realIPHeader?: string | undefined;
}

export interface ClientInfo {
  /** The client's address ('' when the socket has none). */
  ip: string;
  /** The scheme the client used to reach the first trusted hop (or this server). */
  protocol: 'http' | 'https';
}

/** Where proxies normally sit when an operator just said "behind a proxy". */
export const PRIVATE_NETWORKS: readonly string[] = ['127.0.0.0/8', '::1', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7'];

/** The trusted-proxy list, validated; throws with the offending entry. */
export function parseTrustedProxies(specs: readonly string[]): Cidr[] {
  return specs.map((s) => parseStandardCidr(s.trim()));
}

/**
 * The one answer to "who is the client, and did it use https?" — for Koa (createApp installs it as
 * ctx.ip / ctx.protocol) and for the token pipeline, which answers before Koa exists
 * (token/pipeline.ts). Computed once per request.
 *
 * Forwarded headers count only when the socket's peer is a trusted proxy. The address list is then
 * walked from the right — each entry was appended by the hop to its right — past every trusted
 * address; the first untrusted one is the client. Entries left of it were written by the client
 * and are never read. An entry that is not an address in standard form ends the walk: the client
 * is then the hop that forwarded it. The scheme is X-Forwarded-Proto's entry for that same hop,
 * counted from the right (or its leftmost when proxies overwrite rather than append).
 */
function resolverOf(opts: ClientIpOptions): (req: IncomingMessage) => ClientInfo {
  const explicit = opts.trustedProxies && opts.trustedProxies.length > 0;
  const trusted = explicit ? parseTrustedProxies(opts.trustedProxies!) : opts.trustProxy ? parseTrustedProxies(PRIVATE_NETWORKS) : null;
  const maxHops = explicit ? Number.POSITIVE_INFINITY : 1;
  const header = (opts.realIPHeader ?? 'X-Forwarded-For').toLowerCase();
  return (req: IncomingMessage): ClientInfo => {
    const peer = req.socket.remoteAddress ?? '';
    const own: ClientInfo = { ip: peer, protocol: (req.socket as Partial<TLSSocket>).encrypted ? 'https' : 'http' };
    if (!trusted) return own;
    const peerAddr = parseStandardIp(peer);
    if (!peerAddr || !inCidrs(peerAddr, trusted)) return own;
    const raw = req.headers[header];
    // Node joins repeated X-Forwarded-For lines with ", "; other repeated headers keep the first.
    const entries = typeof raw === 'string' && raw ? raw.split(',') : [];
    let ip = peer;
    let hops = 0;
    for (let i = entries.length - 1; i >= 0 && hops < maxHops; i--) {
      const a = parseStandardIp(entries[i]!.trim());
      if (!a) break;
      ip = a.toString();
      hops++;
      if (!inCidrs(a, trusted)) break;
    }
    if (hops === 0) return own;
    return { ip, protocol: forwardedProto(req.headers['x-forwarded-proto'], hops) ?? own.protocol };
  };
}

/** resolverOf(), computed once per request: Koa asks for ctx.ip and ctx.protocol more than once. */
export function clientResolver(opts: ClientIpOptions): (req: IncomingMessage) => ClientInfo {
  const resolve = resolverOf(opts);
  const seen = new WeakMap<IncomingMessage, ClientInfo>();
  return (req) => {
    let info = seen.get(req);
    if (!info) {
      info = resolve(req);
      seen.set(req, info);
    }
    return info;
  };
}

function forwardedProto(raw: string | string[] | undefined, hop: number): 'http' | 'https' | undefined {
  if (typeof raw !== 'string' || !raw) return undefined;
  const protos = raw.split(',');
  const v = protos[Math.max(0, protos.length - hop)]!.trim().toLowerCase();
  return v === 'https' || v === 'http' ? v : undefined;
}

/** Just the address: what the token pipeline keys its reuse cache on. */
export function clientIpResolver(opts: ClientIpOptions): (req: IncomingMessage) => string {
  // Not memoized: the token pipeline asks once per request, and Koa never sees the requests it
  // answers (a WeakMap entry per request cost a write barrier and GC work on the hot path).
  const resolve = resolverOf(opts);
  return (req) => resolve(req).ip;
}
