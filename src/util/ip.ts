import { isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';

export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;

/**
 * An IP address in standard text form only: dotted-quad decimal IPv4 without leading zeros, or
 * IPv6 without a zone (an embedded IPv4 tail in dotted-quad decimal too). ipaddr.js alone also
 * reads `167772169`, `0xa.0.0.9` and `010.0.0.1` (octal) as addresses — all of them 10.0.0.x or
 * 8.0.0.1 — which would let a hand-written header match a `10.0.0.0/8` rule. IPv4-mapped IPv6
 * becomes IPv4, as Node reports peers on dual-stack sockets that way.
 */
export function parseStandardIp(text: string): IpAddress | null {
  if (text.length > 45) return null;
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (!text.includes(':') || text.includes('%') || !isIPv6(text)) return null;
  const tail = text.slice(text.lastIndexOf(':') + 1);
  if (tail.includes('.') && !ipaddr.IPv4.isValidFourPartDecimal(tail)) return null;
  let a: ipaddr.IPv6;
  try {
    a = ipaddr.IPv6.parse(text);
  } catch {
    return null;
  }
  return a.isIPv4MappedAddress() ? a.toIPv4Address() : a;
}

export type Cidr = [IpAddress, number];

/** `a.b.c.d/n`, `x::/n` or a bare address (a /32 or /128), standard forms only; throws on anything else. */
export function parseStandardCidr(spec: string): Cidr {
  const slash = spec.indexOf('/');
  const addrText = slash < 0 ? spec : spec.slice(0, slash);
  const addr = parseStandardIp(addrText);
  if (!addr) throw new Error(`${JSON.stringify(spec)} is not an IP address or CIDR in standard form`);
  const max = addr.kind() === 'ipv4' ? 32 : 128;
  // A mapped IPv6 range (::ffff:10.0.0.0/104) was turned into IPv4 above; its prefix follows.
  const mapped = addr.kind() === 'ipv4' && addrText.includes(':');
  let bits = max;
  if (slash >= 0) {
    const b = spec.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(b)) throw new Error(`${JSON.stringify(spec)}: prefix length is not a number`);
    bits = Number(b) - (mapped ? 96 : 0);
    if (bits < 0 || bits > max) throw new Error(`${JSON.stringify(spec)}: prefix length out of range`);
  }
  return [addr, bits];
}

export function inCidrs(addr: IpAddress, cidrs: readonly Cidr[]): boolean {
  for (const [range, bits] of cidrs) if (addr.kind() === range.kind() && addr.match(range, bits)) return true;
  return false;
}
