const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * The protected header of something shaped like a compact JWT (three base64url segments, the
 * first a JSON object with an `alg`), or null. An empty signature still counts, so that an
 * `alg: none` token is refused as such rather than tried as a static user's password.
 */
export function jwtHeader(value: string): Record<string, unknown> | null {
  if (value.length > 16_384 || !COMPACT_JWS.test(value)) return null;
  try {
    const header: unknown = JSON.parse(Buffer.from(value.slice(0, value.indexOf('.')), 'base64url').toString('utf8'));
    if (!header || typeof header !== 'object' || Array.isArray(header)) return null;
    return typeof (header as Record<string, unknown>).alg === 'string' ? (header as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** The claims of a compact JWT, unverified: only for choosing which issuer's keys to verify it with. */
export function unverifiedClaims(value: string): Record<string, unknown> | null {
  const parts = value.split('.');
  try {
    const claims: unknown = JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8'));
    return claims && typeof claims === 'object' && !Array.isArray(claims) ? (claims as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
