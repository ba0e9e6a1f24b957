import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { constantTimeEqual, sha256Hex } from '../util/secret.js';

/**
 * A real OpenID provider (the `oidc-provider` package) on loopback, with its own login page. It backs
 * the zero-setup demo and the test suite; it is not meant for production: accounts live in memory,
 * passwords are plain strings, and the issuer is plain http.
 */

export interface DevUser {
  username: string;
  password: string;
  email: string;
  emailVerified?: boolean;
  name?: string;
  /** Plain names ("platform", "team-a/backend"); the keycloak style publishes them as full paths. */
  groups: string[];
  realmRoles?: string[];
  /** Keycloak client roles by client id. */
  clientRoles?: Record<string, string[]>;
  /** Google Workspace domain; the google style falls back to `hostedDomain` when the email is in it. */
  hd?: string;
  disabled?: boolean;
}

export interface DevClient {
  clientId: string;
  /** Absent: a public client (no client authentication, PKCE only). */
  clientSecret?: string;
  redirectUris: string[];
  /** Where RP-initiated logout may send the browser back to (registered exactly, like redirectUris). */
  postLogoutRedirectUris?: string[];
}

/** Which real provider the claims imitate. */
export type ClaimStyle = 'keycloak' | 'google' | 'plain';

export interface DevProviderOptions {
  /** 0 or absent: a free port. */
  port?: number;
  users: DevUser[];
  clients: DevClient[];
  claimStyle?: ClaimStyle;
  hostedDomain?: string;
  /** Shown under the login form (the demo lists its accounts there). Plain text. */
  loginHint?: string;
  /** RP-initiated logout (an end_session_endpoint in discovery); on unless false. */
  endSession?: boolean;
  /** Receives provider-side failures (server errors); defaults to stderr. Nothing else is logged. */
  onError?: (message: string) => void;
}

export interface DevProvider {
  /** http://127.0.0.1:PORT, also the discovery base. */
  readonly issuer: string;
  readonly url: string;
  readonly port: number;
  /** Current state of the accounts (copies: change them through the setters). */
  readonly users: readonly DevUser[];
  /** Stable `sub` of a user. */
  subjectOf(username: string): string;
  setGroups(username: string, groups: string[]): void;
  setDisabled(username: string, disabled: boolean): void;
  setRoles(username: string, roles: { realmRoles?: string[]; clientRoles?: Record<string, string[]> }): void;
  close(): Promise<void>;
}

// --- the slice of oidc-provider used here (the package ships no type declarations) ---

interface InteractionDetails {
  uid: string;
  prompt: { name: string; details: { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> } };
  params: Record<string, unknown>;
  session?: { accountId?: string };
  grantId?: string;
}

interface ProviderGrant {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(resource: string, scope: string): void;
  save(): Promise<string>;
}

interface ProviderInstance {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, options?: { mergeWithLastSubmission?: boolean }): Promise<void>;
  Grant: { new (init: { accountId: string; clientId: string }): ProviderGrant; find(id: string): Promise<ProviderGrant | undefined> };
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}

type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;

interface ClientLike {
  grantTypeAllowed(grant: string): boolean;
}

interface AdapterPayload {
  grantId?: string;
  uid?: string;
  userCode?: string;
  consumed?: number;
  jti?: string;
  [key: string]: unknown;
}

let providerClass: Promise<ProviderConstructor> | undefined;

/**
 * oidc-provider 9 warns at import time that Node 20 is not its preferred runtime; Berth supports Node
 * 20 and the demo must start quietly, so exactly that notice is dropped while the module loads.
 */
function loadProviderClass(): Promise<ProviderConstructor> {
  providerClass ??= (async () => {
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].includes('oidc-provider WARNING: Unsupported runtime')) return;
      warn(...args);
    };
    try {
      // A non-literal specifier: the package has no declarations, the interfaces above describe it.
      const specifier: string = 'oidc-provider';
      const mod = (await import(specifier)) as { default: ProviderConstructor };
      return mod.default;
    } finally {
      console.warn = warn;
    }
  })();
  return providerClass;
}

