import type { Logger } from 'pino';
import type { CredentialVerifier } from '../identity/credentials.js';
import { AuthenticationError, type Principal } from '../model/principal.js';
import { loggableUsername } from '../log.js';
import { durationToSeconds } from '../config/duration.js';
import { resolve } from 'node:path';
import type { JSONWebKeySet } from 'jose';
import { ALLOWED_ALGORITHMS, IdTokenRejectedError, IssuerKeys, IssuerUnavailableError, LEEWAY_SECONDS, readJwksFile } from './issuer-keys.js';
import { jwtHeader, unverifiedClaims } from './jwt-shape.js';
import { compilePolicy, evaluatePolicy, type Policy } from './policy.js';
import { ANY_POLICY_USER, federationProblems, type FederationPolicyConfig } from '../config/federation.js';

export interface FederationOptions {
  /** token.expiration: the lifetime a policy's maxTokenTTL can only shorten. */
  tokenTTLSeconds: number;
  log?: Logger;
  /** Where a relative jwksFile is found: the configuration file's directory. */
  baseDir?: string;
}

const MESSAGE_MAX = 1500;

/** An age for a message: "365 days", "120 minutes", "30 seconds". */
function describeAge(seconds: number): string {
  if (seconds >= 2 * 86400) return `${Math.floor(seconds / 86400)} days`;
  if (seconds >= 120) return `${Math.floor(seconds / 60)} minutes`;
  return `${seconds} seconds`;
}
const quote = (s: string) => JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}…` : s);

/**
 * Keyless CI: a job's OIDC ID token (GitHub Actions, GitLab CI, …) is the password. The token is
 * verified against its issuer's published keys; then the first configured policy for that issuer
 * whose audience and claim conditions all hold names the account and labels. Nothing is stored:
 * when the registry token runs out the job asks its platform for a new ID token.
 */
/**
 * An issuer's keys could not be fetched: the ID token is neither good nor bad yet. The HTTP layer
 * answers 503 with Retry-After (src/http/errors.ts).
 */
export class FederationUnavailableError extends Error {
  override name = 'FederationUnavailableError';
  readonly retryAfterSeconds = 5;
}

export class FederationVerifier implements CredentialVerifier {
  readonly kind = 'federated' as const;
  /** Lets a policy shorten the registry token of the request it decided (see RequestLifetimes). */
  private readonly policies: Policy[];
  private readonly byId = new Map<string, Policy>();
  private readonly issuers = new Map<string, { keys: IssuerKeys; policies: Policy[] }>();
  /** Per policy id: maxTokenAge in seconds, and as configured (for messages). */
  private readonly maxAge = new Map<string, { seconds: number; shown: string }>();

  constructor(
    configs: readonly FederationPolicyConfig[],
    private readonly opts: FederationOptions,
  ) {
    const problems = federationProblems(configs);
    if (problems.length) throw new Error(problems.join('; '));
    this.policies = configs.map((c) => compilePolicy(c, opts.tokenTTLSeconds));
    configs.forEach((c, i) => {
      const policy = this.policies[i]!;
      this.byId.set(policy.id, policy);
      this.maxAge.set(policy.id, { seconds: durationToSeconds(c.maxTokenAge), shown: typeof c.maxTokenAge === 'number' ? `${c.maxTokenAge}s` : c.maxTokenAge });
      if (this.issuers.has(c.issuer)) return;
      // One key set per issuer: the policies agree on where it is (federationProblems), and the
      // most eager of them sets how soon an unknown kid may trigger a re-read.
      const same = configs.filter((x) => x.issuer === c.issuer);
      const cooldownSeconds = Math.min(...same.map((x) => durationToSeconds(x.jwksCooldown)));
      const jwksFile = c.jwksFile === undefined ? undefined : resolve(opts.baseDir ?? '.', c.jwksFile);
      if (jwksFile !== undefined) readJwksFile(jwksFile); // a missing or broken file stops start-up, not the first pull
      const onKeyFileError = (message: string) => opts.log?.warn({ issuer: c.issuer, err: message }, 'federation: key set file');
      const keys = new IssuerKeys({ issuer: c.issuer, jwksURI: c.jwksURI, allowInsecureIssuer: c.allowInsecureIssuer, cooldownSeconds, jwksFile, jwks: c.jwks as JSONWebKeySet | undefined }, onKeyFileError);
      this.issuers.set(c.issuer, { keys, policies: this.policies.filter((p) => p.issuer === c.issuer) });
    });
  }

  accepts(password: string): boolean {
    return this.policies.length > 0 && jwtHeader(password) !== null;
  }

  async verify(user: string | null, password: string): Promise<Principal> {
    const username = user ?? '';
    const chosen = username === ANY_POLICY_USER ? null : this.byId.get(username);
    if (username !== ANY_POLICY_USER && !chosen) {
      throw new AuthenticationError(`an ID token is accepted with the user name "${ANY_POLICY_USER}" or the id of a federation policy, not ${quote(loggableUsername(username) ?? '')}`);
    }
    const alg = jwtHeader(password)?.alg;
    if (typeof alg !== 'string' || !(ALLOWED_ALGORITHMS as readonly string[]).includes(alg)) {
      throw new AuthenticationError(`the ID token's algorithm ${quote(String(alg))} is not accepted (allowed: ${ALLOWED_ALGORITHMS.join(', ')})`);
    }
    const iss = unverifiedClaims(password)?.iss;
    if (typeof iss !== 'string' || !iss) throw new AuthenticationError('the ID token has no iss claim');
    const issuer = this.issuers.get(iss);
    if (!issuer) throw new AuthenticationError(`issuer ${quote(iss)} is not configured for federation`);
    if (chosen && chosen.issuer !== iss) throw new AuthenticationError(`federation policy ${chosen.id} does not trust issuer ${quote(iss)}`);

    let claims: Record<string, unknown>;
    try {
      claims = await issuer.keys.verify(password);
    } catch (e) {
      if (e instanceof IdTokenRejectedError) throw new AuthenticationError(`${e.message} (issuer ${quote(iss)})`);
      if (e instanceof IssuerUnavailableError) {
        this.opts.log?.warn({ issuer: iss, err: e.message }, 'federation: issuer keys unavailable');
        throw new FederationUnavailableError(e.message);
      }
      throw e;
    }

    // jose has checked that iat is present and a number. The age limit bounds how long any one ID
    // token is good for, whatever exp it carries; a policy whose limit it exceeds does not match.
    const age = Math.max(0, Math.floor(Date.now() / 1000 - (claims.iat as number)));
    const tooOld = (p: Policy) => age > this.maxAge.get(p.id)!.seconds + LEEWAY_SECONDS;
    const all = chosen ? [chosen] : issuer.policies;
    const candidates = all.filter((p) => !tooOld(p));
    if (candidates.length === 0) {
      const longest = all.map((p) => this.maxAge.get(p.id)!).reduce((a, b) => (b.seconds > a.seconds ? b : a));
      throw new AuthenticationError(`the ID token was issued ${describeAge(age)} ago, more than maxTokenAge allows (${longest.shown}); request a fresh one in the job (issuer ${quote(iss)})`);
    }
    const refusals: string[] = all.filter(tooOld).map((p) => `policy ${p.id}: issued ${describeAge(age)} ago, more than its maxTokenAge (${this.maxAge.get(p.id)!.shown})`);
    for (const policy of candidates) {
      const outcome = evaluatePolicy(policy, claims);
      if (outcome.matched) {
        // Never reused: each ID token is checked against the issuer's current keys.
        return { account: outcome.account, kind: 'federated', labels: outcome.labels, tokenTTLSeconds: policy.ttlSeconds, reusableUntil: 0 };
      }
      refusals.push(`policy ${policy.id}: ${outcome.reasons.join('; ')}`);
    }
    let message = `the ID token from issuer ${quote(iss)} matches no federation policy — ${refusals.join(' | ')}`;
    if (message.length > MESSAGE_MAX) message = `${message.slice(0, MESSAGE_MAX)}…`;
    throw new AuthenticationError(message);
  }

  /**
   * A refresh token would let a CI login outlive the job's short-lived ID token, and Berth keeps
   * nothing to re-check it against: one issued for a federated principal is never honoured.
   */
  async recheck(): Promise<Principal> {
    throw new AuthenticationError('a CI federation login cannot be refreshed: present a fresh ID token from the job');
  }
}
