import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import type { Logger } from 'pino';
import type { Acl } from '../../policy/acl.js';
import { Credentials } from '../../identity/credentials.js';
import { AuthenticationError, type Principal } from '../../model/principal.js';
import { RateLimitedError } from '../../security/auth-limiter.js';
import { StoreUnavailableError } from '../../store/store.js';
import type { RegistryTokenSigner, SignedToken } from '../../tokens/registry-jwt.js';
import { loggableUsername } from '../../log.js';
import { badRequest, HttpError, httpErrorOf, internalError, MAX_QUERY_LENGTH, registryErrorJson, uriTooLong } from '../errors.js';
import { authorize, type AuthorizedDecision } from './authorize.js';
import { isForm, readForm } from './form.js';
import { parseGetRequest, parsePostRequest, type TokenRequest } from './request.js';
import { TokenReuse, type ReusableAnswer } from './reuse.js';
import { formatScope, getBody, JSON_TYPE, postBody, type AccessEntry } from './wire.js';
import { routeKey } from '../route-key.js';

/**
 * How a token request is decided, part 1 of 2 (part 2 is src/policy/acl.ts). Every token request —
 * GET or POST, password, refresh or anonymous, reused or fresh — runs down STEPS below, on node:http
 * ahead of Koa (Koa serves the pages and the JSON API only):
 *
 *   receive       method, query length, the POST form (form.ts)          405 / 414 / 413 / 415 / 400
 *   reuse         a GET repeating an earlier one byte for byte gets the same answer (reuse.ts)
 *   parse         query + Basic, or the form → TokenRequest (request.ts)  400
 *   service       the `service` the token is for must be configured        400
 *   authenticate  one grant handler per grant type, each through the credential gate
 *                 (src/identity/credentials.ts)                           401 / 429 / 503
 *   authorize     the ACL per scope, narrowed by a PAT's or robot's restriction (authorize.ts)
 *   sign          the registry JWT; a refresh token when asked for and allowed
 *   remember      a GET answered without a refresh token is kept for its repeats (reuse.ts)
 *   respond       the GET or POST body (wire.ts), the audit line, the metrics
 *
 * A failure anywhere is answered by fail(): domain errors are mapped once (httpErrorOf in
 * ../errors.ts) and written in the registry's error format, which every token client reads.
 */
export interface TokenPipelineDeps {
  /** Request paths of the token endpoint (`/auth`, `/auth/token`), as routeKey() gives them. */
  paths: ReadonlySet<string>;
  services: ReadonlySet<string> | null;
  credentials: Credentials;
  acl: Acl;
  signer: RegistryTokenSigner;
  realm: string;
  reuse: TokenReuse;
  /** The client address (src/http/client-ip.ts, trusted proxies), the one Koa's ctx.ip gives too. */
  clientIp: (req: IncomingMessage) => string;
  log: Logger;
  /** Audit lines: fixed fields, no secrets by construction, so no redaction pass on the hot path. */
  audit: Logger;
  /** Send Strict-Transport-Security, as the Koa app does on every other answer. */
  hsts?: boolean;
  onOutcome?: (o: TokenOutcome) => void;
}

export interface TokenOutcome {
  outcome: 'granted' | 'partial' | 'denied' | 'bad_request' | 'unauthorized' | 'unavailable' | 'rate_limited';
  kind: Principal['kind'] | 'unknown';
  grant: TokenRequest['grantType'] | 'unknown';
  seconds: number;
  /** Answered from the reuse cache. */
  reused?: boolean;
}

