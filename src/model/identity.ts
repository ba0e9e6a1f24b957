/**
 * What every identity source produces (dex-style): a stable subject, a username used as the registry
 * account, groups that become the ACL label `groups`, and opaque upstream data (refresh tokens,
 * access tokens) that is stored encrypted and never leaves the server.
 */
export interface Identity {
  /** Connector id from config (`github`, `corp-sso`, ...). */
  connector: string;
  /** Stable id at the provider: OIDC `sub`, GitHub numeric user id. */
  subject: string;
  username: string;
  email?: string;
  groups: string[];
  /** Selected claims for display and extra labels; never contains tokens. */
  claims?: Record<string, unknown>;
  /** Upstream credentials for re-checking the user later (continuous access). Server-side only. */
  upstream?: Record<string, string>;
}

/** The user no longer passes the provider's checks (disabled, removed from the allowed org/group). */
export class IdentityRevokedError extends Error {
  override name = 'IdentityRevokedError';
}

/** The provider could not be reached or answered with a server error: grace rules apply. */
export class UpstreamUnavailableError extends Error {
  override name = 'UpstreamUnavailableError';
}

/** The sign-in attempt itself is invalid (forged state, replayed code, bad ID token, not allowed). */
export class LoginRefusedError extends Error {
  override name = 'LoginRefusedError';
}
