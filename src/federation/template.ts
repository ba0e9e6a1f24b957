/**
 * `ci:${repository}`: text with `${claim}` references, filled from an ID token's claims. There is no
 * escape syntax; a `$` not followed by `{` is plain text.
 */
export type Claims = Readonly<Record<string, unknown>>;

const REFERENCE = /\$\{([^}]*)\}/g;
const CLAIM_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;

/** Why a template cannot be used, or null. */
export function templateProblem(template: string): string | null {
  for (const m of template.matchAll(REFERENCE)) {
    if (!CLAIM_NAME.test(m[1]!)) return `\${${m[1]}} is not a claim reference (expected \${claim_name})`;
  }
  if (template.replace(REFERENCE, '').includes('${')) return 'unterminated ${ (expected ${claim_name})';
  return null;
}

/** The claims a template reads. */
export function templateClaims(template: string): string[] {
  return [...template.matchAll(REFERENCE)].map((m) => m[1]!);
}

/**
 * A claim as text (a dotted name reaches nested objects, see claimValue): strings, numbers and booleans (GitHub sends `ref_protected` as a string, other
 * issuers as a boolean); anything else (missing, null, arrays, objects) has no text.
 */
export function claimText(claims: Claims, name: string): string | undefined {
  const v = claimValue(claims, name, 0);
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

const MAX_DEPTH = 8;

/**
 * A claim by name, where a dotted name also reaches into nested objects: Kubernetes puts the pod's
 * identity under `kubernetes.io` → `namespace`, `serviceaccount.name`, so `kubernetes.io.namespace`
 * must find `claims["kubernetes.io"].namespace`. A key that itself contains dots wins over a
 * nested path (a flat `a.b` claim is read before `a` → `b`); own properties only, so `__proto__`
 * or `constructor` name nothing. Names come from the configuration, never from a token, and are
 * short, so trying each dot as a split point costs nothing worth bounding further.
 */
function claimValue(claims: Claims, name: string, depth: number): unknown {
  if (Object.hasOwn(claims, name)) return claims[name];
  if (depth >= MAX_DEPTH) return undefined;
  for (let i = name.indexOf('.'); i > 0; i = name.indexOf('.', i + 1)) {
    const head = name.slice(0, i);
    if (!Object.hasOwn(claims, head)) continue;
    const inner = claims[head];
    if (!inner || typeof inner !== 'object' || Array.isArray(inner)) continue;
    const v = claimValue(inner as Claims, name.slice(i + 1), depth + 1);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** The filled-in template, or the name of the first claim it needs that the token lacks. */
export function renderTemplate(template: string, claims: Claims): { value: string } | { missing: string } {
  let missing: string | undefined;
  const value = template.replace(REFERENCE, (_all, name: string) => {
    const v = claimText(claims, name);
    if (v === undefined) missing ??= name;
    return v ?? '';
  });
  return missing !== undefined ? { missing } : { value };
}
