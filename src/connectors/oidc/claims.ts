/** Reading provider claims whose shape Berth does not control. */

export type ClaimSet = Record<string, unknown>;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Follows a dotted path (`realm_access.roles`, `resource_access.my-client.roles`). Keys may contain dots
 * themselves (client ids such as `registry.example.com`), so a literal key wins over splitting and
 * longer literal prefixes are tried first.
 */
export function claimAtPath(claims: unknown, path: string): unknown {
  if (!isRecord(claims)) return undefined;
  if (Object.hasOwn(claims, path)) return claims[path];
  for (let i = path.lastIndexOf('.'); i > 0; i = path.lastIndexOf('.', i - 1)) {
    const head = path.slice(0, i);
    if (Object.hasOwn(claims, head)) {
      const found = claimAtPath(claims[head], path.slice(i + 1));
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/** A claim that should hold a list of names: arrays keep their strings, a lone string is one name. */
export function stringList(value: unknown): string[] {
  if (typeof value === 'string') return value === '' ? [] : [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string' && v !== '');
  return [];
}

export function nonEmptyString(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}

const DISPLAY_CLAIMS = ['name', 'preferred_username', 'email_verified', 'hd', 'iss'] as const;

/** What Identity.claims keeps: display data only, never tokens or provider internals. */
export function displayClaims(claims: ClaimSet): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of DISPLAY_CLAIMS) {
    const v = claims[k];
    if (typeof v === 'string' || typeof v === 'boolean') out[k] = v;
  }
  return out;
}
