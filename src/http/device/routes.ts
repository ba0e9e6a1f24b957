import type Router from '@koa/router';
import type { Context } from 'koa';
import { StoreUnavailableError, type Store } from '../../store/store.js';
import { PatPolicyError } from '../../tokens/pats.js';
import type { Sealer } from '../../util/sealed.js';
import { sha256Hex } from '../../util/secret.js';
import type { WebDeps } from '../web/deps.js';
import { errorPage } from '../web/pages.js';
import { sendPage } from '../web/html.js';
import { currentViewer, type Viewer } from '../web/viewer.js';
import { Sessions } from '../web/session.js';
import { signInFor } from '../web/routes.js';
import { declareErrorFormat } from '../errors.js';
import { DEFAULT_DEVICE_SETTINGS, DeviceGrants, type DeviceFlowSettings, type PendingGrant } from './grants.js';
import { deviceConfirmPage, deviceDonePage, deviceEntryPage } from './pages.js';
import { formatUserCode, normalizeUserCode } from './user-code.js';

export const DEVICE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:device_code';

/** The parts of the web pages' dependencies the device pages use. */
export type DeviceWebDeps = Pick<WebDeps, 'env' | 'publicURL' | 'sessions' | 'accounts' | 'access' | 'pats' | 'log' | 'credentials'>;

export interface DeviceDeps {
  web: DeviceWebDeps;
  store: Store;
  /** Seals a PAT between approval and the device's next poll. */
  sealer: Sealer;
  settings?: Partial<DeviceFlowSettings>;
}

function body(ctx: Context): Record<string, unknown> {
  const b = (ctx.request as { body?: unknown }).body;
  return b && typeof b === 'object' && !Array.isArray(b) ? (b as Record<string, unknown>) : {};
}

/** A single string parameter; repeated or non-string values count as malformed. */
function param(b: Record<string, unknown>, name: string): string | undefined | null {
  const v = b[name];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : null;
}

function oauthJSON(ctx: Context, status: number, payload: Record<string, unknown>): void {
  ctx.status = status;
  ctx.type = 'application/json';
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Pragma', 'no-cache');
  ctx.body = payload;
}

const oauthError = (ctx: Context, status: number, error: string, description: string, extra: Record<string, unknown> = {}) => oauthJSON(ctx, status, { error, error_description: description, ...extra });

const CLIENT_ID = /^[\x21-\x7e]{1,100}$/;

/**
 * RFC 8628 device authorization for Berth: `POST /device/code` and `POST /device/token` for the
 * device (the credential helper), `/device` pages for the person approving in any browser. The
 * approval creates a PAT for the approving account, handed to the device on its next poll.
 */
