import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { TokenOutcome } from './index.js';
import { MAX_QUERY_LENGTH } from './request.js';
import { REUSE_KEY, TokenReuse, type KeyedRequest } from './reuse.js';

export interface RepeatDeps {
  /** Request paths of the token endpoint (`/auth`, `/auth/token`). */
  paths: ReadonlySet<string>;
  reuse: TokenReuse;
  clientIp: (req: IncomingMessage) => string;
  audit: Logger;
  onOutcome?: ((o: TokenOutcome) => void) | undefined;
}

/**
 * Answers a token GET that repeats an earlier one (reuse.ts) straight from node:http, ahead of Koa:
 * most token requests are such repeats (each blob and manifest request of a push asks again), and
 * on them Koa's context, delegates and respond() cost about as much as everything else together
 * (measured with `npm run bench`). Anything else — a miss, a POST, an odd URL — returns false and
 * goes through Koa and the full pipeline in index.ts, which computes the same key when it stores
 * an answer.
 */
export function repeatResponder(deps: RepeatDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  return function answerRepeat(req, res) {
    if (req.method !== 'GET') return false;
    const url = req.url ?? '';
    const q = url.indexOf('?');
    if (q < 0 || !deps.paths.has(url.slice(0, q))) return false;
    const query = url.slice(q + 1);
    // Koa's querystring drops a fragment; such a URL is left to Koa, which keys it as Koa reads it.
    if (query.length > MAX_QUERY_LENGTH || query.includes('#') || query.includes('offline_token=true')) return false;
    const started = process.hrtime.bigint();
    const now = Math.floor(Date.now() / 1000);
    const ip = deps.clientIp(req);
    const key = deps.reuse.keyFor(query, req.headers.authorization ?? '', ip);
    const hit = deps.reuse.get(key, now);
    if (!hit) {
      (req as KeyedRequest)[REUSE_KEY] = key;
      return false;
    }
    const body = TokenReuse.body(hit, now);
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
    res.end(body);
    deps.onOutcome?.({ outcome: hit.outcome, kind: hit.kind as TokenOutcome['kind'], grant: 'password', seconds: Number(process.hrtime.bigint() - started) / 1e9, reused: true });
    // The grant behind this token was audited when it was issued; a repeat is not a new decision,
    // so it is logged only at debug (the metrics still count it).
    if (deps.audit.isLevelEnabled('debug')) deps.audit.debug({ audit: 'token', account: hit.account, kind: hit.kind, ip, reused: true, decisions: hit.decisions }, 'token reused');
    return true;
  };
}
