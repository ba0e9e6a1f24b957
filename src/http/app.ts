import Koa from 'koa';
import Router from '@koa/router';
import type { Logger } from 'pino';
import { HttpError, sendError, unavailable } from './errors.js';
import { StoreUnavailableError } from '../store/store.js';
import { AuthenticationError } from '../identity/principal.js';
import { loggableHeaders } from '../log.js';

const MAX_QUERY_LENGTH = 8192;

export interface AppOptions {
  log: Logger;
  trustProxy: boolean;
  realIPHeader?: string | undefined;
  onStoreError?: () => void;
  /** Runs before everything else (the token endpoint's GETs), handling its own errors. */
  front?: Koa.Middleware;
}

/**
 * The Koa application shell: error containment (no stack traces or 500 bodies for bad input) and
 * proxy settings. Routes are mounted by src/server.ts.
 */
export function createApp(opts: AppOptions): { app: Koa; router: Router } {
  // Behind a proxy, only the address the nearest proxy appended counts: the leftmost
  // X-Forwarded-For entries are whatever the client wrote, and would get past `ip` rules and the
  // per-address lockout.
  const app = new Koa({ proxy: opts.trustProxy, maxIpsCount: 1, ...(opts.realIPHeader ? { proxyIpHeader: opts.realIPHeader } : {}) });
  app.silent = true;
  if (opts.front) app.use(opts.front);
  app.use(async (ctx, next) => {
    try {
      if (ctx.querystring.length > MAX_QUERY_LENGTH) throw new HttpError(414, 'INVALID_REQUEST', `query string longer than ${MAX_QUERY_LENGTH} bytes`);
      await next();
    } catch (e) {
      const err = e as { status?: number; expose?: boolean; message?: string };
      if (e instanceof HttpError) return sendError(ctx, e);
      // Any route that checks credentials and lets the refusal through answers 401, not 500.
      if (e instanceof AuthenticationError) return sendError(ctx, new HttpError(401, 'UNAUTHORIZED', e.message));
      if (e instanceof StoreUnavailableError) {
        opts.onStoreError?.();
        opts.log.warn({ path: ctx.path, err: e.message }, 'store unavailable');
        return sendError(ctx, unavailable());
      }
      if (typeof err.status === 'number' && err.status >= 400 && err.status < 500 && ctx.path.startsWith('/device/')) {
        // OAuth clients of the device flow read RFC 6749 errors, not the registry's shape.
        ctx.status = err.status === 413 ? 413 : 400;
        ctx.body = { error: 'invalid_request', error_description: err.expose && err.message ? err.message : 'invalid request body' };
        return;
      }
      if (typeof err.status === 'number' && err.status >= 400 && err.status < 500) {
        const code = err.status === 413 ? 'TOO_LARGE' : err.status === 415 ? 'UNSUPPORTED' : 'INVALID_REQUEST';
        return sendError(ctx, new HttpError(err.status, code, err.expose && err.message ? err.message : 'invalid request'));
      }
      opts.log.error({ err: { message: err.message, stack: (e as Error).stack }, path: ctx.path }, 'unhandled error');
      sendError(ctx, new HttpError(500, 'INTERNAL', 'internal error'));
    }
  });
  // Request log: path only (query strings carry OAuth codes), headers only at trace level and only
  // those on the allow-list (LOGGED_HEADERS): a deny-list would miss the next credential header.
  if (opts.log.isLevelEnabled('debug')) {
    app.use(async (ctx, next) => {
      const started = process.hrtime.bigint();
      try {
        await next();
      } finally {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        if (opts.log.isLevelEnabled('trace')) opts.log.trace({ req: { method: ctx.method, path: ctx.path, headers: loggableHeaders(ctx.headers) }, status: ctx.status, ms }, 'request');
        else opts.log.debug({ method: ctx.method, path: ctx.path, status: ctx.status, ms, ip: ctx.ip }, 'request');
      }
    });
  }
  const router = new Router();
  return { app, router };
}
