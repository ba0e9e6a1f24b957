import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOidcConnector } from '../../src/connectors/oidc/index.js';
import { googleConnectorSchema, oidcConnectorSchema } from '../../src/config/connectors-oidc.js';
import { startDevProvider, type DevProvider } from '../../src/demo/dev-provider.js';

// Issue 13 item 3 at the connector: the end-session URL comes from discovery, and a sign-in right
// after a sign-out asks the provider to log the person in again.

const PUBLIC_URL = 'http://127.0.0.1:5999';
let withLogout: DevProvider;
let without: DevProvider;

beforeAll(async () => {
  const clients = [{ clientId: 'berth', clientSecret: 's', redirectUris: [`${PUBLIC_URL}/callback/x`], postLogoutRedirectUris: [`${PUBLIC_URL}/signed-out`] }];
  const users = [{ username: 'u', password: 'p', email: 'u@example.test', groups: [] }];
  withLogout = await startDevProvider({ users, clients });
  without = await startDevProvider({ users, clients, endSession: false });
});

afterAll(async () => {
  await withLogout?.close();
  await without?.close();
});

const oidc = (issuer: string, extra: Record<string, unknown> = {}) =>
  createOidcConnector(oidcConnectorSchema.parse({ type: 'oidc', id: 'x', clientID: 'berth', clientSecret: 's', issuer, allowInsecureIssuer: true, ...extra }), { publicURL: PUBLIC_URL });
const attempt = { state: 'st', nonce: 'no', codeVerifier: 'v'.repeat(43), redirectURI: `${PUBLIC_URL}/callback/x` };

describe('RP-initiated logout URL', () => {
  it("is the discovered end_session_endpoint with client_id and Berth's /signed-out", async () => {
    const url = (await oidc(withLogout.issuer).logoutURL!({ postLogoutRedirectURI: `${PUBLIC_URL}/signed-out` }))!;
    expect(`${url.origin}${url.pathname}`).toBe(`${withLogout.issuer}/session/end`);
    expect(url.searchParams.get('client_id')).toBe('berth');
    expect(url.searchParams.get('post_logout_redirect_uri')).toBe(`${PUBLIC_URL}/signed-out`);
    // The provider accepts the request (unregistered redirect URIs get an error page instead).
    const page = await fetch(url);
    expect(page.status).toBe(200);
    const body = await page.text();
    expect(body).not.toMatch(/error|not registered|invalid/i);
    expect(body).toContain('/session/end/confirm');
    const elsewhere = (await oidc(withLogout.issuer).logoutURL!({ postLogoutRedirectURI: 'http://127.0.0.1:5999/elsewhere' }))!;
    expect((await fetch(elsewhere)).status).toBe(400);
  });

  it('is null without an end-session endpoint, or with endSession: false', async () => {
    expect(await oidc(without.issuer).logoutURL!({ postLogoutRedirectURI: `${PUBLIC_URL}/signed-out` })).toBeNull();
    expect(await oidc(withLogout.issuer, { endSession: false }).logoutURL!({ postLogoutRedirectURI: `${PUBLIC_URL}/signed-out` })).toBeNull();
  });
});

describe('the authorization request after a sign-out', () => {
  it('asks for prompt=login, and only then', async () => {
    const c = oidc(withLogout.issuer);
    expect((await c.authorizationURL(attempt, { forceLogin: true })).searchParams.get('prompt')).toBe('login');
    expect((await c.authorizationURL(attempt)).searchParams.get('prompt')).toBeNull();
  });

  it('Google (no prompt=login) gets its account chooser, alongside consent for offline access', async () => {
    const g = createOidcConnector(googleConnectorSchema.parse({ type: 'google', id: 'g', clientID: 'berth', clientSecret: 's', issuer: withLogout.issuer, allowInsecureIssuer: true, offlineAccess: true }), { publicURL: PUBLIC_URL });
    expect((await g.authorizationURL(attempt, { forceLogin: true })).searchParams.get('prompt')).toBe('select_account consent');
    expect((await g.authorizationURL(attempt)).searchParams.get('prompt')).toBe('consent');
  });
});
