import * as oidc from 'openid-client';
import type { CallbackConnector, LoginAttempt } from '../connector.js';
import { redirectURIFor } from '../redirect-uri.js';
import { IdentityRevokedError, LoginRefusedError, UpstreamUnavailableError, type Identity } from '../../model/identity.js';
import { constantTimeEqual } from '../../util/secret.js';
import type { ClaimSet } from './claims.js';
import { assertIssuerAllowed, lazyDiscovery } from './discovery.js';
import { AccessDeniedError, mapIdentity, type AnyOidcConfig } from './identity-mapping.js';
import { classifyUpstreamError } from './upstream-errors.js';

export type { GoogleConnectorConfig, KeycloakConnectorConfig, OidcConnectorConfig } from '../../config/connectors-oidc.js';
export type { AnyOidcConfig } from './identity-mapping.js';

export interface OidcConnectorEnv {
  publicURL: string;
  fetch?: typeof fetch;
}

export interface OidcConnector extends CallbackConnector {
  readonly type: 'oidc' | 'keycloak' | 'google';
  /** Used when neither the config (`redirectURL`) nor the attempt names one. */
  readonly defaultRedirectURI: string;
  refresh(identity: Identity): Promise<Identity>;
  /** Whether refresh() can re-check this identity (see canRefresh). */
  canRefresh(identity: Identity): boolean;
}

/** The key in Identity.upstream; the only upstream datum kept (access and ID tokens are dropped). */
const REFRESH_TOKEN = 'refresh_token';

/**
 * True when the identity carries a refresh token. Without one the provider cannot be asked again:
 * refresh() then returns the identity unchanged, and the caller keeps the sign-in groups until the
 * user signs in again. Generic OIDC providers usually issue refresh tokens only for the
 * `offline_access` scope; Keycloak issues them by default; the Google preset needs `offlineAccess`.
 */
export function canRefresh(identity: Identity): boolean {
  return typeof identity.upstream?.[REFRESH_TOKEN] === 'string' && identity.upstream[REFRESH_TOKEN] !== '';
}

const DEFAULT_NAMES = { oidc: 'OpenID Connect', keycloak: 'Keycloak', google: 'Google' } as const;

function authorizationParameters(cfg: AnyOidcConfig, forceLogin: boolean): Record<string, string> {
  if (cfg.type !== 'google') return forceLogin ? { prompt: 'login' } : {};
  const params: Record<string, string> = {};
  // Google issues a refresh token only for access_type=offline, and reliably only with prompt=consent.
  // It has no prompt=login; after a sign-out its account chooser stands in.
  const prompt = [...(forceLogin ? ['select_account'] : []), ...(cfg.offlineAccess ? ['consent'] : [])];
  if (cfg.offlineAccess) params.access_type = 'offline';
  if (prompt.length) params.prompt = prompt.join(' ');
  // A hint only (Google's account chooser); the hd claim is what is enforced.
  if (cfg.hostedDomains?.length === 1) params.hd = cfg.hostedDomains[0]!;
  return params;
}

