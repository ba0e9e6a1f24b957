import { z } from 'zod';
import { isLoopbackHost } from '../util/loopback.js';

/** The only Basic user name that means "any policy for this token's issuer". */
export const ANY_POLICY_USER = 'oidc';

const duration = z.union([z.number().int().positive(), z.string().regex(/^[1-9]\d*[smhd]?$/, 'a duration such as 300, 10m or 1h')]);

// YAML reads `ref_protected: true` and `repository_id: 123` as a boolean and a number; claims are
// compared as text, so they are kept as the text the claim would carry.
const conditionValue = z.union([z.string().min(1), z.number(), z.boolean()]).transform(String);
const condition = z.union([conditionValue, z.array(conditionValue).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]));

const template = z.string().min(1);

function checkIssuerURL(value: string, allowInsecure: boolean): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'not a URL';
  }
  if (url.protocol === 'https:') return null;
  if (url.protocol !== 'http:') return `must be https, not ${url.protocol}`;
  if (!allowInsecure) return 'must be https (plain http only with allowInsecureIssuer: true, for a local test issuer)';
  if (!isLoopbackHost(url.hostname)) return 'plain http is only allowed for a loopback address (127.0.0.1, ::1, localhost)';
  return null;
}

/**
 * A JSON Web Key Set of public keys. A private member (`d`, …) means someone pasted the signing
 * key itself: refused, so that it does not sit in the config thinking it is harmless.
 */
export const jwksSchema = z.looseObject({
  keys: z
    .array(
      z.looseObject({ kty: z.string().min(1) }).refine((k) => !['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].some((m) => m in k), 'a private or symmetric key; give the issuer\'s public keys only'),
    )
    .min(1, 'at least one key'),
});

/**
 * One trust policy: ID tokens from `issuer` for `audience` whose claims satisfy every condition in
 * `claims` become the account `account` (a template over the claims) with `labels`.
 */
export const federationPolicySchema = z
  .strictObject({
    id: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]*$/, 'lowercase letters, digits and dashes')
      .refine((id) => id !== ANY_POLICY_USER, `"${ANY_POLICY_USER}" is the user name for any policy; pick another id`),
    issuer: z.string().min(1),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((v) => (Array.isArray(v) ? v : [v])),
    claims: z.record(z.string().min(1), condition),
    account: template,
    labels: z.record(z.string().min(1), z.union([template, z.array(template).min(1)]).transform((v) => (Array.isArray(v) ? v : [v]))).default({}),
    /** Caps the registry token's lifetime for this policy below token.expiration. */
    maxTokenTTL: duration.optional(),
    /**
     * How long after its `iat` an ID token is accepted, whatever its `exp` says: a token leaked from
     * a job log (or minted with a ten-year `exp`) stops working this long after it was issued.
     */
    maxTokenAge: duration.default('1h'),
    /** Skips discovery; for issuers that publish their keys elsewhere. */
    jwksURI: z.string().min(1).optional(),
    /** Plain http for a loopback issuer: tests and local development only. */
    allowInsecureIssuer: z.boolean().default(false),
    /** How soon an unknown `kid` may make Berth fetch the issuer's keys again (the rest of the time they are cached). */
    jwksCooldown: duration.default('30s'),
    /** The issuer's key set as a file (re-read when it changes): for clusters whose issuer is not reachable. */
    jwksFile: z.string().min(1).optional(),
    /** The issuer's key set inline (`kubectl get --raw /openid/v1/jwks`). */
    jwks: jwksSchema.optional(),
  })
  .superRefine((p, ctx) => {
    const issue = (path: PropertyKey[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const bad = checkIssuerURL(p.issuer, p.allowInsecureIssuer);
    if (bad) issue(['issuer'], bad);
    if (p.jwksURI !== undefined) {
      const badJwks = checkIssuerURL(p.jwksURI, p.allowInsecureIssuer);
      if (badJwks) issue(['jwksURI'], badJwks);
    }
    const keySources = (['jwksURI', 'jwksFile', 'jwks'] as const).filter((k) => p[k] !== undefined);
    if (keySources.length > 1) issue([keySources[1]!], `give one of jwksURI, jwksFile and jwks, not ${keySources.join(' and ')}`);
    const conditions = Object.entries(p.claims);
    // Without a condition every job on the issuer (every repository on GitHub) would match.
    if (conditions.length === 0) issue(['claims'], 'at least one claim condition is required (for GitHub Actions: repository or repository_owner)');
    else if (conditions.every(([, patterns]) => patterns.some((x) => x === '*' || x === '**'))) issue(['claims'], 'every condition matches anything: at least one must narrow the claim');
    // Patterns and templates are the domain's to judge: see federationPatternProblems in src/federation/.
  });

export type FederationPolicyConfig = z.infer<typeof federationPolicySchema>;

/**
 * Problems only visible across policies: a Basic user name must pick one policy, and all policies
 * for one issuer share one key set, so they must agree on where it comes from.
 */
export function federationProblems(policies: readonly FederationPolicyConfig[]): string[] {
  const problems: string[] = [];
  const ids = new Map<string, number>();
  const byIssuer = new Map<string, { index: number; jwksURI: string | undefined; insecure: boolean }>();
  policies.forEach((p, i) => {
    const first = ids.get(p.id);
    if (first !== undefined) problems.push(`federation[${i}].id: duplicate id ${p.id} (also federation[${first}])`);
    else ids.set(p.id, i);
    const seen = byIssuer.get(p.issuer);
    if (!seen) byIssuer.set(p.issuer, { index: i, jwksURI: p.jwksURI, insecure: p.allowInsecureIssuer });
    else if (seen.jwksURI !== p.jwksURI || seen.insecure !== p.allowInsecureIssuer) {
      problems.push(`federation[${i}]: policies for issuer ${p.issuer} must agree on jwksURI and allowInsecureIssuer (see federation[${seen.index}])`);
    }
  });
  problems.push(...keySourceProblems(policies));
  return problems;
}

/** Policies for one issuer share its key set, so they must name the same jwksFile or inline jwks. */
function keySourceProblems(policies: readonly FederationPolicyConfig[]): string[] {
  const problems: string[] = [];
  const first = new Map<string, { index: number; source: string }>();
  policies.forEach((p, i) => {
    const source = JSON.stringify([p.jwksFile ?? null, p.jwks ?? null]);
    const seen = first.get(p.issuer);
    if (!seen) first.set(p.issuer, { index: i, source });
    else if (seen.source !== source) problems.push(`federation[${i}]: policies for issuer ${p.issuer} must agree on jwksFile and jwks (see federation[${seen.index}])`);
  });
  return problems;
}
