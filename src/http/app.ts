import type { IncomingMessage } from 'node:http';
import Koa from 'koa';
import Router from '@koa/router';
import type { Logger } from 'pino';
import { HttpError, sendError, unavailable } from './errors.js';
import { StoreUnavailableError } from '../store/store.js';
import { AuthenticationError } from '../identity/principal.js';
import { clientResolver, type ClientInfo } from './client-ip.js';

const MAX_QUERY_LENGTH = 8192;

export interface AppOptions {
  log: Logger;
  trustProxy?: boolean | undefined;
  trustedProxies?: readonly string[] | undefined;
  realIPHeader?: string | undefined;
  /** The client resolver the token fast path uses too; built from the options above when absent. */
  resolveClient?: (req: IncomingMessage) => ClientInfo;
  /** Send Strict-Transport-Security (Berth serves, or is published, over https). */
  hsts?: boolean;
  onStoreError?: () => void;
  /** Runs before everything else (the token endpoint's GETs), handling its own errors. */
  front?: Koa.Middleware;
}

/**
 * The Koa application shell: error containment (no stack traces or 500 bodies for bad input) and
 * proxy settings. Routes are mounted by src/server.ts.
 */
export function createApp(opts: AppOptions): { app: Koa; router: Router } {
  // Koa's own proxy support trusts any peer and reads the client-written end of X-Forwarded-Proto;
  // ctx.ip and ctx.protocol (hence ctx.secure and Secure cookies) come from client-ip.ts instead,
  // the same function the token fast path uses, so the two can never disagree.
  const resolve = opts.resolveClient ?? clientResolver({ trustProxy: opts.trustProxy, trustedProxies: opts.trustedProxies, realIPHeader: opts.realIPHeader });
  const app = new Koa({ proxy: false });
  Object.defineProperties(app.request, {
    ip: { configurable: true, get(this: Koa.Request) { return resolve(this.req).ip; } },
    protocol: { configurable: true, get(this: Koa.Request) { return resolve(this.req).protocol; } },
  });
  app.silent = true;
  if (opts.hsts) {
    app.use((ctx, next) => {
      // Two years, the preload list's minimum; subdomains are not Berth's to speak for.
      ctx.set('Strict-Transport-Security', 'max-age=63072000');
      return next();
    });
  }
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
  // Request log: path only (query strings carry OAuth codes), headers only at trace level, where
  // the logger's redaction removes Authorization and Cookie.
  if (opts.log.isLevelEnabled('debug')) {
    app.use(async (ctx, next) => {
      const started = process.hrtime.bigint();
      try {
        await next();
      } finally {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        if (opts.log.isLevelEnabled('trace')) opts.log.trace({ req: { method: ctx.method, path: ctx.path, headers: ctx.headers }, status: ctx.status, ms }, 'request');
        else opts.log.debug({ method: ctx.method, path: ctx.path, status: ctx.status, ms, ip: ctx.ip }, 'request');
      }
    });
  }
  const router = new Router();
  return { app, router };
}