/** One token request on its way down the steps. A class, so that V8 gives every request one shape. */
class Exchange {
  /** Set by the step that wrote the answer; the steps after it do not run. */
  answered = false;
  method: 'GET' | 'POST' = 'GET';
  /** The raw query string (GET), without `?` and fragment. */
  query = '';
  authorization = '';
  form: Record<string, string | string[] | undefined> | null = null;
  /** The reuse key of a GET, computed before authentication (so a revocation in between wins). */
  reuseKey: string | null = null;
  request: TokenRequest | null = null;
  principal: Principal | null = null;
  decisions: AuthorizedDecision[] = [];
  access: AccessEntry[] = [];
  signed: SignedToken | null = null;
  refreshToken: string | undefined = undefined;
  outcome: 'granted' | 'partial' | 'denied' = 'granted';

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly deps: TokenPipelineDeps,
    readonly ip: string,
    readonly started: bigint,
  ) {}
}

type Step = (x: Exchange) => void | Promise<void>;

// --- the steps, in order ---------------------------------------------------------------------

const ALLOW = 'POST, GET';

/** Method, query length and (POST) the form. */
function receive(x: Exchange): void | Promise<void> {
  const { req } = x;
  const url = req.url ?? '';
  const q = url.indexOf('?');
  if (q >= 0) {
    // A fragment is not part of the query (a client that sends one gets it ignored, as URL parsers do).
    const hash = url.indexOf('#', q);
    x.query = hash < 0 ? url.slice(q + 1) : url.slice(q + 1, hash);
    if (x.query.length > MAX_QUERY_LENGTH) throw uriTooLong();
  }
  x.authorization = req.headers.authorization ?? '';
  if (req.method === 'GET') return;
  if (req.method === 'POST') {
    x.method = 'POST';
    if (!isForm(req)) {
      req.resume();
      throw badRequest('POST needs an application/x-www-form-urlencoded body');
    }
    return readForm(req).then((f) => {
      x.form = f;
    });
  }
  req.resume();
  if (req.method === 'OPTIONS') {
    const h: OutgoingHttpHeaders = { Allow: ALLOW, 'Content-Length': 0 };
    if (x.deps.hsts) h['Strict-Transport-Security'] = 'max-age=63072000';
    x.res.writeHead(200, h);
    x.res.end();
    x.answered = true;
    return;
  }
  throw new HttpError(405, 'UNSUPPORTED', `${String(req.method).slice(0, 20)} is not allowed here`, { Allow: ALLOW });
}

/** A GET that repeats an earlier granted one (same query, credentials, client address) within the window. */
function reuse(x: Exchange): void {
  if (x.method !== 'GET') return;
  const r = x.deps.reuse;
  x.reuseKey = r.keyFor(x.query, x.authorization, x.ip);
  const now = Math.floor(Date.now() / 1000);
  const hit = r.get(x.reuseKey, now);
  if (!hit) return;
  send(x, 200, TokenReuse.body(hit, now));
  x.answered = true;
  report(x, hit.outcome, hit.kind as Principal['kind'], x.authorization ? 'password' : 'none', true);
  // The grant behind this token was audited when it was issued; a repeat is not a new decision,
  // so it is logged only at debug (the metrics still count it).
  const audit = x.deps.audit;
  if (audit.isLevelEnabled('debug')) audit.debug({ audit: 'token', account: hit.account, kind: hit.kind, ip: x.ip, reused: true, decisions: auditSummary(hit.decisions) }, 'token reused');
}

function parse(x: Exchange): void {
  x.request = x.method === 'POST' ? parsePostRequest(x.form!) : parseGetRequest(parseQuery(x.query), x.authorization);
}

function service(x: Exchange): void {
  const s = x.request!.service;
  const services = x.deps.services;
  if (!s) throw badRequest('missing service parameter');
  if (services && !services.has(s)) throw badRequest(`unknown service ${JSON.stringify(s.slice(0, 100))}`);
}

/** One handler per grant type; each goes through the credential gate, which applies lockouts and counts failures. */
const GRANTS: Record<TokenRequest['grantType'], (r: TokenRequest, c: Credentials, ip: string) => Principal | Promise<Principal>> = {
  none: (_r, c) => c.anonymous(),
  password: (r, c, ip) => c.password(r.username, r.password, ip),
  refresh_token: (r, c, ip) => c.refresh(r.refreshToken, r.service, ip),
};

