import type { Identity } from '../model/identity.js';

/** Per-attempt secrets Berth keeps server-side (single use) between redirect and callback. */
export interface LoginAttempt {
  state: string;
  nonce: string;
  codeVerifier: string;
  redirectURI: string;
}

/**
 * A browser sign-in source. Each type lives in its own folder under src/connectors and is built by
 * src/connectors/index.ts from its config entry.
 */
export interface CallbackConnector {
  readonly id: string;
  readonly type: string;
  readonly name: string;
  /**
   * Where to send the browser. May perform discovery (cached). `forceLogin`: the person signed out of
   * Berth in this browser a moment ago, so the provider should ask for credentials again rather than
   * sign the same person in silently (OIDC `prompt=login`); connectors that cannot ask ignore it.
   */
  authorizationURL(attempt: LoginAttempt, options?: { forceLogin?: boolean }): Promise<URL>;
  /** Validates the callback (state, PKCE, nonce, ID token...) and returns who signed in. */
  handleCallback(callbackURL: URL, attempt: LoginAttempt): Promise<Identity>;
  /**
   * Re-checks a user at the provider with the stored upstream data. Throws IdentityRevokedError when
   * the user lost access, UpstreamUnavailableError when the provider cannot be asked now. Absent when
   * the connector cannot re-check (then login-time groups are kept until the PAT expires).
   */
  refresh?(identity: Identity): Promise<Identity>;
  /**
   * RP-initiated logout: where to send the browser after Berth ended its own session, so that the
   * provider ends its session too and then returns to `postLogoutRedirectURI`. Resolves to null when
   * the provider has no end-session endpoint. Absent when the connector has no such notion.
   */
  logoutURL?(opts: { postLogoutRedirectURI: string }): Promise<URL | null>;
}

/**
 * A source that checks a username and password itself (dex's password connector): the static
 * `users:` of the config file. Its users are read from the running configuration on every use, so
 * removing one (and reloading) ends their sessions and PATs at once; there is no provider to ask and
 * nothing to cache.
 */
export interface PasswordConnector {
  readonly id: string;
  readonly type: string;
  readonly name: string;
  /** Verifies the pair (through the credential gate: lockouts, failure counts); throws AuthenticationError. */
  login(username: string, password: string, clientIp: string): Promise<Identity>;
  /** The identity as the configuration has it now; throws IdentityRevokedError when the user is gone. */
  current(identity: Identity): Identity;
}

export type Connector = CallbackConnector | PasswordConnector;

export function isPasswordConnector(c: Connector): c is PasswordConnector {
  return 'login' in c;
}
