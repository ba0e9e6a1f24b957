import type { IncomingMessage } from 'node:http';
import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { Acl } from '../../policy/acl.js';
import { Credentials } from '../../identity/credentials.js';
import { AuthenticationError, type Principal } from '../../model/principal.js';
import type { RegistryTokenSigner } from '../../tokens/registry-jwt.js';
import { StoreUnavailableError } from '../../store/store.js';
import { formatScope } from '../../policy/scope.js';
import { badRequest, HttpError, sendError, unavailable } from '../errors.js';
import { MAX_QUERY_LENGTH, parseTokenRequest, type TokenRequest } from './request.js';
import { authenticate } from './authenticate.js';
import { authorize } from './authorize.js';
import { RateLimitedError } from '../../security/auth-limiter.js';
import { REUSE_KEY, type KeyedRequest, type TokenReuse } from './reuse.js';
import { loggableUsername } from '../../log.js';

/**
 * How a token request is decided, part 1 of 2 (part 2 is src/policy/acl.ts). The pipeline:
 *   1. parse      request.ts       GET + Basic or POST form → TokenRequest (400 on bad input)
 *   2. authn      authenticate.ts  credential → Principal (401 / 503)
 *   3. authz      authorize.ts     ACL per scope, narrowed by the credential's restriction
 *   4. issue      here             sign the registry JWT, maybe a refresh token, answer
 * An identical GET repeated within seconds (one docker push asks several times) never gets here:
 * fast-path.ts answers it from reuse.ts ahead of Koa; this pipeline stores the answers it reuses.
 */
export interface TokenEndpointDeps {
  services: ReadonlySet<string> | null;
  credentials: Credentials;
  acl: Acl;
  signer: RegistryTokenSigner;
  realm: string;
  reuse: TokenReuse;
  /** The client address, computed as fast-path.ts computes it (reuse keys must agree). */
  clientIp: (req: IncomingMessage) => string;
  log: Logger;
  /** Audit lines: fixed fields, no secrets by construction, so no redaction pass on the hot path. */
  audit: Logger;
  onOutcome?: (o: TokenOutcome) => void;
}

export interface TokenOutcome {
  outcome: 'granted' | 'partial' | 'denied' | 'bad_request' | 'unauthorized' | 'unavailable' | 'rate_limited';
  kind: Principal['kind'] | 'unknown';
  grant: TokenRequest['grantType'] | 'unknown';
  seconds: number;
  /** Answered from the reuse cache (fast-path.ts). */
  reused?: boolean;
}

function checkService(req: TokenRequest, services: ReadonlySet<string> | null): void {
  if (!req.service) throw badRequest('missing service parameter');
  if (services && !services.has(req.service)) throw badRequest(`unknown service ${JSON.stringify(req.service.slice(0, 100))}`);
}