function authenticate(x: Exchange): void | Promise<void> {
  const p = GRANTS[x.request!.grantType](x.request!, x.deps.credentials, x.ip);
  if (p instanceof Promise) {
    return p.then((principal) => {
      x.principal = principal;
    });
  }
  x.principal = p;
}

function authorizeStep(x: Exchange): void {
  const { decisions, access } = authorize(x.request!, x.principal!, x.deps.acl, x.ip);
  x.decisions = decisions;
  x.access = access;
  let asked = 0;
  let got = 0;
  for (const d of decisions) {
    asked += d.scope.actions.length;
    got += d.granted.length;
  }
  x.outcome = asked === got ? 'granted' : got === 0 ? 'denied' : 'partial';
}

function sign(x: Exchange): Promise<void> {
  const principal = x.principal!;
  const request = x.request!;
  const signed = x.deps.signer.signAsync({ sub: principal.account, aud: request.service, access: x.access }, undefined, principal.tokenTTLSeconds);
  // A CI job's ID token lives minutes: it must not turn into a 30-day refresh token.
  const refresh = request.offline && Credentials.mayRefresh(principal) ? x.deps.credentials.issueRefresh(principal, request.service) : undefined;
  return Promise.all([signed, refresh]).then(([s, t]) => {
    x.signed = s;
    x.refreshToken = t;
  });
}

const NO_DECISIONS: AuthorizedDecision[] = [];

/** The one reuse rule: a GET answered without a refresh token (a refresh token is never handed out twice). */
function remember(x: Exchange): void {
  if (x.reuseKey === null || x.refreshToken !== undefined) return;
  const principal = x.principal!;
  const signed = x.signed!;
  const reusableUntil = principal.reusableUntil === undefined ? Infinity : Math.floor(principal.reusableUntil / 1000);
  const answer: ReusableAnswer = {
    header: signed.header,
    rest: signed.rest,
    issuedAt: signed.issuedAt,
    issuedAtText: signed.issuedAtText,
    expiresAt: signed.issuedAt + signed.expiresIn,
    reusableUntil,
    verifiedAt: principal.verifiedAt,
    account: principal.account,
    kind: principal.kind,
    // Only the debug audit line of a reuse reads them: not kept otherwise (4,096 entries of parsed
    // scopes and decisions were old-generation garbage when every request names a new repository).
    decisions: x.deps.audit.isLevelEnabled('debug') ? x.decisions : NO_DECISIONS,
    outcome: x.outcome,
  };
  // Stored under the key computed before authentication: dropped if a revocation came in between.
  x.deps.reuse.set(x.reuseKey, answer);
}

function respond(x: Exchange): void {
  const signed = x.signed!;
  const issued = { token: signed.token, expiresIn: signed.expiresIn, issuedAtText: signed.issuedAtText, refreshToken: x.refreshToken };
  send(x, 200, x.method === 'POST' ? postBody(issued, x.access) : getBody(issued));
  x.answered = true;
  const principal = x.principal!;
  report(x, x.outcome, principal.kind, x.request!.grantType);
  const audit = x.deps.audit;
  if (audit.isLevelEnabled('info')) {
    audit.info({ audit: 'token', account: principal.account, kind: principal.kind, grant: x.request!.grantType, ip: x.ip, service: x.request!.service, decisions: auditSummary(x.decisions) }, 'token issued');
  }
}

const STEPS: readonly Step[] = [receive, reuse, parse, service, authenticate, authorizeStep, sign, remember, respond];

// --- running them --------------------------------------------------------------------------


/**
 * The node:http handler: answers every request to a token path and returns true, or returns false
 * for any other path (Koa's). Runs synchronously as far as it can: a reused answer is written
 * before this returns, without a promise.
 */
