import type { Context } from 'koa';
import { AuthenticationError } from '../model/principal.js';
import { RateLimitedError } from '../security/auth-limiter.js';
import { StoreUnavailableError } from '../store/store.js';
import { FederationUnavailableError } from '../federation/verifier.js';
import { RobotError } from '../robots/robots.js';
import { errorBody } from './token/wire.js';
import { routeKey } from './route-key.js';
import { sendPage } from './web/html.js';
import { errorPage } from './web/pages.js';

/**
 * A failure as HTTP sees it: status, a registry-style code, a message the caller may read, headers.
 * Domain modules never throw it (they throw their own errors, which httpErrorOf() maps); it is for
 * what only HTTP knows (a bad parameter, a missing route) and is what the translators below answer.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const badRequest = (message: string) => new HttpError(400, 'INVALID_REQUEST', message);
export const unavailable = (message = 'the credential store is unavailable; try again shortly', retryAfterSeconds = 1) => new HttpError(503, 'UNAVAILABLE', message, { 'Retry-After': String(retryAfterSeconds) });
/** The longest query string any route reads; longer is a 414, in the route's format. */
export const MAX_QUERY_LENGTH = 8192;
export const uriTooLong = () => new HttpError(414, 'INVALID_REQUEST', `query string longer than ${MAX_QUERY_LENGTH} bytes`);
export const internalError = () => new HttpError(500, 'INTERNAL', 'internal error');

const ROBOT_STATUS = { invalid: [400, 'INVALID_REQUEST'], not_found: [404, 'NOT_FOUND'], conflict: [409, 'CONFLICT'] } as const;

/**
 * The one mapping from domain errors to HTTP. Null for anything unknown: a bug, which the caller
 * logs and answers as internalError() in its format.
 */
export function httpErrorOf(e: unknown): HttpError | null {
  if (e instanceof HttpError) return e;
  if (e instanceof AuthenticationError) return new HttpError(401, 'UNAUTHORIZED', e.message);
  if (e instanceof RateLimitedError) return new HttpError(429, 'TOOMANYREQUESTS', e.message, { 'Retry-After': String(e.retryAfterSeconds) });
  if (e instanceof StoreUnavailableError) return unavailable();
  if (e instanceof FederationUnavailableError) return unavailable(`${e.message}; try again shortly`, e.retryAfterSeconds);
  if (e instanceof RobotError) {
    const [status, code] = ROBOT_STATUS[e.reason];
    return new HttpError(status, code, e.message);
  }
  return null;
}

/** Who reads an error, chosen by the route that answers: registry clients and scripts, OAuth device clients, people. */
export type ErrorFormat = 'registry' | 'oauth' | 'page';

/**
 * The error format each mounted route declared, per router: a route says who reads its errors where it
 * is mounted (`declareErrorFormat(router, '/api/', 'registry')`), so the app's error handler needs no
 * list of paths. A path ending in `/` covers everything under it. Undeclared paths are pages.
 */
const declared = new WeakMap<object, { exact: Map<string, ErrorFormat>; under: [string, ErrorFormat][] }>();

export function declareErrorFormat(router: object, path: string, format: ErrorFormat): void {
  let d = declared.get(router);
  if (!d) declared.set(router, (d = { exact: new Map(), under: [] }));
  if (path.endsWith('/')) {
    d.under.push([path.toLowerCase(), format]);
    d.exact.set(routeKey(path), format);
  } else d.exact.set(routeKey(path), format);
}

export function errorFormatOf(router: object, path: string): ErrorFormat {
  const d = declared.get(router);
  if (!d) return 'page';
  const key = routeKey(path);
  const exact = d.exact.get(key);
  if (exact) return exact;
  for (const [prefix, format] of d.under) if (key.startsWith(prefix)) return format;
  return 'page';
}

/** Translator 1, registry JSON (Docker's token spec, distribution's API): `{"errors":[{"code","message"}]}`. */
export function registryErrorJson(err: HttpError): string {
  return JSON.stringify(errorBody(err.code, err.message));
}

export function sendError(ctx: Context, err: HttpError): void {
  ctx.status = err.status;
  for (const [k, v] of Object.entries(err.headers)) ctx.set(k, v);
  ctx.type = 'application/json';
  ctx.body = errorBody(err.code, err.message);
}

/** Translator 2, OAuth 2.0 / RFC 8628 JSON (§5.2 error codes); the HTTP status stays what the failure is. */
export function sendOAuthError(ctx: Context, err: HttpError): void {
  for (const [k, v] of Object.entries(err.headers)) ctx.set(k, v);
  ctx.status = err.status;
  ctx.type = 'application/json';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: err.status === 503 ? 'temporarily_unavailable' : err.status >= 500 ? 'server_error' : 'invalid_request', error_description: err.message };
}

const PAGE_TITLES: Record<number, string> = {
  400: 'Bad request',
  401: 'Not signed in',
  403: 'Not allowed',
  404: 'Not found',
  405: 'Method not allowed',
  413: 'Request too large',
  414: 'Address too long',
  415: 'Unsupported request',
  429: 'Too many requests',
  503: 'Temporarily unavailable',
};

/** Translator 3, an HTML page; a bug's message is never shown. */
export function sendErrorPage(ctx: Context, err: HttpError, appTitle: string): void {
  for (const [k, v] of Object.entries(err.headers)) ctx.set(k, v);
  sendPage(ctx, err.status, errorPage({ appTitle, registryHost: '' }, err.status, PAGE_TITLES[err.status] ?? 'Something went wrong', err.status >= 500 && err.status !== 503 ? 'Berth could not answer this request.' : err.message));
}

/** The translator for a format. */
export function answerError(ctx: Context, err: HttpError, format: ErrorFormat, appTitle: string): void {
  if (format === 'registry') return sendError(ctx, err);
  if (format === 'oauth') return sendOAuthError(ctx, err);
  sendErrorPage(ctx, err, appTitle);
}
