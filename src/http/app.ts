import { METHODS, type IncomingMessage } from 'node:http';
import Koa from 'koa';
import Router from '@koa/router';
import type { Logger } from 'pino';
import { HttpError, sendError, unavailable } from './errors.js';
import { sendPage } from './web/html.js';
import { errorPage } from './web/pages.js';
import { StoreUnavailableError } from '../store/store.js';
import { AuthenticationError } from '../model/principal.js';
import { clientResolver, type ClientInfo } from './client-ip.js';
import { loggableHeaders } from '../log.js';

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
  /** The token endpoint's paths: registry clients read their errors, and `front` answers their GETs. */
  tokenPaths?: ReadonlySet<string>;
  /** Names the service on error pages. */
  appTitle?: string;
}

/** Who reads an error: registry clients and scripts (`{"errors":[…]}`), OAuth device clients, or people. */
type ErrorFormat = 'registry' | 'oauth' | 'page';

/** A path as the router matches it: case-blind, one optional trailing slash. */
const routeKey = (path: string) => path.toLowerCase().replace(/(.)\/$/, '$1');

/**
 * The format of errors on a path, by path family: JSON where the answers are JSON, a page where a
 * browser asks. `tokenKeys` are the token endpoint's paths as routeKey gives them.
 */
function errorFormat(path: string, tokenKeys: ReadonlySet<string> = new Set()): ErrorFormat {
  const p = routeKey(path);
  if (tokenKeys.has(p)) return 'registry';
  if (p === '/device/code' || p === '/device/token') return 'oauth';
  if (p === '/api' || p.startsWith('/api/') || p === '/healthz' || p === '/readyz' || p === '/metrics' || p.startsWith('/.well-known/')) return 'registry';
  return 'page';
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

/** Answers an error in the format its caller reads (see errorFormat). */
function answerError(ctx: Koa.Context, err: HttpError, format: ErrorFormat, appTitle: string): void {
  if (format === 'registry') return sendError(ctx, err);
  for (const [k, v] of Object.entries(err.headers)) ctx.set(k, v);
  if (format === 'oauth') {
    // RFC 6749 §5.2 error codes; the HTTP status stays what the failure is.
    ctx.status = err.status;
    ctx.type = 'application/json';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { error: err.status === 503 ? 'temporarily_unavailable' : err.status >= 500 ? 'server_error' : 'invalid_request', error_description: err.message };
    return;
  }
  sendPage(ctx, err.status, errorPage({ appTitle, registryHost: '' }, err.status, PAGE_TITLES[err.status] ?? 'Something went wrong', err.status >= 500 && err.status !== 503 ? 'Berth could not answer this request.' : err.message));
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
  const tokenKeys = new Set([...(opts.tokenPaths ?? [])].map(routeKey));
  const appTitle = opts.appTitle ?? 'Berth';
  // Every method Node's parser accepts counts as known, so a COPY or PROPFIND gets the 405 a PUT
  // gets (with Allow) instead of the router's plain-text 501.
  const router = new Router({ methods: [...METHODS] });
  app.use(async (ctx, next) => {
    const format = errorFormat(ctx.path, tokenKeys);
    const answer = (err: HttpError) => answerError(ctx, err, format, appTitle);
    try {
      if (ctx.querystring.length > MAX_QUERY_LENGTH) throw new HttpError(414, 'INVALID_REQUEST', `query string longer than ${MAX_QUERY_LENGTH} bytes`);
      await next();
      // The router's Allow (on 405 and OPTIONS) cannot know the GETs `front` answers on the token paths.
      if (ctx.response.get('Allow') && ctx.method !== 'GET' && tokenKeys.has(routeKey(ctx.path))) ctx.set('Allow', [...new Set([...ctx.response.get('Allow').split(/,\s*/), 'GET'])].join(', '));
      // Nothing answered: no route for the path (404), or none for the method (the router's 405).
      if (ctx.body == null && ctx.status === 404) return answer(new HttpError(404, 'NOT_FOUND', 'There is nothing at this address.'));
      if (ctx.body == null && ctx.status === 405) return answer(new HttpError(405, 'UNSUPPORTED', `${ctx.method} is not allowed here`, { Allow: ctx.response.get('Allow') }));
    } catch (e) {
      const err = e as { status?: number; expose?: boolean; message?: string };
      if (e instanceof HttpError) return answer(e);
      // Any route that checks credentials and lets the refusal through answers 401, not 500.
      if (e instanceof AuthenticationError) return answer(new HttpError(401, 'UNAUTHORIZED', e.message));
      if (e instanceof StoreUnavailableError) {
        opts.onStoreError?.();
        opts.log.warn({ path: ctx.path, err: e.message }, 'store unavailable');
        return answer(unavailable());
      }
      if (typeof err.status === 'number' && err.status >= 400 && err.status < 500) {
        const code = err.status === 413 ? 'TOO_LARGE' : err.status === 415 ? 'UNSUPPORTED' : 'INVALID_REQUEST';
        return answer(new HttpError(err.status, code, err.expose && err.message ? err.message : 'invalid request'));
      }
      opts.log.error({ err: { message: err.message, stack: (e as Error).stack }, path: ctx.path }, 'unhandled error');
      answer(new HttpError(500, 'INTERNAL', 'internal error'));
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
