import type { CallbackConnector, LoginAttempt } from '../connector.js';
import { redirectURIFor } from '../redirect-uri.js';
import { IdentityRevokedError, LoginRefusedError, type Identity } from '../../model/identity.js';
import { constantTimeEqual } from '../../util/secret.js';
import { githubAPIRoot, githubWebRoot } from './api-root.js';
import { GithubAnswerIncomplete, GithubHttp } from './http.js';
import { membershipGroups } from './membership.js';
import { authorizeURL, exchangeCode } from './oauth.js';
import { fetchProfile, GithubCredentialsRejected, type GithubProfile } from './profile.js';
import type { GithubConnectorConfig } from '../../config/connectors-github.js';

export { githubAPIRoot, githubWebRoot } from './api-root.js';
export { GITHUB_SCOPES, pkceChallenge } from './oauth.js';
export { githubConnectorSchema, type GithubConnectorConfig } from '../../config/connectors-github.js';

export interface GithubConnectorEnv {
  publicURL: string;
  fetch?: typeof fetch;
  /** Per request to GitHub; default 5 s. */
  timeoutMs?: number;
}

export interface GithubConnector extends CallbackConnector {
  readonly type: 'github';
  /** Where GitHub sends the browser back when the attempt does not name a redirect URI. */
  readonly defaultRedirectURI: string;
  refresh(identity: Identity): Promise<Identity>;
}

/** Upstream keys in Identity.upstream. */
export const UPSTREAM_ACCESS_TOKEN = 'accessToken';
export const UPSTREAM_SCOPE = 'scope';

export function createGithubConnector(cfg: GithubConnectorConfig, env: GithubConnectorEnv): GithubConnector {
  const clientSecret = cfg.clientSecret;
  const webRoot = githubWebRoot(cfg);
  const f = env.fetch ?? globalThis.fetch;
  const timeoutMs = env.timeoutMs ?? 5000;
  const http = new GithubHttp({ apiRoot: githubAPIRoot(cfg), fetch: f, timeoutMs });
  const loadTeams = cfg.loadTeams ?? true;
  const defaultRedirectURI = redirectURIFor(cfg, env.publicURL);
  const redirectFor = (attempt: LoginAttempt) => attempt.redirectURI || defaultRedirectURI;

  function toIdentity(p: GithubProfile, groups: string[], upstream: Record<string, string>): Identity {
    return {
      connector: cfg.id,
      subject: String(p.id),
      username: p.login,
      ...(p.email ? { email: p.email } : {}),
      groups,
      claims: {
        login: p.login,
        ...(p.name ? { name: p.name } : {}),
        ...(p.htmlURL ? { profile: p.htmlURL } : {}),
        teamsReadable: p.teamsReadable,
      },
      upstream,
    };
  }

  return {
    id: cfg.id,
    type: 'github',
    name: cfg.name ?? 'GitHub',
    defaultRedirectURI,

    async authorizationURL(attempt) {
      return authorizeURL({ webRoot, clientID: cfg.clientID, redirectURI: redirectFor(attempt), state: attempt.state, codeVerifier: attempt.codeVerifier });
    },

    async handleCallback(callbackURL, attempt) {
      const q = callbackURL.searchParams;
      const state = q.get('state');
      if (!state || !attempt.state || !constantTimeEqual(state, attempt.state)) throw new LoginRefusedError('sign-in state does not match this attempt');
      const error = q.get('error');
      if (error) throw new LoginRefusedError(`GitHub did not complete the sign-in: ${q.get('error_description') ?? error}`);
      const code = q.get('code');
      if (!code) throw new LoginRefusedError('GitHub callback carries no code');
      const token = await exchangeCode({
        webRoot,
        clientID: cfg.clientID,
        clientSecret,
        code,
        redirectURI: redirectFor(attempt),
        codeVerifier: attempt.codeVerifier,
        fetch: f,
        timeoutMs,
      });
      let profile: GithubProfile;
      try {
        profile = await fetchProfile(http, token.accessToken, { loadTeams });
      } catch (e) {
        if (e instanceof GithubCredentialsRejected) throw new LoginRefusedError(`GitHub rejected the new access token: ${e.message}`);
        // Retrying will not help, and signing in with part of the memberships could widen access.
        if (e instanceof GithubAnswerIncomplete) throw new LoginRefusedError(e.message);
        throw e;
      }
      const m = membershipGroups(profile, cfg.allowedOrgs);
      if (!m.ok) throw new LoginRefusedError(m.reason);
      return toIdentity(profile, m.groups, { [UPSTREAM_ACCESS_TOKEN]: token.accessToken, [UPSTREAM_SCOPE]: token.scope });
    },

    async refresh(identity) {
      const token = identity.upstream?.[UPSTREAM_ACCESS_TOKEN];
      if (!token) throw new IdentityRevokedError('no stored GitHub token to re-check the user with');
      let profile: GithubProfile;
      try {
        profile = await fetchProfile(http, token, { loadTeams });
      } catch (e) {
        if (e instanceof GithubCredentialsRejected) throw new IdentityRevokedError('GitHub no longer accepts the stored token (revoked, or the user was suspended)');
        throw e;
      }
      if (String(profile.id) !== identity.subject) throw new IdentityRevokedError('the stored GitHub token now belongs to a different user');
      const m = membershipGroups(profile, cfg.allowedOrgs);
      if (!m.ok) throw new IdentityRevokedError(m.reason === 'not a member of an allowed organization' ? 'no longer a member of an allowed organization' : m.reason);
      return toIdentity(profile, m.groups, { ...identity.upstream, [UPSTREAM_ACCESS_TOKEN]: token });
    },
  };
}