/**
 * The provider's storage, per instance (the bundled memory adapter is process-wide and announces
 * itself on every start). Keeps the grant index so that a replayed code revokes what it issued.
 */
function memoryAdapterFactory(): (model: string) => object {
  const entries = new Map<string, { payload: AdapterPayload; expiresAt: number }>();
  const grants = new Map<string, Set<string>>();
  const byIndex = new Map<string, string>();
  const live = (key: string) => {
    const e = entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= Date.now()) {
      entries.delete(key);
      return undefined;
    }
    return e.payload;
  };
  return (model: string) => {
    const key = (id: string) => `${model}:${id}`;
    return {
      async upsert(id: string, payload: AdapterPayload, expiresIn?: number) {
        entries.set(key(id), { payload, expiresAt: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity });
        if (payload.grantId) {
          const members = grants.get(payload.grantId) ?? new Set<string>();
          members.add(key(id));
          grants.set(payload.grantId, members);
        }
        if (model === 'Session' && payload.uid) byIndex.set(`uid:${payload.uid}`, id);
        if (payload.userCode) byIndex.set(`userCode:${payload.userCode}`, id);
      },
      async find(id: string) {
        return live(key(id));
      },
      async findByUid(uid: string) {
        const id = byIndex.get(`uid:${uid}`);
        return id === undefined ? undefined : live(key(id));
      },
      async findByUserCode(userCode: string) {
        const id = byIndex.get(`userCode:${userCode}`);
        return id === undefined ? undefined : live(key(id));
      },
      async consume(id: string) {
        const payload = live(key(id));
        if (payload) payload.consumed = Math.floor(Date.now() / 1000);
      },
      async destroy(id: string) {
        entries.delete(key(id));
      },
      async revokeByGrantId(grantId: string) {
        for (const k of grants.get(grantId) ?? []) entries.delete(k);
        grants.delete(grantId);
      },
    };
  };
}

/** Stable across restarts, so that personal access tokens made in the demo survive one. */
function subjectFor(username: string): string {
  return sha256Hex(`berth-dev-provider:${username}`).slice(0, 32);
}

function fullPath(group: string): string {
  return group.startsWith('/') ? group : `/${group}`;
}