export function tokenEndpoint(deps: TokenEndpointDeps) {
  const challenge = `Basic realm=${JSON.stringify(deps.realm)}`;

  return async function handleTokenRequest(ctx: Context): Promise<void> {
    const started = process.hrtime.bigint();
    let req: TokenRequest | undefined;
    let principal: Principal | undefined;
    const report = (outcome: TokenOutcome['outcome']) =>
      deps.onOutcome?.({ outcome, kind: principal?.kind ?? 'unknown', grant: req?.grantType ?? 'unknown', seconds: Number(process.hrtime.bigint() - started) / 1e9 });
    let reuseKey: string | null = null;
    const ip = deps.clientIp(ctx.req);
    try {
      if (ctx.querystring.length > MAX_QUERY_LENGTH) throw badRequest(`query string longer than ${MAX_QUERY_LENGTH} bytes`);
      // Repeats are answered by fast-path.ts before Koa; this one missed, so remember its answer
      // (under the key fast-path.ts computed, when it got that far).
      if (ctx.method === 'GET' && !ctx.querystring.includes('offline_token=true')) reuseKey = (ctx.req as KeyedRequest)[REUSE_KEY] ?? deps.reuse.keyFor(ctx.querystring, ctx.get('authorization'), ip);
      req = parseTokenRequest(ctx);
      checkService(req, deps.services);
      principal = await authenticate(req, deps.credentials, ip);
      const { decisions, access } = authorize(req, principal, deps.acl, ip);
      const signed = deps.signer.sign({ sub: principal.account, aud: req.service, access }, undefined, principal.tokenTTLSeconds);
      const issuedAt = new Date(signed.issuedAt * 1000).toISOString();
      let refreshToken: string | undefined;
      // A CI job's ID token lives minutes: it must not turn into a 30-day refresh token.
      if (req.offline && Credentials.mayRefresh(principal)) refreshToken = await deps.credentials.issueRefresh(principal, req.service);
      ctx.set('Cache-Control', 'no-store');
      if (req.method === 'POST') {
        ctx.body = {
          access_token: signed.token,
          token_type: 'Bearer',
          scope: access.filter((a) => a.actions.length).map((a) => formatScope({ type: a.type, name: a.name, actions: a.actions, ...(a.class ? { class: a.class } : {}) })).join(' '),
          expires_in: signed.expiresIn,
          issued_at: issuedAt,
          ...(refreshToken ? { refresh_token: refreshToken } : {}),
        };
      } else {
        ctx.body = { token: signed.token, access_token: signed.token, expires_in: signed.expiresIn, issued_at: issuedAt, ...(refreshToken ? { refresh_token: refreshToken } : {}) };
      }
      const asked = decisions.reduce((n, d) => n + d.scope.actions.length, 0);
      const got = decisions.reduce((n, d) => n + d.granted.length, 0);
      const outcome = asked === got ? 'granted' : got === 0 ? 'denied' : 'partial';
      report(outcome);
      const summary = decisions.map((d) => ({ scope: formatScope(d.scope), granted: d.granted, rule: d.rule, ...(d.comment ? { comment: d.comment } : {}) }));
      if (reuseKey && !refreshToken) {
        const reusableUntil = principal.reusableUntil === undefined ? Infinity : Math.floor(principal.reusableUntil / 1000);
        deps.reuse.set(reuseKey, { token: signed.token, issuedAt: signed.issuedAt, expiresAt: signed.issuedAt + signed.expiresIn, reusableUntil, verifiedAt: principal.verifiedAt, account: principal.account, kind: principal.kind, decisions: summary, outcome });
      }
      if (deps.audit.isLevelEnabled('info')) {
        deps.audit.info({ audit: 'token', account: principal.account, kind: principal.kind, grant: req.grantType, ip, service: req.service, decisions: summary }, 'token issued');
      }
    } catch (e) {
      if (e instanceof HttpError) {
        report(e.status === 503 ? 'unavailable' : 'bad_request');
        deps.log.info({ audit: 'token', outcome: 'bad_request', ip, reason: e.message }, 'token request refused');
        return sendError(ctx, e);
      }
      if (e instanceof AuthenticationError) {
        report('unauthorized');
        deps.log.info({ audit: 'token', outcome: 'unauthorized', user: loggableUsername(req?.username), grant: req?.grantType, ip, reason: e.message }, 'authentication failed');
        return sendError(ctx, new HttpError(401, 'UNAUTHORIZED', e.message, { 'WWW-Authenticate': challenge }));
      }
      if (e instanceof RateLimitedError) {
        report('rate_limited');
        deps.log.warn({ audit: 'token', outcome: 'rate_limited', user: loggableUsername(req?.username), ip }, 'locked out after repeated failures');
        return sendError(ctx, new HttpError(429, 'TOOMANYREQUESTS', e.message, { 'Retry-After': String(e.retryAfterSeconds) }));
      }
      if (e instanceof StoreUnavailableError) {
        report('unavailable');
        deps.log.warn({ err: e.message }, 'store unavailable during token request');
        return sendError(ctx, unavailable());
      }
      // GETs run ahead of the app's error middleware (one layer less on every pull), so a bug
      // still ends here as the registry's error shape, never a bare 500.
      deps.log.error({ err: { message: (e as Error).message, stack: (e as Error).stack } }, 'token request failed');
      return sendError(ctx, new HttpError(500, 'INTERNAL', 'internal error'));
    }
  };
}