export function tokenPipeline(deps: TokenPipelineDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  return function handleTokenRequest(req, res) {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (!deps.paths.has(path) && !deps.paths.has(routeKey(path))) return false;
    const x = new Exchange(req, res, deps, deps.clientIp(req), process.hrtime.bigint());
    try {
      const pending = runFrom(0, x);
      if (pending) pending.catch((e: unknown) => fail(x, e));
    } catch (e) {
      fail(x, e);
    }
    return true;
  };
}

function runFrom(i: number, x: Exchange): void | Promise<void> {
  for (; i < STEPS.length && !x.answered; i++) {
    const pending = STEPS[i]!(x);
    if (pending) {
      const next = i + 1;
      return pending.then(() => runFrom(next, x));
    }
  }
}

// --- answering ----------------------------------------------------------------------------

function send(x: Exchange, status: number, body: string, extra?: Record<string, string>): void {
  const h: OutgoingHttpHeaders = { 'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' };
  if (extra) Object.assign(h, extra);
  if (x.deps.hsts) h['Strict-Transport-Security'] = 'max-age=63072000';
  x.res.writeHead(status, h);
  x.res.end(x.req.method === 'HEAD' ? undefined : body);
}

function report(x: Exchange, outcome: TokenOutcome['outcome'], kind: TokenOutcome['kind'], grant: TokenOutcome['grant'], reused?: boolean): void {
  const o: TokenOutcome = { outcome, kind, grant, seconds: Number(process.hrtime.bigint() - x.started) / 1e9 };
  if (reused) o.reused = true;
  x.deps.onOutcome?.(o);
}

/** Per scope: what was granted and which rule decided; when a token's or robot's restriction took actions away, that says so. */
function auditSummary(decisions: readonly AuthorizedDecision[]): unknown[] {
  return decisions.map((d) => ({
    scope: formatScope(d.scope),
    granted: d.granted,
    rule: d.rule,
    ...(d.comment ? { comment: d.comment } : {}),
    ...(d.restrictedBy ? { restrictedBy: d.restrictedBy, aclGranted: d.aclGranted } : {}),
  }));
}

const OUTCOME_OF_STATUS: Record<number, TokenOutcome['outcome']> = { 401: 'unauthorized', 429: 'rate_limited', 503: 'unavailable' };

/** Every failure, of every step: one mapping (httpErrorOf), one format (the registry's), one log line. */
function fail(x: Exchange, e: unknown): void {
  const { deps, request } = x;
  let err = httpErrorOf(e);
  if (err === null) {
    deps.log.error({ err: { message: (e as Error).message, stack: (e as Error).stack } }, 'token request failed');
    err = internalError();
  } else {
    // A method the endpoint does not take is not a token request: not counted as one.
    if (err.status !== 405) report(x, OUTCOME_OF_STATUS[err.status] ?? 'bad_request', x.principal?.kind ?? 'unknown', request?.grantType ?? 'unknown');
    if (e instanceof AuthenticationError) {
      deps.log.info({ audit: 'token', outcome: 'unauthorized', user: loggableUsername(request?.username), grant: request?.grantType, ip: x.ip, reason: err.message }, 'authentication failed');
      err = new HttpError(401, err.code, err.message, { 'WWW-Authenticate': `Basic realm=${JSON.stringify(deps.realm)}` });
    } else if (e instanceof RateLimitedError) {
      deps.log.warn({ audit: 'token', outcome: 'rate_limited', user: loggableUsername(request?.username), ip: x.ip }, 'locked out after repeated failures');
    } else if (e instanceof StoreUnavailableError) {
      deps.log.warn({ err: e.message }, 'store unavailable during token request');
    } else {
      deps.log.info({ audit: 'token', outcome: 'bad_request', ip: x.ip, reason: err.message }, 'token request refused');
    }
  }
  if (x.res.headersSent) {
    x.res.destroy();
    return;
  }
  send(x, err.status, registryErrorJson(err), err.headers);
}