function claimsFor(user: DevUser, style: ClaimStyle, hostedDomain: string | undefined): Record<string, unknown> {
  const base: Record<string, unknown> = {
    sub: subjectFor(user.username),
    email: user.email,
    email_verified: user.emailVerified ?? true,
    name: user.name ?? user.username,
  };
  if (style === 'google') {
    const emailDomain = user.email.slice(user.email.lastIndexOf('@') + 1).toLowerCase();
    const hd = user.hd ?? (hostedDomain && emailDomain === hostedDomain.toLowerCase() ? hostedDomain : undefined);
    return hd === undefined ? base : { ...base, hd };
  }
  base.preferred_username = user.username;
  if (style === 'plain') return { ...base, groups: [...user.groups] };
  return {
    ...base,
    groups: user.groups.map(fullPath),
    realm_access: { roles: [...(user.realmRoles ?? [])] },
    resource_access: Object.fromEntries(Object.entries(user.clientRoles ?? {}).map(([client, roles]) => [client, { roles: [...roles] }])),
  };
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const PAGE_STYLE =
  'body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}' +
  'label{display:block;margin-top:1rem;font-weight:600}input{display:block;width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem;margin-top:.25rem}' +
  'button{margin-top:1.25rem;padding:.6rem 1.2rem;font-size:1rem}.error{color:#8b0000;border:1px solid #8b0000;padding:.5rem}' +
  '.hint{margin-top:2rem;color:#444;white-space:pre-line}';

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title><style>${PAGE_STYLE}</style></head><body><main>${body}</main></body></html>`;
}

function loginPage(uid: string, clientId: string, opts: { error?: string; username?: string; hint?: string }): string {
  const error = opts.error ? `<p class="error" role="alert" id="login-error">${escapeHtml(opts.error)}</p>` : '';
  const described = opts.error ? ' aria-describedby="login-error"' : '';
  const hint = opts.hint ? `<p class="hint">${escapeHtml(opts.hint)}</p>` : '';
  return page(
    'Sign in – development identity provider',
    `<h1>Sign in</h1><p>Development identity provider, signing in to <strong>${escapeHtml(clientId)}</strong>.</p>${error}` +
      `<form method="post" action="/interaction/${encodeURIComponent(uid)}/login"${described}>` +
      `<label for="username">Username</label><input id="username" name="username" autocomplete="username" required autofocus value="${escapeHtml(opts.username ?? '')}">` +
      `<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>` +
      `<button type="submit">Sign in</button></form>${hint}`,
  );
}

function send(res: ServerResponse, status: number, html: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.end(html);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 16 * 1024) throw new Error('form too large');
    chunks.push(chunk as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function signingKey(): Record<string, unknown> {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' };
}

export async function startDevProvider(options: DevProviderOptions): Promise<DevProvider> {
  const Provider = await loadProviderClass();
  const style = options.claimStyle ?? 'plain';
  const onError = options.onError ?? ((message: string) => process.stderr.write(`dev provider: ${message}\n`));
  const users = new Map<string, DevUser>(options.users.map((u) => [u.username, structuredClone(u)]));
  const bySubject = (sub: string) => [...users.values()].find((u) => subjectFor(u.username) === sub);

  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    adapter: memoryAdapterFactory(),
    clients: options.clients.map((c) => ({
      client_id: c.clientId,
      ...(c.clientSecret ? { client_secret: c.clientSecret, token_endpoint_auth_method: 'client_secret_basic' } : { token_endpoint_auth_method: 'none' }),
      redirect_uris: c.redirectUris,
      ...(c.postLogoutRedirectUris ? { post_logout_redirect_uris: c.postLogoutRedirectUris } : {}),
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    })),
    jwks: { keys: [signingKey()] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    claims: {
      // Keycloak and Google put these in every ID token, whatever the scopes.
      openid: ['sub', 'groups', 'realm_access', 'resource_access', 'hd'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      // The application sends the browser here at sign-out; the person confirms, the provider's session
      // ends, and the next sign-in asks for a password again (so the demo's alice and bob can take turns).
      rpInitiatedLogout:
        options.endSession === false
          ? { enabled: false }
          : {
              enabled: true,
              logoutSource: async (ctx: { body: string; type: string }, form: string) => {
                ctx.type = 'html';
                ctx.body = page(
                  'Sign out – development identity provider',
                  `<h1>Sign out</h1><p>Also sign out of the development identity provider? Then the next sign-in asks for a username and password again.</p>${form}` +
                    `<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button> <button type="submit" form="op.logoutForm">No, stay signed in here</button>`,
                );
              },
              postLogoutSuccessSource: async (ctx: { body: string; type: string }) => {
                ctx.type = 'html';
                ctx.body = page('Signed out', '<h1>Signed out</h1><p role="status">You are signed out of the development identity provider.</p>');
              },
            },
      userinfo: { enabled: true },
    },
    interactions: { url: async (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    // Like Keycloak: a refresh token whenever the client may use one, not only with offline_access.
    issueRefreshToken: async (_ctx: unknown, client: ClientLike) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: async () => false,
    // A new refresh token at every refresh (and the old one dead), so clients must keep the latest.
    rotateRefreshToken: true,
    findAccount: async (_ctx: unknown, sub: string) => {
      const user = bySubject(sub);
      // A disabled or deleted account is "not found": the refresh grant then answers invalid_grant.
      if (!user || user.disabled) return undefined;
      return { accountId: sub, claims: async () => claimsFor(user, style, options.hostedDomain) };
    },
    renderError: async (ctx: { type: string; body: string }, out: Record<string, string>) => {
      ctx.type = 'html';
      ctx.body = page('Sign-in error', `<h1>Sign-in error</h1><p role="alert">${escapeHtml(out.error_description ?? out.error ?? 'error')}</p>`);
    },
    clientBasedCORS: () => false,
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      RefreshToken: 14 * 24 * 3600,
      Interaction: 900,
      Session: 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
  });
  provider.on('server_error', (_ctx: unknown, err: unknown) => onError(err instanceof Error ? err.message : String(err)));
  // Koa logs every unhandled error to stderr unless someone listens; client errors are not news here.
  provider.on('error', () => {});

  const providerHandler = provider.callback();

  async function interaction(req: IncomingMessage, res: ServerResponse, uid: string, action: string | undefined): Promise<void> {
    let details: InteractionDetails;
    try {
      details = await provider.interactionDetails(req, res);
    } catch {
      send(res, 400, page('Sign-in expired', '<h1>Sign-in expired</h1><p role="alert">This sign-in has expired or cookies are blocked. Start again from the application.</p>'));
      return;
    }
    if (details.uid !== uid) {
      send(res, 400, page('Sign-in error', '<h1>Sign-in error</h1><p role="alert">This sign-in page does not belong to the current attempt.</p>'));
      return;
    }
    const clientId = String(details.params.client_id ?? '');

    if (details.prompt.name === 'consent') {
      // Consent is implicit: every configured client is first-party in a dev setup.
      const accountId = details.session?.accountId;
      if (!accountId) throw new Error('consent prompt without a signed-in account');
      const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId, clientId });
      const missing = details.prompt.details;
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      return;
    }
    if (details.prompt.name !== 'login') {
      send(res, 400, page('Sign-in error', `<h1>Sign-in error</h1><p role="alert">Unsupported step: ${escapeHtml(details.prompt.name)}.</p>`));
      return;
    }
    if (req.method === 'GET' && action === undefined) {
      send(res, 200, loginPage(uid, clientId, { hint: options.loginHint }));
      return;
    }
    if (req.method !== 'POST' || action !== 'login') {
      send(res, 405, page('Not allowed', '<h1>Not allowed</h1>'));
      return;
    }
    const form = await readForm(req);
    const username = form.get('username') ?? '';
    const password = form.get('password') ?? '';
    const user = users.get(username);
    // Hashing first keeps the comparison independent of the password length.
    if (!user || !constantTimeEqual(sha256Hex(password), sha256Hex(user.password))) {
      send(res, 401, loginPage(uid, clientId, { error: 'Wrong username or password.', username, hint: options.loginHint }));
      return;
    }
    if (user.disabled) {
      send(res, 403, loginPage(uid, clientId, { error: 'This account is disabled.', username, hint: options.loginHint }));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: subjectFor(user.username) } }, { mergeWithLastSubmission: false });
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const m = /^\/interaction\/([^/]+)(?:\/([a-z]+))?$/.exec(path);
    if (!m) {
      providerHandler(req, res);
      return;
    }
    interaction(req, res, decodeURIComponent(m[1] ?? ''), m[2]).catch((err: unknown) => {
      onError(err instanceof Error ? err.message : String(err));
      if (!res.headersSent) send(res, 500, page('Sign-in error', '<h1>Sign-in error</h1><p role="alert">The provider failed; try again.</p>'));
      else res.end();
    });
  });

  let closing: Promise<void> | undefined;
  const requireUser = (username: string) => {
    const user = users.get(username);
    if (!user) throw new Error(`dev provider: no user ${username}`);
    return user;
  };

  return {
    issuer,
    url: issuer,
    port,
    get users() {
      return [...users.values()].map((u) => structuredClone(u));
    },
    subjectOf: (username) => subjectFor(requireUser(username).username),
    setGroups(username, groups) {
      requireUser(username).groups = [...groups];
    },
    setDisabled(username, disabled) {
      requireUser(username).disabled = disabled;
    },
    setRoles(username, roles) {
      const user = requireUser(username);
      if (roles.realmRoles) user.realmRoles = [...roles.realmRoles];
      if (roles.clientRoles) user.clientRoles = structuredClone(roles.clientRoles);
    },
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
