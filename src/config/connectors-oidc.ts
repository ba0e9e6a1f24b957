import { z } from 'zod';

const common = {
  id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'lowercase letters, digits and dashes'),
  name: z.string().optional(),
  clientID: z.string().min(1),
  clientSecret: z.string().optional(),
  redirectURL: z.string().url().optional(),
  allowedGroups: z.array(z.string()).optional(),
  requiredGroups: z.array(z.string()).optional(),
  /** Static extra groups by email or username (Google without Cloud Identity, say). */
  groups: z.record(z.string(), z.array(z.string())).optional(),
  /**
   * Put before this connector's usernames and groups (`gh:` → account `gh:alice`, group `gh:platform`).
   * Required on all but one connector when there are several: see src/identity/account-names.ts.
   */
  accountPrefix: z.string().default(''),
  /**
   * Sign-out also ends the session at the provider (RP-initiated logout) when its discovery document
   * names an end_session_endpoint. The provider must accept `<publicURL>/signed-out` as a
   * post-logout redirect URI for this client; `false` ends only Berth's session (the next sign-in
   * then asks the provider with prompt=login).
   */
  endSession: z.boolean().default(true),
};

export const oidcConnectorSchema = z.strictObject({
  type: z.literal('oidc'),
  ...common,
  issuer: z.string().url(),
  scopes: z.array(z.string()).default(['openid', 'profile', 'email', 'groups']),
  usernameClaim: z.string().default('preferred_username'),
  groupsClaim: z.string().default('groups'),
  userinfo: z.boolean().default(false),
  /** Loopback issuers over plain http are allowed only with this (the demo and tests). */
  allowInsecureIssuer: z.boolean().default(false),
});

export const keycloakConnectorSchema = z.strictObject({
  type: z.literal('keycloak'),
  ...common,
  issuer: z.string().url(),
  scopes: z.array(z.string()).default(['openid', 'profile', 'email']),
  usernameClaim: z.string().default('preferred_username'),
  groupsClaim: z.string().default('groups'),
  stripGroupSlash: z.boolean().default(false),
  realmRoles: z.boolean().default(true),
  clientRoles: z.boolean().default(true),
  userinfo: z.boolean().default(false),
  allowInsecureIssuer: z.boolean().default(false),
});

export const googleConnectorSchema = z.strictObject({
  type: z.literal('google'),
  ...common,
  issuer: z.string().url().default('https://accounts.google.com'),
  scopes: z.array(z.string()).default(['openid', 'profile', 'email']),
  /** Accepted Workspace domains (the ID token's `hd`); absent: any Google account. */
  hostedDomains: z.array(z.string()).optional(),
  /**
   * Ask Google for a refresh token (access_type=offline, prompt=consent) so that continuous access can
   * re-check the account; costs a consent screen at every sign-in.
   */
  offlineAccess: z.boolean().default(false),
  allowInsecureIssuer: z.boolean().default(false),
});

export type OidcConnectorConfig = z.infer<typeof oidcConnectorSchema>;
export type KeycloakConnectorConfig = z.infer<typeof keycloakConnectorSchema>;
export type GoogleConnectorConfig = z.infer<typeof googleConnectorSchema>;
