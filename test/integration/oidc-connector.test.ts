import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoginAttempt } from '../../src/connectors/connector.js';
import { canRefresh, createOidcConnector, type OidcConnector } from '../../src/connectors/oidc/index.js';
import { googleConnectorSchema, keycloakConnectorSchema, oidcConnectorSchema } from '../../src/config/connectors-oidc.js';
import { startDevProvider, type DevProvider, type DevUser } from '../../src/demo/dev-provider.js';
import { IdentityRevokedError, LoginRefusedError, UpstreamUnavailableError, type Identity } from '../../src/model/identity.js';
import { freePort } from '../helpers/redis.js';

// Berth itself is not running: callback URLs are only parsed, never fetched.
const PUBLIC_URL = 'http://127.0.0.1:5999';
const CONNECTOR_IDS = ['kc', 'kc-strip', 'google', 'google-other', 'plain', 'plain-allowed', 'plain-required', 'plain-static', 'plain-info', 'late', 'gone'];
const CLIENT = {
  clientId: 'berth',
  clientSecret: 'berth-client-secret',
  redirectUris: CONNECTOR_IDS.map((id) => `${PUBLIC_URL}/callback/${id}`),
};

const users: DevUser[] = [
  {
    username: 'alice',
    password: 'alice-pw',
    email: 'alice@example.com',
    name: 'Alice Example',
    groups: ['platform', 'team-a/backend'],
    realmRoles: ['registry-admin'],
    clientRoles: { berth: ['pusher'], 'other-app': ['not-for-berth'] },
  },
  { username: 'bob', password: 'bob-pw', email: 'bob@gmail.test', groups: ['team-b'] },
  { username: 'carol', password: 'carol-pw', email: 'carol@example.com', emailVerified: false, groups: ['platform'] },
  { username: 'dave', password: 'dave-pw', email: 'dave@example.com', groups: ['platform'], disabled: true },
];

let keycloak: DevProvider;
let google: DevProvider;
let plain: DevProvider;
const extraProviders: DevProvider[] = [];

beforeAll(async () => {
  [keycloak, google, plain] = await Promise.all([
    startDevProvider({ users, clients: [CLIENT], claimStyle: 'keycloak' }),
    startDevProvider({ users, clients: [CLIENT], claimStyle: 'google', hostedDomain: 'example.com' }),
    startDevProvider({ users, clients: [CLIENT], claimStyle: 'plain' }),
  ]);
});

afterAll(async () => {
  await Promise.all([keycloak, google, plain, ...extraProviders].filter(Boolean).map((p) => p.close()));
});

const common = (id: string, issuer: string) => ({ id, clientID: CLIENT.clientId, clientSecret: CLIENT.clientSecret, issuer, allowInsecureIssuer: true });

function keycloakConnector(id: string, extra: Record<string, unknown> = {}): OidcConnector {
  return createOidcConnector(keycloakConnectorSchema.parse({ type: 'keycloak', ...common(id, keycloak.issuer), ...extra }), { publicURL: PUBLIC_URL });
}
function googleConnector(id: string, extra: Record<string, unknown> = {}): OidcConnector {
  return createOidcConnector(googleConnectorSchema.parse({ type: 'google', ...common(id, google.issuer), ...extra }), { publicURL: PUBLIC_URL });
}
function plainConnector(id: string, extra: Record<string, unknown> = {}, issuer = plain.issuer): OidcConnector {
  return createOidcConnector(oidcConnectorSchema.parse({ type: 'oidc', ...common(id, issuer), ...extra }), { publicURL: PUBLIC_URL });
}

function newAttempt(connectorId: string): LoginAttempt {
  return {
    state: randomBytes(16).toString('base64url'),
    nonce: randomBytes(16).toString('base64url'),
    codeVerifier: randomBytes(48).toString('base64url'),
    redirectURI: `${PUBLIC_URL}/callback/${connectorId}`,
  };
}

/** A browser's worth of cookie handling: enough for one sign-in at one provider. */
class CookieJar {
  private readonly cookies = new Map<string, string>();
  store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k = '', v = ''] = a.trim().split('=');
        return (k.toLowerCase() === 'max-age' && Number(v) <= 0) || (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now());
      });
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

type SignInResult = { callback: URL } | { status: number; html: string };