export function mountDeviceRoutes(router: Router, deps: DeviceDeps): void {
  // Devices (RFC 8628 clients) read OAuth JSON errors; the person's pages under /device are pages.
  declareErrorFormat(router, '/device/code', 'oauth');
  declareErrorFormat(router, '/device/token', 'oauth');
  const d = deps.web;
  const grants = new DeviceGrants(deps.store, deps.sealer, { ...DEFAULT_DEVICE_SETTINGS, ...deps.settings });
  const s = grants.settings;

  // --- the device's side: JSON in OAuth's error shape ---

  const oauthEndpoint = (handler: (ctx: Context) => Promise<void>) => async (ctx: Context) => {
    try {
      await handler(ctx);
    } catch (e) {
      if (!(e instanceof StoreUnavailableError)) throw e;
      ctx.set('Retry-After', '5');
      oauthError(ctx, 503, 'temporarily_unavailable', 'the credential store is unavailable; try again shortly');
    }
  };

  router.post(
    '/device/code',
    oauthEndpoint(async (ctx) => {
      const b = body(ctx);
      const clientId = param(b, 'client_id');
      if (clientId === null || (clientId !== undefined && !CLIENT_ID.test(clientId))) return oauthError(ctx, 400, 'invalid_request', 'client_id must be 1 to 100 printable characters');
      if (!(await grants.issueAllowed(ctx.ip))) {
        ctx.set('Retry-After', '60');
        return oauthError(ctx, 429, 'slow_down', 'too many device codes requested from this address; wait a minute');
      }
      const { deviceCode, userCode, record } = await grants.issue(clientId ?? null, ctx.ip);
      const shown = formatUserCode(userCode);
      d.log.info({ audit: 'device.code', client: record.clientId, ip: ctx.ip }, 'device authorization started');
      oauthJSON(ctx, 200, {
        device_code: deviceCode,
        user_code: shown,
        verification_uri: `${d.publicURL}/device`,
        verification_uri_complete: `${d.publicURL}/device?user_code=${encodeURIComponent(shown)}`,
        expires_in: s.expiresInSeconds,
        interval: record.interval,
      });
    }),
  );

  router.post(
    '/device/token',
    oauthEndpoint(async (ctx) => {
      const b = body(ctx);
      const grantType = param(b, 'grant_type');
      const deviceCode = param(b, 'device_code');
      const clientId = param(b, 'client_id');
      for (const [name, v] of [['grant_type', grantType], ['device_code', deviceCode], ['client_id', clientId]] as const) {
        if (v === null) return oauthError(ctx, 400, 'invalid_request', `${name} must be given once, as a string`);
      }
      if (!grantType) return oauthError(ctx, 400, 'invalid_request', 'grant_type is required (send the request as application/x-www-form-urlencoded or JSON)');
      if (grantType !== DEVICE_GRANT_TYPE) return oauthError(ctx, 400, 'unsupported_grant_type', `only ${DEVICE_GRANT_TYPE} is supported here`);
      if (!deviceCode) return oauthError(ctx, 400, 'invalid_request', 'device_code is required');
      if (deviceCode.length > 200) return oauthError(ctx, 400, 'invalid_grant', 'not a device code');
      const outcome = await grants.poll(deviceCode, clientId ?? null);
      switch (outcome.kind) {
        case 'invalid_grant':
          // An unknown device code is a failed credential like any other (per address: it names no account).
          await d.credentials.countFailure('', deviceCode, ctx.ip);
          return oauthError(ctx, 400, 'invalid_grant', outcome.why);
        case 'expired':
          if (outcome.orphan) await d.pats.revoke(outcome.orphan.owner, outcome.orphan.tokenId);
          return oauthError(ctx, 400, 'expired_token', 'the device code expired; start the sign-in again');
        case 'slow_down':
          return oauthError(ctx, 400, 'slow_down', `polling too fast; wait at least ${outcome.interval} seconds between requests`, { interval: outcome.interval });
        case 'pending':
          return oauthError(ctx, 400, 'authorization_pending', 'waiting for the user to approve in the browser');
        case 'denied':
          return oauthError(ctx, 400, 'access_denied', 'the user denied the sign-in');
        case 'approved':
          d.log.info({ audit: 'device.token', account: outcome.username, pat: outcome.tokenId, ip: ctx.ip }, 'device received its personal access token');
          return oauthJSON(ctx, 200, {
            access_token: outcome.secret,
            token_type: 'Bearer',
            username: outcome.username,
            expires_in: Math.max(0, Math.floor((outcome.tokenExpiresAt - Date.now()) / 1000)),
            // Lets the device revoke or replace this exact token later through /api/v1/tokens.
            token_id: outcome.tokenId,
          });
      }
    }),
  );

  // --- the person's side: pages, signed-in only, CSRF-checked posts ---

  const signedIn = (ctx: Context) => currentViewer(ctx, d);

  const viewerOf = (v: Viewer) => ({ username: v.account.name, csrf: v.session.csrf });
  // The session's CSRF token is unique to it and never leaves the browser, so its hash names the session.
  const sessionId = (v: Viewer) => sha256Hex(`device-entry:${v.session.csrf}`);
  const tokenDays = () => Math.max(1, Math.round(d.pats.policy.defaultTTLSeconds / 86400));

  const page = (handler: (ctx: Context) => Promise<void>) => async (ctx: Context) => {
    try {
      await handler(ctx);
    } catch (e) {
      if (!(e instanceof StoreUnavailableError)) throw e;
      sendPage(ctx, 503, errorPage(d.env, 503, 'Temporarily unavailable', 'Berth cannot reach its store right now. Try again in a moment.'));
    }
  };

  const entry = (ctx: Context, v: Viewer, status: number, userCode?: string, error?: string) => sendPage(ctx, status, deviceEntryPage(d.env, viewerOf(v), { userCode, error }));

  const TOO_MANY = 'Too many wrong codes. Wait a while, then start the sign-in again from your terminal.';
  const UNKNOWN = 'That code is unknown, was already used, or has expired. Check the code in your terminal, or start the sign-in again there.';

  /** Looks a typed code up (counting misses) and shows what approving it would grant. POST only. */
  const lookUp = async (ctx: Context, v: Viewer, typed: string) => {
    if (await grants.entryBlocked(sessionId(v), v.account.key)) return entry(ctx, v, 429, undefined, TOO_MANY);
    const g = await grants.findByUserCode(typed);
    if (!g) {
      await grants.recordFailedEntry(sessionId(v), v.account.key);
      await d.credentials.countFailure('', typed, ctx.ip);
      d.log.info({ audit: 'device.lookup', outcome: 'unknown', account: v.account.name, ip: ctx.ip }, 'unknown device user code entered');
      return entry(ctx, v, 400, typed.slice(0, 20), UNKNOWN);
    }
    confirm(ctx, v, g);
  };

  const confirm = (ctx: Context, v: Viewer, g: PendingGrant) =>
    sendPage(
      ctx,
      200,
      deviceConfirmPage(d.env, viewerOf(v), {
        userCode: g.record.userCode,
        clientId: g.record.clientId,
        requestedAt: g.record.createdAt,
        requestedFrom: g.record.requestedFrom,
        tokenName: s.tokenName,
        tokenDays: tokenDays(),
        groups: v.account.identity.groups,
      }),
    );

  const csrfRefused = (ctx: Context) => {
    d.log.warn({ audit: 'csrf', path: ctx.path, ip: ctx.ip }, 'form post without a valid CSRF token');
    sendPage(ctx, 403, errorPage(d.env, 403, 'Form expired', 'The form was missing its security token. Reload the page and try again.'));
  };

  router.get(
    '/device',
    page(async (ctx) => {
      const raw = typeof ctx.query.user_code === 'string' ? ctx.query.user_code : undefined;
      const v = await signedIn(ctx);
      if (!v) {
        const code = normalizeUserCode(raw);
        const back = code ? `/device?user_code=${formatUserCode(code)}` : '/device';
        return ctx.redirect(signInFor(back));
      }
      // A GET only fills in the form. Anyone can make a browser open this link (a redirect, an
      // <img>), so looking the code up here would let other sites spend the person's wrong-code
      // allowance and lock them out; the lookup, and the counting, happen on the CSRF-checked POST.
      const code = normalizeUserCode(raw);
      entry(ctx, v, 200, code ? formatUserCode(code) : undefined);
    }),
  );

  router.post(
    '/device',
    page(async (ctx) => {
      const v = await signedIn(ctx);
      if (!v) return sendPage(ctx, 401, errorPage(d.env, 401, 'Signed out', 'Your session has ended. Please sign in again.'));
      const f = body(ctx);
      if (!Sessions.csrfValid(v.session, f.csrf)) return csrfRefused(ctx);
      await lookUp(ctx, v, typeof f.user_code === 'string' ? f.user_code : '');
    }),
  );

  router.post(
    '/device/decision',
    page(async (ctx) => {
      const v = await signedIn(ctx);
      if (!v) return sendPage(ctx, 401, errorPage(d.env, 401, 'Signed out', 'Your session has ended. Please sign in again.'));
      const f = body(ctx);
      if (!Sessions.csrfValid(v.session, f.csrf)) return csrfRefused(ctx);
      const decision = f.decision;
      if (decision !== 'approve' && decision !== 'deny') return entry(ctx, v, 400, undefined, 'Choose Approve or Deny.');
      if (await grants.entryBlocked(sessionId(v), v.account.key)) return entry(ctx, v, 429, undefined, TOO_MANY);
      const g = await grants.claimUserCode(f.user_code);
      const who = v.account.name;
      if (!g) {
        await grants.recordFailedEntry(sessionId(v), v.account.key);
        await d.credentials.countFailure('', typeof f.user_code === 'string' ? f.user_code : '', ctx.ip);
        return entry(ctx, v, 400, undefined, UNKNOWN);
      }
      if (decision === 'deny') {
        await grants.deny(g, v.account.key);
        d.log.info({ audit: 'device.deny', account: who, client: g.record.clientId, ip: ctx.ip }, 'device sign-in denied');
        return sendPage(ctx, 200, deviceDonePage(d.env, viewerOf(v), false, s.tokenName));
      }
      let created;
      try {
        created = await d.pats.create({ owner: v.account.key, username: who, name: s.tokenName });
      } catch (e) {
        if (!(e instanceof PatPolicyError)) throw e;
        await grants.releaseUserCode(g);
        return entry(ctx, v, 400, formatUserCode(g.record.userCode), `${e.message}.`);
      }
      await grants.approve(g, v.account.key, { owner: v.account.key, username: created.record.username, id: created.record.id, expiresAt: created.record.expiresAt, secret: created.secret });
      d.log.info({ audit: 'pat.create', account: who, pat: created.record.id, name: created.record.name, expiresAt: created.record.expiresAt, via: 'device', client: g.record.clientId, ip: ctx.ip }, 'personal access token created for a device');
      sendPage(ctx, 200, deviceDonePage(d.env, viewerOf(v), true, s.tokenName));
    }),
  );
}
