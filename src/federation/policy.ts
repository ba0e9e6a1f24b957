import { compilePattern, type Matcher } from '../policy/pattern.js';
import { durationToSeconds } from '../config/duration.js';
import type { FederationPolicyConfig } from '../config/federation.js';
import { claimText, renderTemplate, type Claims } from './template.js';

interface Condition {
  claim: string;
  patterns: readonly string[];
  matchers: Matcher[];
}

export interface Policy {
  id: string;
  issuer: string;
  audiences: readonly string[];
  conditions: Condition[];
  account: string;
  labels: Readonly<Record<string, readonly string[]>>;
  /** The registry token lifetime for principals of this policy. */
  ttlSeconds: number;
}

export type PolicyOutcome = { matched: true; account: string; labels: Record<string, string[]> } | { matched: false; reasons: string[] };

const ECHO_MAX = 100;

function quote(s: string): string {
  return JSON.stringify(s.length > ECHO_MAX ? `${s.slice(0, ECHO_MAX)}…` : s);
}

function expected(patterns: readonly string[]): string {
  return patterns.length === 1 ? `expected ${quote(patterns[0]!)}` : `expected one of ${patterns.map(quote).join(', ')}`;
}

export function compilePolicy(c: FederationPolicyConfig, tokenTTLSeconds: number): Policy {
  return {
    id: c.id,
    issuer: c.issuer,
    audiences: c.audience,
    conditions: Object.entries(c.claims).map(([claim, patterns]) => ({ claim, patterns, matchers: patterns.map(compilePattern) })),
    account: c.account,
    labels: c.labels,
    ttlSeconds: c.maxTokenTTL === undefined ? tokenTTLSeconds : Math.min(tokenTTLSeconds, durationToSeconds(c.maxTokenTTL)),
  };
}

function audienceOf(claims: Claims): string[] {
  const aud = claims.aud;
  if (typeof aud === 'string') return [aud];
  if (Array.isArray(aud)) return aud.filter((a): a is string => typeof a === 'string');
  return [];
}

/**
 * Every condition is checked, not just up to the first failure, so that a refusal lists all that
 * is wrong at once. Only the values of claims the policy names are echoed: those are what the
 * operator wrote conditions about, and the token itself never appears.
 */
export function evaluatePolicy(policy: Policy, claims: Claims): PolicyOutcome {
  const reasons: string[] = [];
  const aud = audienceOf(claims);
  if (!aud.some((a) => policy.audiences.includes(a))) {
    reasons.push(`aud is ${aud.length ? aud.map(quote).join(', ') : 'missing'} (${expected(policy.audiences)})`);
  }
  for (const c of policy.conditions) {
    const value = claimText(claims, c.claim);
    if (value === undefined) reasons.push(`${c.claim} is missing (${expected(c.patterns)})`);
    else if (!c.matchers.some((m) => m(value))) reasons.push(`${c.claim} is ${quote(value)} (${expected(c.patterns)})`);
  }
  if (reasons.length) return { matched: false, reasons };

  const account = renderTemplate(policy.account, claims);
  if ('missing' in account) return { matched: false, reasons: [`the account template needs claim ${account.missing}, which the token lacks`] };
  if (!account.value || account.value.length > 255 || /[\u0000-\u001f\u007f]/.test(account.value)) {
    return { matched: false, reasons: ['the account template yields an empty, over-long or unprintable name'] };
  }
  // A label value whose claim is absent (`${environment}` on a job without one) is left out: labels
  // only ever add grants, so a missing one can only mean less access.
  const labels: Record<string, string[]> = {};
  for (const [name, templates] of Object.entries(policy.labels)) {
    const values = templates.flatMap((t) => {
      const r = renderTemplate(t, claims);
      return 'value' in r ? [r.value] : [];
    });
    if (values.length) labels[name] = [...new Set(values)];
  }
  return { matched: true, account: account.value, labels };
}
