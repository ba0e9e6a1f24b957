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

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { svc: 'berth' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination as never);
}
