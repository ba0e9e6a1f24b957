import { randomBytes } from 'node:crypto';
import type Router from '@koa/router';
import type { Context } from 'koa';
import { LoginRefusedError, type Identity } from '../../model/identity.js';
import { AccountNameError } from '../../model/account-names.js';
import type { CurrentAccount } from '../../identity/continuous-access.js';
import { AuthenticationError } from '../../model/principal.js';
import { PatPolicyError } from '../../tokens/pats.js';
import { StoreUnavailableError } from '../../store/store.js';
import type { WebDeps } from './deps.js';
import { sendPage } from './html.js';
import { currentViewer } from './viewer.js';
import { continueSignOutPage, errorPage, providerErrorMessage, revokeAllPage, signInMessage, signInMessageIsNotice, signInPage, tokensPage, type TokensPageInput } from './pages.js';
import { Sessions, safeReturnTo, type SessionData } from './session.js';
import { parseTokenInput, tokenFieldOf, tokenFormValues } from './token-form.js';
import { labelsOf } from '../../identity/accounts.js';
import { describeAccess } from '../../policy/explain.js';
import type { PatRecord } from '../../tokens/pats.js';
import { RateLimitedError } from '../../security/auth-limiter.js';
import { loggableUsername } from '../../log.js';

const page = sendPage;

function form(ctx: Context): Record<string, unknown> {
  const b = (ctx.request as { body?: unknown }).body;
  return b && typeof b === 'object' ? (b as Record<string, unknown>) : {};
}

/** What a POST leaves for the page after its redirect, shown once (Sessions.putFlash). */
interface TokensFlash {
  created?: { secret: string; record: PatRecord };
  notice?: string;
  error?: string;
}

/** The sign-in page's address for a protected page reached while signed out: it says why. */
export function signInFor(path: string): string {
  return `/?returnTo=${encodeURIComponent(path)}&error=sign_in_required`;
}

/**
 * Sign-in, callback, the token page and its forms. Every POST checks a CSRF token, and every POST
 * that changes something answers with a redirect (reloading the page never repeats it).
 */
