import type { Store } from '../../store/store.js';
import { parseStandardIp } from '../../util/ip.js';

/** Sign-ins one address may start per minute: each start stores a 10-minute login-attempt record. */
export const LOGIN_STARTS_PER_MINUTE = 60;

/**
 * Per-address limit on GET /login/:id, which writes a login-attempt record before anyone has
 * authenticated. Bounds what one address can make the store hold to about
 * LOGIN_STARTS_PER_MINUTE × 10 records, plus this counter. IPv6 clients are counted per /64:
 * one host commonly holds a whole /64.
 */
export class LoginStarts {
  constructor(
    private readonly store: Store,
    readonly perMinute = LOGIN_STARTS_PER_MINUTE,
  ) {}

  async allowed(ip: string): Promise<boolean> {
    return (await this.store.incr(`login-starts:${addressKey(ip)}`, 60)) <= this.perMinute;
  }
}

function addressKey(ip: string): string {
  const a = parseStandardIp(ip);
  if (!a) return ip.slice(0, 64);
  if (a.kind() === 'ipv4') return a.toString();
  return `${a.toNormalizedString().split(':').slice(0, 4).join(':')}::/64`;
}
