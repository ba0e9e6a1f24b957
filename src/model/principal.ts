/** How the caller proved who they are; also the `kind` label in metrics and audit events. */
export type CredentialKind = 'anonymous' | 'static' | 'pat' | 'robot' | 'federated' | 'refresh';

/** A narrowing a credential carries on top of the ACL (PATs, robots): patterns over names + actions. */
export interface Restriction {
  repositories: string[];
  actions: string[];
}

/** The authenticated caller of the token endpoint, whatever the credential was. */
export interface Principal {
  account: string;
  kind: CredentialKind;
  labels: Record<string, string[]>;
  restriction?: Restriction;
  /** The credential the request rests on (a PAT id): refresh tokens issued from it die with it. */
  credentialId?: string;
  /** Caps the registry token's lifetime below token.expiration (federation's maxTokenTTL). */
  tokenTTLSeconds?: number;
  /**
   * Until when (ms epoch) an identical repeated request may get the same answer: the credential's
   * expiry or the account's next re-check at the provider. 0 = never reuse.
   */
  reusableUntil?: number;
  /** When (ms epoch) the credential was really verified, not recalled: reuse counts from here. */
  verifiedAt?: number;
}

/** Wrong or unusable credentials: answered 401 with a Basic challenge. */
export class AuthenticationError extends Error {
  override name = 'AuthenticationError';
}