export function mountWebRoutes(router: Router, d: WebDeps): void {
  const signedIn = (ctx: Context) => currentViewer(ctx, d);

  const renderTokens = async (ctx: Context, s: { session: SessionData; account: CurrentAccount }, extra: Partial<TokensPageInput> = {}, status = 200) => {
    const connector = d.connectors.get(s.account.identity.connector);
    page(
      ctx,
      status,
      tokensPage(d.env, {
        account: s.account,
        pats: await d.pats.list(s.account.key),
        csrf: s.session.csrf,
        defaultDays: Math.max(1, Math.round(d.pats.policy.defaultTTLSeconds / 86400)),
        maxDays: Math.max(1, Math.floor(d.pats.policy.maxTTLSeconds / 86400)),
        admin: d.isAdmin(s.account),
        // The same rules, placeholders and labels the token endpoint uses for this account.
        access: describeAccess(d.aclRules, { account: s.account.name, labels: labelsOf(s.account.identity) }),
        recheck: {
          possible: d.access.canRecheck(s.account),
          minutes: d.recheckMinutes,
          provider: (connector ?? (s.account.identity.connector === d.local.id ? d.local : undefined))?.name ?? s.account.identity.connector,
          local: s.account.identity.connector === d.local.id,
        },
        ...extra,
      }),
    );
  };

  const showSignIn = (ctx: Context, status: number, error?: string, more: { notice?: string | undefined; username?: string } = {}) =>
    page(
      ctx,
      status,
      signInPage(d.env, {
        connectors: [...d.connectors.values()].map((c) => ({ id: c.id, name: c.name })),
        localLogin: d.localLogin,
        csrf: d.sessions.preLoginCsrf(ctx),
        returnTo: safeReturnTo(ctx.query.returnTo ?? (ctx.request as { body?: { returnTo?: unknown } }).body?.returnTo),
        error,
        ...more,
      }),
    );

  router.get('/', async (ctx) => {
    if (await signedIn(ctx)) return ctx.redirect('/tokens');
    const text = signInMessage(ctx.query.error);
    if (signInMessageIsNotice(ctx.query.error)) showSignIn(ctx, 200, undefined, { notice: text });
    else showSignIn(ctx, 200, text);
  });

  // Where the provider sends the browser back after RP-initiated logout (registered there).
  router.get('/signed-out', async (ctx) => {
    if (await signedIn(ctx)) return ctx.redirect('/tokens');
    showSignIn(ctx, 200, undefined, { notice: signInMessage('signed_out') });
  });

  router.get('/login/:id', async (ctx) => {
    const connector = d.connectors.get(ctx.params.id!);
    if (!connector) return page(ctx, 404, errorPage(d.env, 404, 'Unknown sign-in method', 'There is no identity provider with that name.'));
    // Every start stores a login attempt for 10 minutes, before anyone has authenticated.
    if (!(await d.loginStarts.allowed(ctx.ip))) {
      d.metrics.rateLimited.inc({ scope: 'login' });
      ctx.set('Retry-After', '60');
      return page(ctx, 429, errorPage(d.env, 429, 'Too many sign-ins', 'Too many sign-ins were started from your address in the last minute. Wait a minute, then try again.'));
    }
    const attempt = {
      state: randomBytes(24).toString('base64url'),
      nonce: randomBytes(24).toString('base64url'),
      codeVerifier: randomBytes(48).toString('base64url'),
      redirectURI: d.redirectURI(connector.id),
    };
    let url: URL;
    try {
      // Just signed out in this browser: the provider must ask who is there, not sign the same
      // person in again from its own session (when RP-initiated logout did not end that).
      url = await connector.authorizationURL(attempt, { forceLogin: d.sessions.signedOutRecently(ctx) });
    } catch (e) {
      d.log.warn({ connector: connector.id, err: (e as Error).message }, 'identity provider unreachable at sign-in');
      return showSignIn(ctx, 503, `${connector.name} cannot be reached right now. Try again in a moment, or ask your administrator.`);
    }
    await d.sessions.startLogin(ctx, { ...attempt, connector: connector.id, returnTo: safeReturnTo(ctx.query.returnTo) });
    ctx.redirect(url.toString());
  });

  const finish = async (ctx: Context, identity: Identity, returnTo: string) => {
    const account = await d.accounts.recordLogin(identity);
    await d.sessions.create(ctx, account.key);
    d.sessions.clearSignedOut(ctx);
    d.log.info({ audit: 'login', outcome: 'success', connector: identity.connector, account: account.name, groups: account.identity.groups, ip: ctx.ip }, 'signed in');
    d.metrics.logins.inc({ connector: identity.connector, outcome: 'success' });
    ctx.redirect(returnTo);
  };

  router.get('/callback/:id', async (ctx) => {
    const connector = d.connectors.get(ctx.params.id!);
    const state = typeof ctx.query.state === 'string' ? ctx.query.state : '';
    const refuse = (why: string) => {
      d.log.warn({ audit: 'login', outcome: 'refused', connector: ctx.params.id, ip: ctx.ip, reason: why }, 'sign-in refused');
      d.metrics.logins.inc({ connector: connector?.id ?? 'unknown', outcome: 'refused' });
      page(ctx, 400, errorPage(d.env, 400, 'Sign-in failed', why));
    };
    if (!connector) return refuse('Unknown identity provider.');
    if (ctx.query.error !== undefined) return refuse(providerErrorMessage(connector.name, ctx.query.error));
    const attempt = await d.sessions.finishLogin(ctx, state);
    if (!attempt || attempt.connector !== connector.id) return refuse('This sign-in link is invalid, was already used, expired, or was started in another browser. Please start again.');
    try {
      const identity = await connector.handleCallback(new URL(ctx.originalUrl, d.publicURL), attempt);
      await finish(ctx, identity, attempt.returnTo);
    } catch (e) {
      // A name another source owns, or another person holds: no session, and the page says why.
      if (e instanceof LoginRefusedError || e instanceof AccountNameError) return refuse(e.message);
      if (e instanceof StoreUnavailableError) throw e;
      d.log.warn({ connector: connector.id, err: (e as Error).message }, 'callback failed');
      return refuse(`${connector.name} could not confirm the sign-in. Please try again.`);
    }
  });

  router.post('/login/local', async (ctx) => {
    const f = form(ctx);
    if (!d.localLogin) return page(ctx, 404, errorPage(d.env, 404, 'Not found', 'Local sign-in is disabled.'));
    if (!d.sessions.preLoginCsrfValid(ctx, f.csrf)) return page(ctx, 403, errorPage(d.env, 403, 'Form expired', 'The form was missing its security token. Reload the page and try again.'));
    const username = typeof f.username === 'string' ? f.username : '';
    const password = typeof f.password === 'string' ? f.password : '';
    try {
      if (!username || !password || password.length > 1024) throw new AuthenticationError('invalid username or password');
      await finish(ctx, await d.local.login(username, password, ctx.ip), safeReturnTo(f.returnTo));
    } catch (e) {
      if (e instanceof RateLimitedError) {
        d.metrics.logins.inc({ connector: d.local.id, outcome: 'rate_limited' });
        ctx.set('Retry-After', String(e.retryAfterSeconds));
        return showSignIn(ctx, 429, `Too many failed attempts. Try again in ${Math.ceil(e.retryAfterSeconds / 60)} minute(s).`, { username: username.slice(0, 256) });
      }
      if (!(e instanceof AuthenticationError)) throw e;
      d.log.info({ audit: 'login', outcome: 'failure', connector: d.local.id, user: loggableUsername(username), ip: ctx.ip }, 'local sign-in failed');
      d.metrics.logins.inc({ connector: d.local.id, outcome: 'failure' });
      showSignIn(ctx, 401, 'Invalid username or password.', { username: username.slice(0, 256) });
    }
  });

  const requireSession = async (ctx: Context, csrfCheck: boolean) => {
    const s = await signedIn(ctx);
    if (!s) {
      if (ctx.method === 'GET') ctx.redirect(signInFor(ctx.path));
      else page(ctx, 401, errorPage(d.env, 401, 'Signed out', 'Your session has ended. Please sign in again.'));
      return null;
    }
    if (csrfCheck && !Sessions.csrfValid(s.session, form(ctx).csrf)) {
      d.log.warn({ audit: 'csrf', path: ctx.path, ip: ctx.ip }, 'form post without a valid CSRF token');
      page(ctx, 403, errorPage(d.env, 403, 'Form expired', 'The form was missing its security token. Reload the page and try again.'));
      return null;
    }
    return s;
  };

  router.post('/logout', async (ctx) => {
    const s = await requireSession(ctx, true);
    if (!s) return;
    await d.sessions.destroy(ctx);
    d.sessions.markSignedOut(ctx);
    d.log.info({ audit: 'logout', account: s.account.name, connector: s.account.identity.connector, ip: ctx.ip }, 'signed out');
    // RP-initiated logout: the provider ends its own session too, then sends the browser back to
    // /signed-out. Where it cannot (no end-session endpoint, unreachable), the next sign-in from
    // this browser asks the provider with prompt=login instead (markSignedOut).
    const connector = d.connectors.get(s.account.identity.connector);
    let upstream: URL | null = null;
    if (connector?.logoutURL) {
      try {
        upstream = await connector.logoutURL({ postLogoutRedirectURI: `${d.publicURL.replace(/\/+$/, '')}/signed-out` });
      } catch (e) {
        d.log.warn({ connector: connector.id, err: (e as Error).message }, 'identity provider unreachable at sign-out; ended the Berth session only');
      }
    }
    // The provider is another origin: a redirect answering the form post would break the pages'
    // CSP `form-action 'self'`, so a page continues there instead (by script, or by its link).
    if (upstream) return page(ctx, 200, continueSignOutPage(d.env, connector!.name, upstream.toString()));
    ctx.status = 303;
    ctx.redirect('/signed-out');
  });

  router.get('/tokens', async (ctx) => {
    const s = await requireSession(ctx, false);
    if (!s) return;
    const flash = await d.sessions.takeFlash<TokensFlash>(ctx);
    await renderTokens(ctx, s, flash ?? {});
  });

  // Redirect-after-post: the POST answers 303 to GET /tokens, which shows the outcome once.
  const done = async (ctx: Context, flash: TokensFlash) => {
    await d.sessions.putFlash(ctx, flash);
    ctx.status = 303;
    ctx.redirect('/tokens');
  };

  router.post('/tokens', async (ctx) => {
    const s = await requireSession(ctx, true);
    if (!s) return;
    try {
      const input = parseTokenInput(form(ctx));
      const created = await d.pats.create({ owner: s.account.key, username: s.account.name, ...input });
      d.log.info({ audit: 'pat.create', account: s.account.name, pat: created.record.id, name: created.record.name, expiresAt: created.record.expiresAt, restriction: created.record.restriction }, 'personal access token created');
      await done(ctx, { created });
    } catch (e) {
      if (!(e instanceof PatPolicyError)) throw e;
      // Nothing was created: show the form again as typed, the message beside its field.
      await renderTokens(ctx, s, { form: tokenFormValues(form(ctx)), fieldError: { field: tokenFieldOf(e.message), message: e.message } }, 400);
    }
  });

  router.get('/tokens/revoke-all', async (ctx) => {
    const s = await requireSession(ctx, false);
    if (!s) return;
    page(ctx, 200, revokeAllPage(d.env, { account: s.account, csrf: s.session.csrf, pats: await d.pats.list(s.account.key) }));
  });

  router.post('/tokens/revoke-all', async (ctx) => {
    const s = await requireSession(ctx, true);
    if (!s) return;
    // Only the confirmation page's form says yes; anything else is asked again.
    if (form(ctx).confirm !== 'yes') return page(ctx, 200, revokeAllPage(d.env, { account: s.account, csrf: s.session.csrf, pats: await d.pats.list(s.account.key) }));
    const ids = await d.pats.revokeAll(s.account.key);
    d.log.info({ audit: 'pat.revoke', account: s.account.name, pats: ids }, 'all personal access tokens revoked');
    await done(ctx, { notice: `Revoked ${ids.length} token${ids.length === 1 ? '' : 's'}.` });
  });

  router.post('/tokens/:id/revoke', async (ctx) => {
    const s = await requireSession(ctx, true);
    if (!s) return;
    const id = ctx.params.id!;
    const ok = await d.pats.revoke(s.account.key, id);
    d.log.info({ audit: 'pat.revoke', account: s.account.name, pat: id, found: ok }, 'personal access token revoked');
    await done(ctx, ok ? { notice: 'Token revoked.' } : { error: 'No such token (it may have been revoked already).' });
  });
}
