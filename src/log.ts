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
