import type Router from '@koa/router';
import type { Context } from 'koa';
import type { AccountRecord } from '../../identity/accounts.js';
import { AuthenticationError } from '../../identity/principal.js';
import { PAT_PREFIX, Pats, PatPolicyError, type PatRecord, type PatUsage } from '../../tokens/pats.js';
import { HttpError } from '../errors.js';
import { parseBasic } from '../token/request.js';
import type { WebDeps } from '../web/deps.js';
import { Sessions } from '../web/session.js';
import { parseTokenInput } from '../web/token-form.js';

function view(p: PatRecord & { lastUsed?: PatUsage }) {
  return {
    id: p.id,
    name: p.name,
    createdAt: new Date(p.createdAt).toISOString(),
    expiresAt: new Date(p.expiresAt).toISOString(),
    lastUsedAt: p.lastUsed ? new Date(p.lastUsed.at).toISOString() : null,
    lastUsedFrom: p.lastUsed?.from ?? null,
    restriction: p.restriction ?? null,
  };
}

const unauthorized = (message: string) => new HttpError(401, 'UNAUTHORIZED', message, { 'WWW-Authenticate': 'Bearer realm="berth"' });

/**
 * `/api/v1/tokens` for scripts: authenticated by a PAT (`Authorization: Bearer berth_pat_…` or Basic
 * user:PAT) or by the browser session plus an `X-CSRF-Token` header. A restricted PAT cannot manage
 * tokens: it could otherwise mint itself an unrestricted one.
 */
export function mountTokenApi(router: Router, d: WebDeps): void {
  const caller = async (ctx: Context): Promise<AccountRecord> => {
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
      if (!secret.startsWith(PAT_PREFIX) || Pats.shape(secret) !== 'ok') throw unauthorized('expected a personal access token');
      const rec = await d.pats.lookup(secret);
      if (!rec) throw unauthorized('unknown, expired or revoked personal access token');
      if (username !== null && username.toLowerCase() !== rec.username.toLowerCase()) throw unauthorized('this personal access token belongs to another user');
      if (rec.restriction) throw new HttpError(403, 'DENIED', 'a restricted token cannot manage tokens');
      const acct = await d.accounts.get(rec.owner);
      if (!acct) throw unauthorized('the owner of this token is unknown');
      try {
        return await d.access.current(acct);
      } catch (e) {
        if (e instanceof AuthenticationError) throw unauthorized(e.message);
        throw e;
      }
    }
    const session = await d.sessions.get(ctx);
    if (!session) throw unauthorized('sign in, or send a personal access token');
    if (ctx.method !== 'GET' && !Sessions.csrfValid(session, ctx.get('x-csrf-token'))) throw new HttpError(403, 'CSRF', 'missing or wrong X-CSRF-Token header');
    const acct = await d.accounts.get(session.accountKey);
    if (!acct) throw unauthorized('sign in again');
    try {
      return await d.access.current(acct);
    } catch (e) {
      if (e instanceof AuthenticationError) throw unauthorized(e.message);
      throw e;
    }
  };

  router.get('/api/v1/tokens', async (ctx) => {
    const acct = await caller(ctx);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { tokens: (await d.pats.list(acct.key)).map(view) };
  });

  router.post('/api/v1/tokens', async (ctx) => {
    const acct = await caller(ctx);
    const body = (ctx.request as { body?: unknown }).body;
    if (!ctx.is('application/json') || !body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'INVALID_REQUEST', 'send a JSON object: {"name": "...", "expiresInDays": 30, "repositories": ["team/**"], "actions": ["pull"]}');
    try {
      const input = parseTokenInput(body as Record<string, unknown>);
      const { secret, record } = await d.pats.create({ owner: acct.key, username: acct.identity.username, ...input });
      d.log.info({ audit: 'pat.create', account: acct.identity.username, pat: record.id, name: record.name, via: 'api' }, 'personal access token created');
      ctx.status = 201;
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { ...view(record), token: secret, username: record.username };
    } catch (e) {
      if (e instanceof PatPolicyError) throw new HttpError(400, 'INVALID_REQUEST', e.message);
      throw e;
    }
  });

  router.delete('/api/v1/tokens/:id', async (ctx) => {
    const acct = await caller(ctx);
    const ok = await d.pats.revoke(acct.key, ctx.params.id!);
    d.log.info({ audit: 'pat.revoke', account: acct.identity.username, pat: ctx.params.id, found: ok, via: 'api' }, 'personal access token revoked');
    if (!ok) throw new HttpError(404, 'NOT_FOUND', 'no such token');
    ctx.status = 204;
  });

  router.delete('/api/v1/tokens', async (ctx) => {
    const acct = await caller(ctx);
    const ids = await d.pats.revokeAll(acct.key);
    d.log.info({ audit: 'pat.revoke', account: acct.identity.username, pats: ids, via: 'api' }, 'all personal access tokens revoked');
    ctx.body = { revoked: ids.length };
  });
}
