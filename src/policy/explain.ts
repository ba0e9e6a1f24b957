import type { AclRuleConfig } from '../config/schema.js';
import { compileRule, PlaceholderOverflowError, type AclSubject, type CompiledRule } from './acl.js';
import { isRegexPattern } from './pattern.js';

/**
 * The ACL explained in words, shared by `berth acl explain` (per scope) and the tokens page (what a
 * signed-in person may do at all).
 */

/** Why a rule gave what it gave, in the words `acl explain` prints. */
export function ruleReason(rule: Pick<AclRuleConfig, 'actions'>): string {
  return rule.actions.length === 0 ? 'the rule denies explicitly (actions: [])' : rule.actions.includes('*') ? 'the rule grants everything asked' : `the rule allows ${rule.actions.join(',')}`;
}

export interface AccessLine {
  /** Index into the configured acl list. */
  rule: number;
  /** The rule's actions; empty: the rule denies. */
  actions: readonly string[];
  /** What the rule covers, placeholders filled for this person ("team-a/**", "every repository"). */
  target: string;
  /** Conditions outside the person's control: the client address, the service. */
  conditions: string[];
  comment?: string;
  /** The line as a phrase: "push and pull team-a/**", "nothing on secret/** (denied)". */
  text: string;
}

const PLACEHOLDER = /\$\{(account|labels:[^}]+)\}/g;
const MAX_SHOWN_VARIANTS = 20;

/** A pattern with the person's own placeholders filled in, one text per combination (capped). */
function fill(pattern: string, subject: Pick<AclSubject, 'account' | 'labels'>): string[] {
  let variants = [''];
  let last = 0;
  for (const m of pattern.matchAll(PLACEHOLDER)) {
    const literal = pattern.slice(last, m.index);
    const key = m[1]!;
    const values = key === 'account' ? [subject.account] : (subject.labels[key.slice(7)] ?? []);
    if (values.length === 0) return [];
    if (variants.length * values.length > MAX_SHOWN_VARIANTS) return [pattern];
    variants = variants.flatMap((v) => values.map((val) => v + literal + val));
    last = m.index! + m[0].length;
  }
  return variants.map((v) => v + pattern.slice(last));
}

function names(pattern: string, subject: Pick<AclSubject, 'account' | 'labels'>): string {
  const filled = fill(pattern, subject);
  const shown = filled.join(', ');
  return isRegexPattern(pattern) ? `names matching ${shown}` : shown;
}

function targetOf(rule: AclRuleConfig, subject: Pick<AclSubject, 'account' | 'labels'>): string {
  const { type, name } = rule.match;
  const typeWord = type === undefined || type === 'repository' ? '' : `${names(type, subject)} `;
  if (name === undefined) return type === undefined ? 'everything' : type === 'repository' ? 'every repository' : `every ${typeWord.trim()}`;
  return `${typeWord}${names(name, subject)}`;
}

function phrase(actions: readonly string[], target: string): string {
  if (actions.length === 0) return `nothing on ${target} (denied)`;
  if (actions.includes('*')) return target === 'everything' ? 'do anything' : `do anything with ${target}`;
  const verbs = actions.length === 1 ? actions[0]! : `${actions.slice(0, -1).join(', ')} and ${actions[actions.length - 1]}`;
  return `${verbs} ${target}`;
}

/** The rules compiled without their ip and service tests, once per configuration (rules array). */
const compiledRules = new WeakMap<readonly AclRuleConfig[], CompiledRule[]>();

function compiledFor(rules: readonly AclRuleConfig[]): CompiledRule[] {
  let c = compiledRules.get(rules);
  if (!c) {
    c = rules.map((rule, index) => {
      const { ip: _ip, service: _service, ...rest } = rule.match;
      return compileRule({ ...rule, match: rest }, index);
    });
    compiledRules.set(rules, c);
  }
  return c;
}

/**
 * The rules that apply to this person, first match first, each as a phrase. Rules about the client
 * address or the service are listed with that condition (the page cannot know where the next push
 * comes from); a rule that covers every scope unconditionally ends the list, since no later rule
 * can decide anything for this person. Uses the same compiled rule tests as the token endpoint.
 */
export function describeAccess(rules: readonly AclRuleConfig[], subject: Pick<AclSubject, 'account' | 'labels'>): AccessLine[] {
  const out: AccessLine[] = [];
  const who: AclSubject = { account: subject.account, labels: subject.labels, service: '', ip: null };
  const all = compiledFor(rules);
  for (const [index, rule] of rules.entries()) {
    const { ip, service } = rule.match;
    const compiled = all[index]!;
    let applies: boolean;
    try {
      applies = compiled.subjectTests.every((t) => t(who)) && compiled.scopeBuilders.every((b) => b(who) !== null);
    } catch (e) {
      if (!(e instanceof PlaceholderOverflowError)) throw e;
      applies = true; // the token endpoint denies at such a rule: say so rather than skip it
    }
    if (!applies) continue;
    const conditions = [...(ip !== undefined ? [`only from ${ip}`] : []), ...(service !== undefined ? [`only for service ${service}`] : [])];
    const target = targetOf(rule, subject);
    const line: AccessLine = { rule: index, actions: rule.actions, target, conditions, text: phrase(rule.actions, target) + (conditions.length ? ` (${conditions.join(', ')})` : '') };
    if (rule.comment !== undefined) line.comment = rule.comment;
    out.push(line);
    if (conditions.length === 0 && rule.match.type === undefined && rule.match.name === undefined && compiled.dynamicTests.length === 0) break;
  }
  return out;
}

/** One sentence: "push and pull team-a/**; pull every repository", or that nothing is granted. */
export function summarizeAccess(lines: readonly AccessLine[]): string {
  const granting = lines.filter((l) => l.actions.length > 0);
  if (granting.length === 0) return 'nothing: no rule grants you any access';
  return lines.map((l) => l.text).join('; ');
}
