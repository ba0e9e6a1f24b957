import { randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import type { Store } from '../../store/store.js';
import { Sealer } from '../../util/sealed.js';
import { constantTimeEqual, sha256Hex } from '../../util/secret.js';

export const SESSION_COOKIE = 'berth_session';
const LOGIN_COOKIE = 'berth_login';
const PRE_CSRF_COOKIE = 'berth_csrf';

export interface SessionData {
  accountKey: string;
  csrf: string;
  createdAt: number;
}

export interface LoginAttemptRecord {
  connector: string;
  state: string;
  nonce: string;
  codeVerifier: string;
  redirectURI: string;
  returnTo: string;
  /** SHA-256 of a cookie set on the browser that started the attempt (login CSRF). */
  browser: string;
}

const LOGIN_ATTEMPT_TTL = 600;
/** Seconds a one-time message (a new token's secret) waits for the redirect that shows it. */
const FLASH_TTL = 120;
/** Marks a browser that signed out, so that its next sign-in asks the provider for a fresh login. */
const SIGNED_OUT_COOKIE = 'berth_signed_out';
const SIGNED_OUT_TTL = 600;

/** Only Berth's own paths: `/x` but not `//host`, `/\host` or anything with a scheme. */
export function safeReturnTo(v: unknown): string {
  if (typeof v !== 'string' || !v.startsWith('/') || v.startsWith('//') || v.includes('\\') || /[\u0000-\u001f]/.test(v) || v.length > 512) return '/tokens';
  return v;
}

/**
 * Browser sessions: an opaque id in an httpOnly SameSite=Lax cookie, the data server-side under the
 * id's hash (a store dump yields no usable cookies). OAuth state/PKCE/nonce live server-side too and
 * are taken once.
 */
export class Sessions {
  constructor(
    private readonly store: Store,
    private readonly ttlSeconds: number,
    private readonly forceSecure: boolean,
  ) {}

  private cookieOpts(ctx: Context, maxAgeSeconds: number) {
    const secure = this.forceSecure || ctx.secure;
    return { httpOnly: true, sameSite: 'lax' as const, secure, overwrite: true, maxAge: maxAgeSeconds * 1000, path: '/' };
  }

  private setCookie(ctx: Context, name: string, value: string, maxAge: number): void {
    // koa refuses Secure cookies on a plain connection unless told the proxy terminated TLS.
    if (this.forceSecure && !ctx.secure) (ctx.cookies as unknown as { secure: boolean }).secure = true;
    ctx.cookies.set(name, value, this.cookieOpts(ctx, maxAge));
  }

  async create(ctx: Context, accountKey: string): Promise<SessionData> {
    const id = randomBytes(32).toString('base64url');
    const data: SessionData = { accountKey, csrf: randomBytes(24).toString('base64url'), createdAt: Date.now() };
    await this.store.set(`sess:${sha256Hex(id)}`, JSON.stringify(data), this.ttlSeconds);
    this.setCookie(ctx, SESSION_COOKIE, id, this.ttlSeconds);
    return data;
  }

  async get(ctx: Context): Promise<SessionData | null> {
    const id = ctx.cookies.get(SESSION_COOKIE);
    if (!id || id.length > 100) return null;
    const raw = await this.store.get(`sess:${sha256Hex(id)}`);
    return raw ? (JSON.parse(raw) as SessionData) : null;
  }

  async destroy(ctx: Context): Promise<void> {
    const id = ctx.cookies.get(SESSION_COOKIE);
    if (id && id.length <= 100) {
      await this.store.del(`sess:${sha256Hex(id)}`);
      await this.store.del(`flash:${sha256Hex(id)}`);
    }
    this.setCookie(ctx, SESSION_COOKIE, '', 0);
  }

  /**
   * A one-time slot tied to the session (redirect-after-post): the POST stores what the next page
   * shows once, the GET takes it. It lives only in the store, under the session id's hash, never in
   * a URL or a cookie, and is gone after the first display or FLASH_TTL seconds. It is sealed with a
   * key derived from the session cookie, which only the browser holds: a store dump cannot read it.
   */
  async putFlash(ctx: Context, value: unknown): Promise<void> {
    const id = ctx.cookies.get(SESSION_COOKIE);
    if (!id || id.length > 100) return;
    await this.store.set(`flash:${sha256Hex(id)}`, new Sealer(id, 'berth flash v1').seal(JSON.stringify(value)), FLASH_TTL);
  }

  async takeFlash<T>(ctx: Context): Promise<T | null> {
    const id = ctx.cookies.get(SESSION_COOKIE);
    if (!id || id.length > 100) return null;
    const raw = await this.store.take(`flash:${sha256Hex(id)}`);
    if (!raw) return null;
    try {
      return JSON.parse(new Sealer(id, 'berth flash v1').open(raw)) as T;
    } catch {
      return null;
    }
  }

  /** After sign-out: the next sign-in from this browser asks the provider to log the person in again. */
  markSignedOut(ctx: Context): void {
    this.setCookie(ctx, SIGNED_OUT_COOKIE, '1', SIGNED_OUT_TTL);
  }

  signedOutRecently(ctx: Context): boolean {
    return ctx.cookies.get(SIGNED_OUT_COOKIE) === '1';
  }

  clearSignedOut(ctx: Context): void {
    if (ctx.cookies.get(SIGNED_OUT_COOKIE)) this.setCookie(ctx, SIGNED_OUT_COOKIE, '', 0);
  }

  static csrfValid(session: SessionData, presented: unknown): boolean {
    return typeof presented === 'string' && constantTimeEqual(presented, session.csrf);
  }

  /** Double-submit token for forms shown before sign-in (the local password form). */
  preLoginCsrf(ctx: Context): string {
    let v = ctx.cookies.get(PRE_CSRF_COOKIE);
    if (!v || v.length !== 32) {
      v = randomBytes(24).toString('base64url');
      this.setCookie(ctx, PRE_CSRF_COOKIE, v, 3600);
    }
    return v;
  }

  preLoginCsrfValid(ctx: Context, presented: unknown): boolean {
    const v = ctx.cookies.get(PRE_CSRF_COOKIE);
    return Boolean(v) && typeof presented === 'string' && constantTimeEqual(presented, v!);
  }

  async startLogin(ctx: Context, attempt: Omit<LoginAttemptRecord, 'browser'>): Promise<void> {
    const browser = randomBytes(24).toString('base64url');
    const rec: LoginAttemptRecord = { ...attempt, browser: sha256Hex(browser) };
    await this.store.set(`login:${sha256Hex(attempt.state)}`, JSON.stringify(rec), LOGIN_ATTEMPT_TTL);
    this.setCookie(ctx, LOGIN_COOKIE, browser, LOGIN_ATTEMPT_TTL);
  }

  /** The attempt for a callback's state, once; null when unknown, replayed, or from another browser. */
  async finishLogin(ctx: Context, state: string): Promise<LoginAttemptRecord | null> {
    if (!state || state.length > 200) return null;
    const raw = await this.store.take(`login:${sha256Hex(state)}`);
    if (!raw) return null;
    const rec = JSON.parse(raw) as LoginAttemptRecord;
    const browser = ctx.cookies.get(LOGIN_COOKIE);
    this.setCookie(ctx, LOGIN_COOKIE, '', 0);
    if (!browser || !constantTimeEqual(sha256Hex(browser), rec.browser)) return null;
    return rec;
  }
}
