import { claimAtPath, displayClaims, nonEmptyString, stringList, type ClaimSet } from './claims.js';
import type { GoogleConnectorConfig, KeycloakConnectorConfig, OidcConnectorConfig } from '../../config/connectors-oidc.js';

export type AnyOidcConfig = OidcConnectorConfig | KeycloakConnectorConfig | GoogleConnectorConfig;

/** The user does not pass this connector's rules; `message` is safe to show to them. */
export class AccessDeniedError extends Error {
  override name = 'AccessDeniedError';
}

export interface MappedIdentity {
  username: string;
  email: string | undefined;
  groups: string[];
  claims: Record<string, unknown>;
}

function unique(names: string[]): string[] {
  return [...new Set(names)];
}

function recordAt(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>)[key] : undefined;
}

/**
 * Username from the configured claim, else the email. An email the provider marks as unverified could
 * belong to someone else, so it never becomes a registry account name.
 */
function usernameFrom(claims: ClaimSet, usernameClaim: string): string {
  const fromClaim = nonEmptyString(claimAtPath(claims, usernameClaim));
  if (fromClaim) return fromClaim;
  const email = nonEmptyString(claims.email);
  if (!email) throw new AccessDeniedError(`The identity provider sent neither a '${usernameClaim}' nor an 'email' claim, so Berth cannot name your account.`);
  if (claims.email_verified === false) throw new AccessDeniedError('The identity provider has not verified your email address, which would be your username here.');
  return email;
}

function keycloakGroups(cfg: KeycloakConnectorConfig, claims: ClaimSet): string[] {
  const paths = stringList(claimAtPath(claims, cfg.groupsClaim));
  const groups = cfg.stripGroupSlash ? paths.map((g) => g.replace(/^\//, '')).filter((g) => g !== '') : paths;
  if (cfg.realmRoles) groups.push(...stringList(recordAt(claims.realm_access, 'roles')));
  // Client ids often contain dots, so this is a direct key lookup rather than a dotted path.
  if (cfg.clientRoles) groups.push(...stringList(recordAt(recordAt(claims.resource_access, cfg.clientID), 'roles')));
  return groups;
}

/**
 * Google's `hd` and `email_verified` are trusted only from the ID token: userinfo answers are not
 * signed and Google documents the ID token as the place to check the hosted domain.
 */
function googleIdentity(cfg: GoogleConnectorConfig, idToken: ClaimSet): { username: string; email: string } {
  const email = nonEmptyString(idToken.email);
  if (!email) throw new AccessDeniedError("Google did not share your email address; allow the 'email' scope and try again.");
  if (idToken.email_verified !== true) throw new AccessDeniedError('Google reports that your email address is not verified.');
  if (cfg.hostedDomains !== undefined) {
    const hd = nonEmptyString(idToken.hd)?.toLowerCase();
    if (!hd) throw new AccessDeniedError('Sign in with a Google Workspace account from an allowed domain; personal Google accounts are not accepted here.');
    if (!cfg.hostedDomains.some((d) => d.toLowerCase() === hd)) throw new AccessDeniedError(`Google Workspace accounts from ${hd} are not accepted here.`);
  }
  return { username: email.toLowerCase(), email: email.toLowerCase() };
}

/** Static groups by username or (verified) email, matched case-insensitively. */
function staticGroups(cfg: AnyOidcConfig, username: string, email: string | undefined, emailTrusted: boolean): string[] {
  if (!cfg.groups) return [];
  const keys = new Set([username.toLowerCase()]);
  if (email && emailTrusted) keys.add(email.toLowerCase());
  return Object.entries(cfg.groups).flatMap(([who, groups]) => (keys.has(who.toLowerCase()) ? groups : []));
}

/**
 * An empty allowedGroups list lets nobody in: an allowlist that was emptied by mistake should lock
 * the door, not open it.
 */
function checkGroups(cfg: AnyOidcConfig, groups: string[]): void {
  const have = new Set(groups);
  if (cfg.allowedGroups !== undefined && !cfg.allowedGroups.some((g) => have.has(g))) {
    throw new AccessDeniedError('Your account is not a member of any group allowed to sign in here.');
  }
  const missing = (cfg.requiredGroups ?? []).filter((g) => !have.has(g));
  if (missing.length > 0) throw new AccessDeniedError(`Your account is missing required group membership: ${missing.join(', ')}.`);
}

/**
 * Turns validated claims into Berth's view of the user and applies the connector's access rules.
 * `claims` is the ID token merged with userinfo (when used); `idToken` is the ID token alone.
 */
export function mapIdentity(cfg: AnyOidcConfig, claims: ClaimSet, idToken: ClaimSet): MappedIdentity {
  let username: string;
  let email: string | undefined;
  let groups: string[];
  if (cfg.type === 'google') {
    ({ username, email } = googleIdentity(cfg, idToken));
    groups = [];
  } else {
    username = usernameFrom(claims, cfg.usernameClaim);
    email = nonEmptyString(claims.email);
    groups = cfg.type === 'keycloak' ? keycloakGroups(cfg, claims) : stringList(claimAtPath(claims, cfg.groupsClaim));
  }
  const emailTrusted = cfg.type === 'google' || claims.email_verified !== false;
  groups = unique([...groups, ...staticGroups(cfg, username, email, emailTrusted)]);
  checkGroups(cfg, groups);
  const shown = displayClaims(cfg.type === 'google' ? { ...claims, hd: idToken.hd, email_verified: idToken.email_verified } : claims);
  return { username, email, groups, claims: shown };
}