/** Follows the provider's redirects and fills in its login form, stopping at Berth's callback URL. */
async function browse(start: URL, username: string, password: string): Promise<SignInResult> {
  const jar = new CookieJar();
  let url = start;
  let init: RequestInit = { method: 'GET' };
  let submitted = false;
  for (let hop = 0; hop < 20; hop++) {
    const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string>), cookie: jar.header() } });
    jar.store(res);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      const next = new URL(location, url);
      if (next.href.startsWith(`${PUBLIC_URL}/`)) return { callback: next };
      url = next;
      init = { method: 'GET' };
      continue;
    }
    const html = await res.text();
    const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
    if (res.status !== 200 || !action || submitted) return { status: res.status, html };
    submitted = true;
    url = new URL(action, url);
    init = { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username, password }).toString() };
  }
  throw new Error('too many redirects');
}

async function callbackFor(connector: OidcConnector, attempt: LoginAttempt, username: string, password = `${username}-pw`): Promise<URL> {
  const result = await browse(await connector.authorizationURL(attempt), username, password);
  if (!('callback' in result)) throw new Error(`sign-in as ${username} stopped with ${result.status}: ${result.html.slice(0, 300)}`);
  return result.callback;
}

async function signIn(connector: OidcConnector, username: string): Promise<Identity> {
  const attempt = newAttempt(connector.id);
  return connector.handleCallback(await callbackFor(connector, attempt, username), attempt);
}

describe('Keycloak preset', () => {
  it('takes full-path groups, realm roles and the client roles of its own client', async () => {
    const kc = keycloakConnector('kc');
    const attempt = newAttempt('kc');
    const authURL = await kc.authorizationURL(attempt);
    expect(authURL.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authURL.searchParams.get('state')).toBe(attempt.state);
    expect(authURL.searchParams.get('nonce')).toBe(attempt.nonce);
    expect(authURL.searchParams.get('code_challenge')).not.toBe(attempt.codeVerifier);

    const id = await kc.handleCallback(await callbackFor(kc, attempt, 'alice'), attempt);
    expect(id.connector).toBe('kc');
    expect(id.subject).toBe(keycloak.subjectOf('alice'));
    expect(id.username).toBe('alice');
    expect(id.email).toBe('alice@example.com');
    expect(id.groups).toEqual(['/platform', '/team-a/backend', 'registry-admin', 'pusher']);
    expect(id.claims).toMatchObject({ name: 'Alice Example', email_verified: true });
    expect(canRefresh(id)).toBe(true);
    expect(Object.keys(id.upstream ?? {})).toEqual(['refresh_token']);
    expect(JSON.stringify(id.claims)).not.toContain(id.upstream!.refresh_token!);
  });

  it('strips the leading slash and leaves roles out when told to', async () => {
    const id = await signIn(keycloakConnector('kc-strip', { stripGroupSlash: true, realmRoles: false, clientRoles: false }), 'alice');
    expect(id.groups).toEqual(['platform', 'team-a/backend']);
  });
});

describe('Google preset', () => {
  it('takes hd from the ID token, the email as username, and groups only from the static mapping', async () => {
    const g = googleConnector('google', { hostedDomains: ['example.com'], groups: { 'alice@example.com': ['registry-admins'] } });
    const id = await signIn(g, 'alice');
    expect(id.username).toBe('alice@example.com');
    expect(id.claims).toMatchObject({ hd: 'example.com', email_verified: true });
    expect(id.groups).toEqual(['registry-admins']);
  });

  it('refuses an unverified email', async () => {
    const g = googleConnector('google');
    await expect(signIn(g, 'carol')).rejects.toThrow(LoginRefusedError);
    await expect(signIn(g, 'carol')).rejects.toThrow(/not verified/);
  });

  it('refuses accounts outside the hostedDomains allowlist, including personal accounts', async () => {
    const other = googleConnector('google-other', { hostedDomains: ['other.org'] });
    await expect(signIn(other, 'alice')).rejects.toThrow(/example\.com are not accepted/);
    const workspaceOnly = googleConnector('google', { hostedDomains: ['example.com'] });
    await expect(signIn(workspaceOnly, 'bob')).rejects.toThrow(/personal Google accounts/);
    // Without an allowlist a personal account is fine.
    expect((await signIn(googleConnector('google'), 'bob')).username).toBe('bob@gmail.test');
  });

  it('sends the single allowed domain as a hint', async () => {
    const url = await googleConnector('google', { hostedDomains: ['example.com'] }).authorizationURL(newAttempt('google'));
    expect(url.searchParams.get('hd')).toBe('example.com');
  });
});

