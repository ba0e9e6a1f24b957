import type { Context } from 'koa';
import type { AccountRecord } from '../../identity/accounts.js';
import type { CurrentAccount } from '../../identity/continuous-access.js';
import { AuthenticationError } from '../../model/principal.js';
import type { PatRecord } from '../../tokens/pats.js';
import { RateLimitedError } from '../../security/auth-limiter.js';
import { HttpError } from '../errors.js';
import { parseBasic } from '../token/request.js';
import type { WebDeps } from '../web/deps.js';
import { Sessions } from '../web/session.js';

export const unauthorized = (message: string) => new HttpError(401, 'UNAUTHORIZED', message, { 'WWW-Authenticate': 'Bearer realm="berth"' });

export interface ApiCaller {
  account: CurrentAccount;
  /** Set when the call was authenticated by a PAT rather than a browser session. */
  pat?: PatRecord;
}

/**
 * Who is calling the JSON API: a PAT (`Authorization: Bearer berth_pat_…` or Basic user:PAT), or the
 * browser session, which must then send its CSRF token in `X-CSRF-Token` on anything but GET.
 */
export async function apiCaller(ctx: Context, d: WebDeps): Promise<ApiCaller> {
  const current = async (acct: AccountRecord | null) => {
    if (!acct) throw unauthorized('unknown account: sign in again');
    try {
      return await d.access.current(acct);
    } catch (e) {
      if (e instanceof AuthenticationError) throw unauthorized(e.message);
      throw e;
    }
  };
  const auth = ctx.get('authorization');
  if (auth) {
    let secret = '';
    let username: string | null = null;
    if (/^Bearer\s+/i.test(auth)) secret = auth.replace(/^Bearer\s+/i, '').trim();
    else {
      const b = parseBasic(auth);
      secret = b?.password ?? '';
      username = b?.username ?? null;
    }
    // Through the credential gate, as at the token endpoint: failures are counted, lockouts apply.
    let pat: PatRecord | null;
    try {
      const principal = await d.credentials.password(username ?? '', secret, ctx.ip, { only: ['pat'], noUsername: username === null });
      pat = await d.patVerifier.record(principal);
    } catch (e) {
      if (e instanceof AuthenticationError) throw unauthorized(e.message);
      if (e instanceof RateLimitedError) throw new HttpError(429, 'TOOMANYREQUESTS', e.message, { 'Retry-After': String(e.retryAfterSeconds) });
      throw e;
    }
    if (!pat) throw unauthorized('unknown, expired or revoked personal access token');
    return { account: await current(await d.accounts.get(pat.owner)), pat };
  }
  const session = await d.sessions.get(ctx);
  if (!session) throw unauthorized('sign in, or send a personal access token');
  if (ctx.method !== 'GET' && !Sessions.csrfValid(session, ctx.get('x-csrf-token'))) throw new HttpError(403, 'CSRF', 'missing or wrong X-CSRF-Token header');
  return { account: await current(await d.accounts.get(session.accountKey)) };
}

export function jsonBody(ctx: Context, example: string): Record<string, unknown> {
  const body = (ctx.request as { body?: unknown }).body;
  if (!ctx.is('application/json') || !body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'INVALID_REQUEST', `send a JSON object, e.g. ${example}`);
  return body as Record<string, unknown>;
}
