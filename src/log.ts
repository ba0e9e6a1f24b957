import pino, { type Logger } from 'pino';

/**
 * Every place a secret could sit in a log object. Request headers are never logged whole, but the
 * paths are listed anyway so that a future `log.debug({ headers })` stays safe.
 */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'refreshToken',
  '*.refreshToken',
  'refresh_token',
  '*.refresh_token',
  'access_token',
  'id_token',
  '*.id_token',
  'clientSecret',
  '*.clientSecret',
  'secret',
  '*.secret',
  'cookie',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'upstream',
  '*.upstream',
];

// Berth's own secrets (PATs, robot secrets, refresh tokens, device codes) name their kind up front.
const BERTH_SECRET = /berth_(?:pat|rbt|rt|dc)_/i;
// Crypt-style password hashes: bcrypt, argon2, sha-crypt, yescrypt.
const CRYPT_HASH = /\$(?:2[abxy]?|argon2(?:id|i|d)|[156y])\$/;
// C0 and C1 controls, zero-width and bidirectional formatting characters: a name with those is
// either pasted by mistake or meant to forge log lines.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;
const HEX = /^[0-9a-fA-F]+$/;
const MAX_LOGGED_NAME = 128;

/**
 * Holds a compact JWS/JWT: three dot-separated base64url parts, the first two long enough for a JSON
 * header and claims. Split rather than one unanchored regex, which would backtrack quadratically.
 */
function hasJwtShape(value: string): boolean {
  for (const word of value.split(/[^A-Za-z0-9_.-]+/)) {
    const parts = word.split('.');
    for (let i = 0; i + 2 < parts.length; i++) if (parts[i]!.length >= 10 && parts[i + 1]!.length >= 10) return true;
  }
  return false;
}

const charClass = (c: number) => (c >= 97 && c <= 122 ? 0 : c >= 65 && c <= 90 ? 1 : c >= 48 && c <= 57 ? 2 : 3);

/** Shannon entropy in bits per character. */
function entropy(s: string): number {
  const counts = new Map<string, number>();
  for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1);
  let h = 0;
  for (const n of counts.values()) h -= (n / s.length) * Math.log2(n / s.length);
  return h;
}

/** How often consecutive characters change class (lower case, upper case, digit, other). */
function switchRate(s: string): number {
  let switches = 0;
  for (let i = 1; i < s.length; i++) if (charClass(s.charCodeAt(i)) !== charClass(s.charCodeAt(i - 1))) switches++;
  return switches / (s.length - 1);
}

/**
 * A run of secret-alphabet characters that reads like generated randomness rather than words: long
 * hex, or long and varied, or switching between lower case, upper case and digits as often as
 * random text does (names switch rarely: `Kubernetes-Admin-2024`, `firstname.lastname`).
 */
function randomLooking(run: string): boolean {
  if (run.length < 16) return false;
  if (run.length >= 32 && ((HEX.test(run) && /\d/.test(run) && /[a-f]/i.test(run)) || entropy(run) >= 3.7)) return true;
  return switchRate(run) >= 0.33 && new Set(run).size >= run.length * 0.6;
}

/**
 * Whether a value typed as a user name looks like a secret: one of Berth's own, a JWT, a password
 * hash, a generated random string, or anything with control characters. Machine-made secrets are
 * recognised; a human-chosen password that reads like a name cannot be told from one.
 */
export function looksLikeSecret(value: string): boolean {
  if (CONTROL.test(value) || BERTH_SECRET.test(value) || hasJwtShape(value) || CRYPT_HASH.test(value)) return true;
  // Runs split at characters names use as separators (`.`, `@`, `:`, `/`, space); `-` and `_` stay,
  // as base64url secrets contain them.
  if (value.split(/[^A-Za-z0-9+=_-]+/).some(randomLooking)) return true;
  // Generated passwords with symbols: the whole word, with symbols as a fourth class, switching
  // classes more often than any name with separators does.
  return value.split(/\s+/).some((word) => word.length >= 16 && switchRate(word) >= 0.45 && new Set(word).size >= word.length * 0.7);
}

/**
 * The form in which a user-supplied user name goes into a log line: as typed, unless it looks like a
 * secret (people swap the fields: `docker login -u <token>`), then a placeholder with its length.
 */
export function loggableUsername(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  const s = String(value);
  if (looksLikeSecret(s)) return `[looks like a secret, ${s.length} chars]`;
  return s.length > MAX_LOGGED_NAME ? `${s.slice(0, MAX_LOGGED_NAME)}…` : s;
}

/**
 * Request headers worth seeing at trace level. An allow-list, so a header that carries a credential
 * (Proxy-Authorization, X-CSRF-Token, X-Api-Key, whatever a client invents) never reaches the log;
 * Referer is left out as it can carry an OAuth code.
 */
export const LOGGED_HEADERS = [
  'host',
  'user-agent',
  'accept',
  'accept-encoding',
  'accept-language',
  'content-type',
  'content-length',
  'origin',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-real-ip',
  'forwarded',
  'docker-distribution-api-version',
] as const;

export function loggableHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name of LOGGED_HEADERS) {
    const v = headers[name];
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/**
 * The service logger. Without a destination it writes to stdout asynchronously (buffered), so a slow
 * log consumer does not stall token requests; `flush()` runs at shutdown.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const dest = destination ?? pino.destination({ dest: 1, sync: false });
  return pino({ level, base: { svc: 'berth' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, dest as never);
}

/**
 * A logger for audit events with fixed, secret-free fields (account, scopes, rule, address), sharing
 * the service logger's level and destination but skipping the redaction pass, which costs more
 * than the rest of a log line on the token endpoint's hot path.
 */
export function createAuditLogger(log: Logger): Logger {
  const stream = (log as unknown as Record<symbol, NodeJS.WritableStream>)[pino.symbols.streamSym];
  return pino({ level: log.level, base: { svc: 'berth' } }, stream as never);
}