describe('generic OIDC', () => {
  it('reads groups as given, also through userinfo', async () => {
    const id = await signIn(plainConnector('plain'), 'alice');
    expect(id.groups).toEqual(['platform', 'team-a/backend']);
    const viaUserinfo = await signIn(plainConnector('plain-info', { userinfo: true, groupsClaim: 'groups' }), 'bob');
    expect(viaUserinfo.groups).toEqual(['team-b']);
    expect(viaUserinfo.username).toBe('bob');
  });

  it('refuses users outside allowedGroups and users missing a requiredGroups entry', async () => {
    const allowed = plainConnector('plain-allowed', { allowedGroups: ['platform', 'ops'] });
    expect((await signIn(allowed, 'alice')).username).toBe('alice');
    await expect(signIn(allowed, 'bob')).rejects.toThrow(/not a member of any group allowed/);

    const required = plainConnector('plain-required', { requiredGroups: ['platform', 'team-a/backend'] });
    expect((await signIn(required, 'alice')).groups).toContain('team-a/backend');
    await expect(signIn(required, 'carol')).rejects.toThrow(/missing required group membership: team-a\/backend/);
  });

  it('adds static groups by username and email, and they count for allowedGroups', async () => {
    const c = plainConnector('plain-static', {
      allowedGroups: ['pushers'],
      groups: { bob: ['pushers'], 'BOB@gmail.test': ['mailed'], 'carol@example.com': ['pushers'] },
    });
    expect((await signIn(c, 'bob')).groups).toEqual(['team-b', 'pushers', 'mailed']);
    // carol's email is unverified at the provider: her email-keyed mapping must not apply.
    await expect(signIn(c, 'carol')).rejects.toThrow(LoginRefusedError);
  });

  it('shows an error on the login page for a wrong password and a disabled account', async () => {
    const c = plainConnector('plain');
    const wrong = await browse(await c.authorizationURL(newAttempt('plain')), 'alice', 'nope');
    expect(wrong).toMatchObject({ status: 401 });
    expect('html' in wrong && wrong.html).toMatch(/role="alert"[^>]*>Wrong username or password/);
    const disabled = await browse(await c.authorizationURL(newAttempt('plain')), 'dave', 'dave-pw');
    expect(disabled).toMatchObject({ status: 403 });
    expect('html' in disabled && disabled.html).toMatch(/This account is disabled/);
  });

  it('refuses http issuers unless allowInsecureIssuer is set', () => {
    expect(() => createOidcConnector(oidcConnectorSchema.parse({ type: 'oidc', id: 'x', clientID: 'c', issuer: plain.issuer }), { publicURL: PUBLIC_URL })).toThrow(/allowInsecureIssuer/);
  });

  it('retries discovery after a failure instead of caching it', async () => {
    const port = await freePort();
    const late = plainConnector('late', {}, `http://127.0.0.1:${port}`);
    await expect(late.authorizationURL(newAttempt('late'))).rejects.toThrow(UpstreamUnavailableError);
    extraProviders.push(await startDevProvider({ port, users, clients: [CLIENT] }));
    expect((await signIn(late, 'alice')).username).toBe('alice');
  });
});

