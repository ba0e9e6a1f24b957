import type Router from '@koa/router';
import type { Context } from 'koa';
import type { CurrentAccount } from '../../identity/continuous-access.js';
import { PatPolicyError, type PatRecord, type PatUsage } from '../../tokens/pats.js';
import { declareErrorFormat, HttpError } from '../errors.js';
import type { WebDeps } from '../web/deps.js';
import { apiCaller, jsonBody } from './caller.js';
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

/**
 * `/api/v1/tokens` for scripts. A restricted PAT cannot manage tokens: it could otherwise mint itself
 * an unrestricted one.
 */
export function mountTokenApi(router: Router, d: WebDeps): void {
  // Scripts read the JSON API: its errors are registry-style JSON.
  declareErrorFormat(router, '/api/', 'registry');
  const caller = async (ctx: Context): Promise<CurrentAccount> => {
    const c = await apiCaller(ctx, d);
    if (c.pat?.restriction) throw new HttpError(403, 'DENIED', 'a restricted token cannot manage tokens');
    return c.account;
  };

  router.get('/api/v1/tokens', async (ctx) => {
    const acct = await caller(ctx);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { tokens: (await d.pats.list(acct.key)).map(view) };
  });

  router.post('/api/v1/tokens', async (ctx) => {
    const acct = await caller(ctx);
    const body = jsonBody(ctx, '{"name": "...", "expiresInDays": 30, "repositories": ["team/**"], "actions": ["pull"]}');
    try {
      const input = parseTokenInput(body);
      const { secret, record } = await d.pats.create({ owner: acct.key, username: acct.name, ...input });
      d.log.info({ audit: 'pat.create', account: acct.name, pat: record.id, name: record.name, via: 'api' }, 'personal access token created');
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
    d.log.info({ audit: 'pat.revoke', account: acct.name, pat: ctx.params.id, found: ok, via: 'api' }, 'personal access token revoked');
    if (!ok) throw new HttpError(404, 'NOT_FOUND', 'no such token');
    ctx.status = 204;
  });

  router.delete('/api/v1/tokens', async (ctx) => {
    const acct = await caller(ctx);
    const ids = await d.pats.revokeAll(acct.key);
    d.log.info({ audit: 'pat.revoke', account: acct.name, pats: ids, via: 'api' }, 'all personal access tokens revoked');
    ctx.body = { revoked: ids.length };
  });
}
