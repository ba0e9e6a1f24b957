import { METHODS, type IncomingMessage } from 'node:http';
import Koa from 'koa';
import Router from '@koa/router';
import type { Logger } from 'pino';
import { answerError, errorFormatOf, HttpError, httpErrorOf, internalError, MAX_QUERY_LENGTH, uriTooLong } from './errors.js';
import { StoreUnavailableError } from '../store/store.js';
import { clientResolver, type ClientInfo } from './client-ip.js';
import { loggableHeaders } from '../log.js';

export interface AppOptions {
  log: Logger;
  trustProxy?: boolean | undefined;
  trustedProxies?: readonly string[] | undefined;
  realIPHeader?: string | undefined;
  /** The client resolver the token pipeline uses too; built from the options above when absent. */
  resolveClient?: (req: IncomingMessage) => ClientInfo;
  /** Send Strict-Transport-Security (Berth serves, or is published, over https). */
  hsts?: boolean;
  onStoreError?: () => void;
  /** Names the service on error pages. */
  appTitle?: string;
}

/** A path as the router matches it: case-blind, one optional trailing slash. */

/**
 * The Koa application shell: error containment (no stack traces or 500 bodies for bad input) and
 * proxy settings. Routes are mounted by src/server.ts.
 */
export function createApp(opts: AppOptions): { app: Koa; router: Router } {
  // Koa's own proxy support trusts any peer and reads the client-written end of X-Forwarded-Proto;
  // ctx.ip and ctx.protocol (hence ctx.secure and Secure cookies) come from client-ip.ts instead,
  // the same function the token pipeline uses, so the two can never disagree.
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
  const appTitle = opts.appTitle ?? 'Berth';
  // Every method Node's parser accepts counts as known, so a COPY or PROPFIND gets the 405 a PUT
  // gets (with Allow) instead of the router's plain-text 501.
  const router = new Router({ methods: [...METHODS] });
  app.use(async (ctx, next) => {
    // Each route declared who reads its errors where it was mounted (declareErrorFormat).
    const format = errorFormatOf(router, ctx.path);
    const answer = (err: HttpError) => answerError(ctx, err, format, appTitle);
    try {
      if (ctx.querystring.length > MAX_QUERY_LENGTH) throw uriTooLong();
      await next();
      // Nothing answered: no route for the path (404), or none for the method (the router's 405).
      if (ctx.body == null && ctx.status === 404) return answer(new HttpError(404, 'NOT_FOUND', 'There is nothing at this address.'));
      if (ctx.body == null && ctx.status === 405) return answer(new HttpError(405, 'UNSUPPORTED', `${ctx.method} is not allowed here`, { Allow: ctx.response.get('Allow') }));
    } catch (e) {
      const err = e as { status?: number; expose?: boolean; message?: string };
      // Domain errors (a refused credential, a lockout, the store down, a robot conflict…) are
      // mapped in one place; any route that lets one through answers it, not a 500.
      const mapped = httpErrorOf(e);
      if (mapped) {
        if (e instanceof StoreUnavailableError) {
          opts.onStoreError?.();
          opts.log.warn({ path: ctx.path, err: e.message }, 'store unavailable');
        }
        return answer(mapped);
      }
      if (typeof err.status === 'number' && err.status >= 400 && err.status < 500) {
        const code = err.status === 413 ? 'TOO_LARGE' : err.status === 415 ? 'UNSUPPORTED' : 'INVALID_REQUEST';
        return answer(new HttpError(err.status, code, err.expose && err.message ? err.message : 'invalid request'));
      }
      opts.log.error({ err: { message: err.message, stack: (e as Error).stack }, path: ctx.path }, 'unhandled error');
      answer(internalError());
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
  return { app, router };
}