export function createOidcConnector(cfg: AnyOidcConfig, env: OidcConnectorEnv): OidcConnector {
  assertIssuerAllowed(cfg.issuer, cfg.allowInsecureIssuer);
  const configuration = lazyDiscovery({
    issuer: cfg.issuer,
    clientID: cfg.clientID,
    clientSecret: cfg.clientSecret,
    allowInsecureIssuer: cfg.allowInsecureIssuer,
    fetch: env.fetch,
  });
  const name = cfg.name ?? DEFAULT_NAMES[cfg.type];
  const defaultRedirectURI = redirectURIFor(cfg, env.publicURL);
  const redirectFor = (attempt: LoginAttempt) => attempt.redirectURI || defaultRedirectURI;
  const useUserinfo = cfg.type !== 'google' && cfg.userinfo;

  const discover = async (): Promise<oidc.Configuration> => {
    try {
      return await configuration();
    } catch (err) {
      throw new UpstreamUnavailableError(`${name}: discovery at ${cfg.issuer} failed (${classifyUpstreamError(err).detail})`);
    }
  };

  /** ID token claims merged with userinfo when configured; the ID token's sub/iss/aud stay authoritative. */
  const collectClaims = async (config: oidc.Configuration, idToken: ClaimSet, accessToken: string): Promise<ClaimSet> => {
    if (!useUserinfo) return idToken;
    const info = await oidc.fetchUserInfo(config, accessToken, String(idToken.sub));
    return { ...info, ...pick(idToken, ['sub', 'iss', 'aud', 'azp', 'nonce']) };
  };

  const toIdentity = (subject: string, claims: ClaimSet, idToken: ClaimSet, refreshToken: string | undefined): Identity => {
    const mapped = mapIdentity(cfg, claims, idToken);
    return {
      connector: cfg.id,
      subject,
      username: mapped.username,
      ...(mapped.email !== undefined ? { email: mapped.email } : {}),
      groups: mapped.groups,
      claims: mapped.claims,
      ...(refreshToken ? { upstream: { [REFRESH_TOKEN]: refreshToken } } : {}),
    };
  };

  return {
    id: cfg.id,
    type: cfg.type,
    name,
    defaultRedirectURI,

    async authorizationURL(attempt, options) {
      const config = await discover();
      return oidc.buildAuthorizationUrl(config, {
        ...authorizationParameters(cfg, options?.forceLogin === true),
        redirect_uri: redirectFor(attempt),
        response_type: 'code',
        scope: cfg.scopes.join(' '),
        state: attempt.state,
        nonce: attempt.nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(attempt.codeVerifier),
        code_challenge_method: 'S256',
      });
    },

    async handleCallback(callbackURL, attempt) {
      const returned = callbackURL.searchParams.get('state') ?? '';
      // Berth looks the attempt up by state already; checking again here keeps the connector safe alone.
      if (!attempt.state || !constantTimeEqual(returned, attempt.state)) throw new LoginRefusedError('The sign-in response does not belong to this sign-in attempt. Please start again.');
      if (!attempt.codeVerifier || !attempt.nonce) throw new LoginRefusedError('This sign-in attempt is incomplete. Please start again.');
      const config = await discover();
      // The token request must repeat the redirect_uri of the authorization request, whatever URL
      // the callback reached Berth under (proxies rewrite hosts and paths).
      const current = new URL(redirectFor(attempt));
      current.search = callbackURL.search;
      try {
        const tokens = await oidc.authorizationCodeGrant(config, current, {
          pkceCodeVerifier: attempt.codeVerifier,
          expectedState: attempt.state,
          expectedNonce: attempt.nonce,
          idTokenExpected: true,
        });
        const idToken = tokens.claims();
        if (!idToken) throw new LoginRefusedError(`${name} returned no ID token.`);
        const claims = await collectClaims(config, idToken, tokens.access_token);
        return toIdentity(idToken.sub, claims, idToken, tokens.refresh_token);
      } catch (err) {
        if (err instanceof AccessDeniedError) throw new LoginRefusedError(err.message);
        if (err instanceof LoginRefusedError) throw err;
        const failure = classifyUpstreamError(err);
        if (failure.kind === 'unavailable') throw new UpstreamUnavailableError(`${name} could not be reached to finish the sign-in (${failure.detail})`);
        if (failure.kind === 'invalid_grant') throw new LoginRefusedError(`${name} did not accept this sign-in (the code expired, was already used, or belongs to another attempt). Please start again.`);
        throw new LoginRefusedError(`${name}'s sign-in response failed validation (${failure.detail}). Please start again.`);
      }
    },

    canRefresh,

    async logoutURL({ postLogoutRedirectURI }) {
      if (!cfg.endSession) return null;
      const config = await discover();
      // Discovery metadata names the endpoint (OpenID Connect RP-Initiated Logout 1.0); without it
      // only Berth's session ends and the next sign-in asks with prompt=login instead.
      if (!config.serverMetadata().end_session_endpoint) return null;
      // No id_token_hint: Berth keeps no ID tokens, so client_id identifies the client and the
      // provider may ask the person to confirm.
      return oidc.buildEndSessionUrl(config, { client_id: cfg.clientID, post_logout_redirect_uri: postLogoutRedirectURI });
    },

    async refresh(identity) {
      const refreshToken = identity.upstream?.[REFRESH_TOKEN];
      if (!refreshToken) return identity;
      const config = await discover();
      try {
        const tokens = await oidc.refreshTokenGrant(config, refreshToken);
        const next = tokens.refresh_token ?? refreshToken;
        const idToken = tokens.claims();
        if (idToken) {
          if (idToken.sub !== identity.subject) throw new IdentityRevokedError(`${name} answered for another subject`);
          return toIdentity(identity.subject, await collectClaims(config, idToken, tokens.access_token), idToken, next);
        }
        // Providers may omit the ID token on refresh; userinfo (bound to the subject) stands in.
        // What only an ID token can vouch for (Google's hd) carries over from sign-in: an account's
        // hosted domain does not change under the same subject.
        const info: ClaimSet = await oidc.fetchUserInfo(config, tokens.access_token, identity.subject);
        return toIdentity(identity.subject, info, { ...info, hd: identity.claims?.hd, email_verified: info.email_verified ?? identity.claims?.email_verified }, next);
      } catch (err) {
        if (err instanceof IdentityRevokedError) throw err;
        if (err instanceof AccessDeniedError) throw new IdentityRevokedError(err.message);
        const failure = classifyUpstreamError(err);
        if (failure.kind === 'invalid_grant') throw new IdentityRevokedError(`${name} no longer accepts the session (refresh token refused)`);
        if (failure.kind === 'rejected') throw new IdentityRevokedError(`${name}'s answer failed validation (${failure.detail})`);
        throw new UpstreamUnavailableError(`${name} could not be asked (${failure.detail})`);
      }
    },
  };
}

function pick(claims: ClaimSet, keys: string[]): ClaimSet {
  return Object.fromEntries(keys.filter((k) => claims[k] !== undefined).map((k) => [k, claims[k]]));
}