describe('callback validation', () => {
  const c = () => plainConnector('plain');

  it('refuses a forged state', async () => {
    const connector = c();
    const attempt = newAttempt('plain');
    const callback = await callbackFor(connector, attempt, 'alice');
    const forged = new URL(callback);
    forged.searchParams.set('state', 'attacker-chosen');
    await expect(connector.handleCallback(forged, attempt)).rejects.toThrow(LoginRefusedError);
    // The genuine callback against someone else's attempt is refused as well.
    await expect(connector.handleCallback(callback, { ...newAttempt('plain'), redirectURI: attempt.redirectURI })).rejects.toThrow(LoginRefusedError);
  });

  it('refuses a replayed callback (same code twice)', async () => {
    const connector = c();
    const attempt = newAttempt('plain');
    const callback = await callbackFor(connector, attempt, 'alice');
    expect((await connector.handleCallback(callback, attempt)).username).toBe('alice');
    await expect(connector.handleCallback(callback, attempt)).rejects.toThrow(/already used/);
  });

  it('refuses an ID token with another nonce', async () => {
    const connector = c();
    const attempt = newAttempt('plain');
    const callback = await callbackFor(connector, attempt, 'alice');
    const err = await connector.handleCallback(callback, { ...attempt, nonce: 'not-the-nonce' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoginRefusedError);
    expect((err as Error).message).toMatch(/failed validation.*nonce/);
  });

  it('refuses a missing or wrong PKCE verifier', async () => {
    const connector = c();
    const attempt = newAttempt('plain');
    const callback = await callbackFor(connector, attempt, 'alice');
    await expect(connector.handleCallback(callback, { ...attempt, codeVerifier: '' })).rejects.toThrow(LoginRefusedError);
    // A well-formed verifier that does not match the challenge: the provider itself refuses the code.
    const wrong = await connector.handleCallback(callback, { ...attempt, codeVerifier: randomBytes(48).toString('base64url') }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(LoginRefusedError);
    expect((wrong as Error).message).toMatch(/did not accept this sign-in/);
  });

  it('refuses a callback carrying an error from the provider', async () => {
    const connector = c();
    const attempt = newAttempt('plain');
    const url = new URL(`${attempt.redirectURI}?error=access_denied&state=${attempt.state}&iss=${encodeURIComponent(plain.issuer)}`);
    await expect(connector.handleCallback(url, attempt)).rejects.toThrow(LoginRefusedError);
  });
});

describe('refresh', () => {
  it('returns the groups the provider has now', async () => {
    const kc = keycloakConnector('kc');
    const id = await signIn(kc, 'alice');
    keycloak.setGroups('alice', ['platform', 'team-c']);
    keycloak.setRoles('alice', { realmRoles: [], clientRoles: { berth: ['puller'] } });
    try {
      const fresh = await kc.refresh(id);
      expect(fresh.subject).toBe(id.subject);
      expect(fresh.groups).toEqual(['/platform', '/team-c', 'puller']);
      // The provider rotates refresh tokens: the identity must carry the new one for the next check.
      expect(canRefresh(fresh)).toBe(true);
      expect(fresh.upstream!.refresh_token).not.toBe(id.upstream!.refresh_token);
      expect((await kc.refresh(fresh)).groups).toEqual(['/platform', '/team-c', 'puller']);
    } finally {
      keycloak.setGroups('alice', users[0]!.groups);
      keycloak.setRoles('alice', { realmRoles: users[0]!.realmRoles!, clientRoles: users[0]!.clientRoles! });
    }
  });

  it('revokes a user who left the allowed groups', async () => {
    const c = plainConnector('plain-allowed', { allowedGroups: ['team-b'] });
    const id = await signIn(c, 'bob');
    plain.setGroups('bob', ['elsewhere']);
    try {
      await expect(c.refresh(id)).rejects.toThrow(IdentityRevokedError);
    } finally {
      plain.setGroups('bob', ['team-b']);
    }
  });

  it('revokes a user disabled at the provider', async () => {
    const c = plainConnector('plain');
    const id = await signIn(c, 'bob');
    plain.setDisabled('bob', true);
    try {
      const err = await c.refresh(id).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IdentityRevokedError);
      expect((err as Error).message).toMatch(/refresh token refused/);
    } finally {
      plain.setDisabled('bob', false);
    }
  });

  it('reports an unreachable provider as unavailable, not revoked', async () => {
    const p = await startDevProvider({ users, clients: [CLIENT], claimStyle: 'plain' });
    extraProviders.push(p);
    const c = plainConnector('gone', {}, p.issuer);
    const id = await signIn(c, 'alice');
    await p.close();
    await expect(c.refresh(id)).rejects.toThrow(UpstreamUnavailableError);
  });

  it('leaves an identity without a refresh token unchanged', async () => {
    const c = plainConnector('plain');
    const id = await signIn(c, 'alice');
    const { upstream: _dropped, ...withoutUpstream } = id;
    expect(canRefresh(withoutUpstream)).toBe(false);
    expect(c.canRefresh(withoutUpstream)).toBe(false);
    expect(await c.refresh(withoutUpstream)).toBe(withoutUpstream);
  });
});
