import type { Restriction } from '../../model/principal.js';
import { restrictionPatternProblem } from '../../policy/pattern.js';
import { PatPolicyError } from '../../tokens/pats.js';

/** Turns form or JSON input into PAT creation parameters; throws PatPolicyError with a plain message. */
export function parseTokenInput(body: Record<string, unknown>): { name: string; ttlSeconds?: number; restriction?: Restriction } {
  const name = typeof body.name === 'string' ? body.name : '';
  const out: { name: string; ttlSeconds?: number; restriction?: Restriction } = { name };
  const days = body.expiresInDays;
  if (days !== undefined && days !== '') {
    const n = typeof days === 'number' ? days : typeof days === 'string' && /^\d{1,5}$/.test(days) ? Number(days) : NaN;
    if (!Number.isInteger(n) || n <= 0) throw new PatPolicyError('expiresInDays must be a positive whole number');
    out.ttlSeconds = n * 86400;
  }
  const reposRaw = body.repositories;
  const repos = (Array.isArray(reposRaw) ? reposRaw : typeof reposRaw === 'string' ? reposRaw.split(/[\s,]+/) : []).filter((r): r is string => typeof r === 'string' && r.length > 0);
  const actionsRaw = body.actions;
  const actions = (Array.isArray(actionsRaw) ? actionsRaw : typeof actionsRaw === 'string' ? [actionsRaw] : []).filter((a): a is string => typeof a === 'string');
  if (repos.length || actions.length) {
    if (!repos.length) throw new PatPolicyError('a restriction needs at least one repository pattern');
    if (!actions.length) throw new PatPolicyError('a restriction needs at least one action (pull, push)');
    for (const r of repos) {
      const problem = restrictionPatternProblem(r);
      if (problem) throw new PatPolicyError(problem);
    }
    out.restriction = { repositories: repos, actions: [...new Set(actions)] };
  }
  return out;
}

/** What the form sent, as text to show again after a refusal (never the secret: there is none yet). */
export function tokenFormValues(body: Record<string, unknown>): { name: string; expiresInDays: string; repositories: string; actions: string[] } {
  const text = (v: unknown) => (typeof v === 'string' ? v.slice(0, 2048) : '');
  const actions = (Array.isArray(body.actions) ? body.actions : [body.actions]).filter((a): a is string => a === 'pull' || a === 'push');
  return { name: text(body.name), expiresInDays: text(body.expiresInDays), repositories: Array.isArray(body.repositories) ? body.repositories.filter((r) => typeof r === 'string').join(' ').slice(0, 2048) : text(body.repositories), actions };
}

/** The form field a PatPolicyError is about, so the page can put the message beside it. */
export function tokenFieldOf(message: string): 'name' | 'expiresInDays' | 'repositories' | 'actions' | undefined {
  if (/^name\b/.test(message)) return 'name';
  if (/expir/.test(message)) return 'expiresInDays';
  if (/\baction/.test(message)) return 'actions';
  if (/repositor|pattern|regular expression|glob/.test(message)) return 'repositories';
  return undefined;
}
