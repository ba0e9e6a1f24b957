/**
 * The key credentials are filed under: docker hands `registry.example.com`, `127.0.0.1:5000` or
 * `https://index.docker.io/v1/` for the same kind of thing, so scheme and path are dropped.
 */
export function registryKey(serverURL: string): string {
  let s = serverURL.trim();
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(s);
  if (scheme) s = s.slice(scheme[0].length);
  const slash = s.indexOf('/');
  if (slash >= 0) s = s.slice(0, slash);
  return s.toLowerCase();
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

/** A registry key (registryKey's form) whose host is this machine: `localhost:5000`, `127.0.0.1`, `[::1]:5000`. */
export function isLoopbackRegistry(key: string): boolean {
  return LOOPBACK.test(key.replace(/:\d+$/, ''));
}

/** A Berth base URL (parseBerthURL's form) on this machine. */
export function isLoopbackURL(url: string): boolean {
  return LOOPBACK.test(new URL(url).hostname);
}

/** `host` or `host:port` as docker names a registry (a DNS name, IPv4, or bracketed IPv6). */
const REGISTRY_HOST = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/;

/** BERTH_REGISTRIES: registry hosts separated by commas or spaces; anything else is an error, not ignored. */
export function parseRegistryList(raw: string, where: string): Set<string> {
  const out = new Set<string>();
  for (const item of raw.split(/[\s,]+/)) {
    if (!item) continue;
    const key = item.toLowerCase();
    if (!REGISTRY_HOST.test(key)) throw new Error(`${where}: ${JSON.stringify(item)} is not a registry host (expected host or host:port, separated by commas)`);
    out.add(key);
  }
  return out;
}

/** A Berth base URL without trailing slash; plain http only to this machine, since PATs travel over it. */
export function parseBerthURL(raw: string, where: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error(`${where}: ${JSON.stringify(raw)} is not a URL`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error(`${where}: ${JSON.stringify(raw)} must be an https URL`);
  if (u.protocol === 'http:' && !LOOPBACK.test(u.hostname)) throw new Error(`${where}: refusing plain-http ${u.origin}: tokens would cross the network unencrypted; use https`);
  if (u.search || u.hash || u.username || u.password) throw new Error(`${where}: ${JSON.stringify(raw)} must be a plain base URL`);
  return u.toString().replace(/\/+$/, '');
}
