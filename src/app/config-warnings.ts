import type { Config } from './load-config.js';

/**
 * Settings that are valid but probably not what the operator meant. `berth check-config` prints
 * them (exit status stays 0) and the server logs them at start.
 */
export function configWarnings(config: Config): string[] {
  const out: string[] = [];
  const s = config.server;
  const proxied = s.trustProxy || (s.trustedProxies?.length ?? 0) > 0;
  if (s.trustProxy && !s.trustedProxies?.length) {
    out.push(
      'server.trustProxy without server.trustedProxies is deprecated: forwarded headers are honoured for one hop from loopback and private-network peers only; list your proxies in server.trustedProxies (CIDRs)',
    );
  }
  if (s.publicURL) {
    const published = new URL(s.publicURL).protocol === 'https:' ? 'https' : 'http';
    const listener = s.tls ? 'https' : 'http';
    // A TLS-terminating proxy in front of a plain listener is the usual deployment; without one
    // declared, an https publicURL over a plain listener (or the reverse) sends browsers and OAuth
    // redirects to a scheme nobody serves, or Secure cookies over plain HTTP.
    if (published !== listener && !(published === 'https' && proxied)) {
      out.push(
        `server.publicURL is ${published} but Berth listens over ${listener}${published === 'https' ? ' (fine only behind a TLS-terminating proxy; set server.trustedProxies for it)' : ': browsers and OAuth redirects will use plain http'}`,
      );
    }
  }
  return out;
}
