import ipaddr from 'ipaddr.js';
import { parseStandardIp } from '../util/ip.js';
import type { AclRuleConfig } from '../config/schema.js';
import { compileGlobTokens, compilePattern, compilePatternAs, escapeRegexLiteral, isRegexPattern, parseGlob, type GlobToken, type Matcher, type PatternKind } from './pattern.js';
import type { Scope } from './scope.js';

/**
 * How a token request is decided, part 2 of 2 (part 1 is src/http/token/): for each requested scope
 * the first rule whose every match field holds decides. `["*"]` grants what was asked, a list grants
 * the intersection, `[]` denies; when no rule matches nothing is granted.
 */

export interface AclSubject {
  account: string;
  /** Label name → values; `groups` carries the identity provider's groups. */
  labels: Readonly<Record<string, readonly string[]>>;
  service: string;
  /** Client address as parsed once per request; null when unknown. */
  ip: ipaddr.IPv4 | ipaddr.IPv6 | null;
}

export interface ScopeDecision {
  scope: Scope;
  granted: string[];
  /** Index into the configured acl list, or -1 when no rule matched. */
  rule: number;
  comment?: string;
}

type Field = 'account' | 'type' | 'name' | 'service';
const PLACEHOLDER = /\$\{(account|name|type|service|labels:[^}]+)\}/g;
const MAX_CACHED_PATTERNS = 10_000;
const MAX_REGEX_VARIANTS = 1024;

export class AclCompileError extends Error {}

/**
 * A `/regex/` rule with several label placeholders would need more variants than Berth compiles for
 * one request: the rule cannot be decided, so the scope is denied at that rule (never skipped, which
 * could let a later, wider rule grant).
 */
export class PlaceholderOverflowError extends Error {
  override name = 'PlaceholderOverflowError';
}

function fieldValue(field: Field, subject: AclSubject, scope: Scope): string {
  switch (field) {
    case 'account':
      return subject.account;
    case 'service':
      return subject.service;
    case 'type':
      return scope.type;
    case 'name':
      return scope.name;
  }
}

type TemplatePart = { literal: string } | { key: string };

/** Splits a pattern into literal text and placeholders once, at compile time. */
function parseTemplate(pattern: string): TemplatePart[] {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const m of pattern.matchAll(PLACEHOLDER)) {
    if (m.index! > last) parts.push({ literal: pattern.slice(last, m.index) });
    parts.push({ key: m[1]! });
    last = m.index! + m[0].length;
  }
  if (last < pattern.length) parts.push({ literal: pattern.slice(last) });
  return parts;
}

/**
 * A `/regex/` template filled in every way (a label placeholder yields one variant per value), values
 * escaped. Values are identity-provider text: past MAX_REGEX_VARIANTS (and past what one label alone
 * gives, which is linear) the product of several labels is refused rather than compiled.
 */
function expandRegex(parts: readonly TemplatePart[], subject: AclSubject, scope: Scope): string[] {
  let variants = [''];
  for (const part of parts) {
    if ('literal' in part) {
      for (let i = 0; i < variants.length; i++) variants[i] += part.literal;
      continue;
    }
    const values = valuesOf(part.key, subject, scope);
    if (values.length === 0) return [];
    if (values.length === 1) {
      const lit = escapeRegexLiteral(values[0]!);
      for (let i = 0; i < variants.length; i++) variants[i] += lit;
      continue;
    }
    if (variants.length > 1 && variants.length * values.length > MAX_REGEX_VARIANTS) throw new PlaceholderOverflowError();
    const next: string[] = [];
    for (const v of variants) for (const val of values) next.push(v + escapeRegexLiteral(val));
    variants = next;
  }
  return variants;
}

function valuesOf(key: string, subject: AclSubject, scope: Scope): readonly string[] {
  return key.startsWith('labels:') ? (subject.labels[key.slice(7)] ?? []) : [fieldValue(key as Field, subject, scope)];
}

/**
 * A glob template as tokens: the literal parts are parsed as glob syntax once, each placeholder
 * becomes the set of its values, matched as literal text. No expansion, no text-to-pattern step:
 * a group named `**` or `a*a*a*b` is just those characters, and ten labels of a thousand values cost
 * one pass per value, not a product.
 */
type GlobTemplate = ({ tokens: GlobToken[] } | { key: string })[];

function globTemplate(parts: readonly TemplatePart[]): GlobTemplate {
  return parts.map((p) => ('literal' in p ? { tokens: parseGlob(p.literal) } : { key: p.key }));
}

function fillGlob(template: GlobTemplate, subject: AclSubject, scope: Scope): Matcher | null {
  const tokens: GlobToken[] = [];
  for (const part of template) {
    if ('tokens' in part) tokens.push(...part.tokens);
    else {
      const values = valuesOf(part.key, subject, scope);
      if (values.length === 0) return null;
      tokens.push({ kind: 'set', values });
    }
  }
  return compileGlobTokens(tokens);
}

const NEVER: Matcher = () => false;

/**
 * Compiled patterns by text. Those the rules themselves hold are kept for good once the ACL is
 * built (seal()); only regexes filled in per caller (`/${account}-.+/`; glob templates need no
 * cache) share the bounded part, so that a large ACL cannot fill the bound by itself and make every
 * request recompile.
 */
class PatternCache {
  private readonly pinned = { glob: new Map<string, Matcher>(), regex: new Map<string, Matcher>() };
  private byKind = { glob: new Map<string, Matcher>(), regex: new Map<string, Matcher>() };

  seal(): void {
    for (const kind of ['glob', 'regex'] as const) for (const [p, m] of this.byKind[kind]) this.pinned[kind].set(p, m);
    this.byKind = { glob: new Map(), regex: new Map() };
  }

  get(pattern: string, kind: PatternKind): Matcher {
    const cache = this.byKind[kind];
    let m = this.pinned[kind].get(pattern) ?? cache.get(pattern);
    if (!m) {
      if (cache.size >= MAX_CACHED_PATTERNS) cache.clear();
      try {
        m = compilePatternAs(pattern, kind);
      } catch {
        // An escaped value can still break a regex (`[${account}]` with `z-a`): that is no match,
        // not a failed request.
        m = NEVER;
      }
      cache.set(pattern, m);
    }
    return m;
  }
}

type SubjectTest = (subject: AclSubject) => boolean;
type ScopeTest = (scope: Scope) => boolean;
/** Run once per request: a test for each scope, or null when the rule cannot match this subject. */
type ScopeTestBuilder = (subject: AclSubject) => ScopeTest | null;
type FieldTest = (subject: AclSubject, scope: Scope) => boolean;

const NO_SCOPE: Scope = { type: '', name: '', actions: [] };
const NO_SUBJECT: AclSubject = { account: '', labels: {}, service: '', ip: null };

interface CompiledPattern {
  /** Placeholders present at all. */
  placeholders: boolean;
  /** A placeholder refers to the scope (`${name}`, `${type}`): only decidable per scope. */
  scopeDependent: boolean;
  /** Matchers for a subject (placeholders filled); empty when a placeholder has no value. */
  forSubject(subject: AclSubject, scope?: Scope): Matcher[];
}

function compileValuePattern(pattern: string, cache: PatternCache, where: string): CompiledPattern {
  const keys = [...pattern.matchAll(PLACEHOLDER)].map((m) => m[1]!);
  try {
    compilePattern(keys.length ? pattern.replace(PLACEHOLDER, 'x') : pattern);
  } catch (e) {
    throw new AclCompileError(`${where}: invalid pattern: ${(e as Error).message}`);
  }
  if (keys.length === 0) {
    const m = compilePattern(pattern);
    return { placeholders: false, scopeDependent: false, forSubject: () => [m] };
  }
  const kind: PatternKind = isRegexPattern(pattern) ? 'regex' : 'glob';
  const parts = parseTemplate(pattern);
  const scopeDependent = keys.includes('name') || keys.includes('type');
  if (kind === 'glob') {
    const template = globTemplate(parts);
    return {
      placeholders: true,
      scopeDependent,
      forSubject: (subject, scope = NO_SCOPE) => {
        const m = fillGlob(template, subject, scope);
        return m ? [m] : [];
      },
    };
  }
  return {
    placeholders: true,
    scopeDependent,
    forSubject: (subject, scope = NO_SCOPE) => expandRegex(parts, subject, scope).map((p) => cache.get(p, kind)),
  };
}

function parseIpSpec(spec: string): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  const slash = spec.indexOf('/');
  const addr = slash < 0 ? spec : spec.slice(0, slash);
  // ipaddr.js also reads `10` as 0.0.0.10 and `010.0.0.1` as octal 8.0.0.1; a rule written that way
  // would silently match other addresses than its author meant.
  if (!addr.includes(':') && !ipaddr.IPv4.isValidFourPartDecimal(addr)) throw new Error('not a dotted-quad IPv4 address');
  // IPv6 likewise: no zone, and an embedded IPv4 tail in dotted-quad (not ::ffff:0xa.0.0.9).
  if (addr.includes(':') && !parseStandardIp(addr)) throw new Error('not an IPv6 address in standard form');
  let [range, bits] = slash < 0 ? (() => {
    const a = ipaddr.parse(spec);
    return [a, a.kind() === 'ipv4' ? 32 : 128] as [ipaddr.IPv4 | ipaddr.IPv6, number];
  })() : ipaddr.parseCIDR(spec);
  // Client addresses arrive IPv4-mapped (::ffff:a.b.c.d) turned into IPv4; rules written mapped follow.
  if (range.kind() === 'ipv6' && (range as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    range = (range as ipaddr.IPv6).toIPv4Address();
    bits -= 96;
  }
  return [range, bits];
}

function compileIp(spec: string, where: string): (subject: AclSubject) => boolean {
  let range: ipaddr.IPv4 | ipaddr.IPv6;
  let bits: number;
  try {
    [range, bits] = parseIpSpec(spec);
  } catch {
    throw new AclCompileError(`${where}: not an IP address or CIDR range: ${spec}`);
  }
  return (subject) => {
    const ip = subject.ip;
    if (!ip) return false;
    if (ip.kind() !== range.kind()) return false;
    return ip.match(range as never, bits);
  };
}

export interface CompiledRule {
  index: number;
  actions: readonly string[];
  grantsAll: boolean;
  comment?: string;
  /** Depend on the caller only: decided once per request, cheapest first. */
  subjectTests: SubjectTest[];
  /** Tests on the scope's type and name, prepared once per request (placeholders filled). */
  scopeBuilders: ScopeTestBuilder[];
  /** Patterns that refer to the scope itself: evaluated per scope. */
  dynamicTests: FieldTest[];
}

const anyMatches = (ms: Matcher[], v: string) => ms.some((m) => m(v));

export function compileRule(rule: AclRuleConfig, index: number, cache = new PatternCache()): CompiledRule {
  // Cheapest first: fixed strings and addresses, then tests that fill placeholders per caller.
  const subjectTests: SubjectTest[] = [];
  const expandingTests: SubjectTest[] = [];
  const scopeBuilders: ScopeTestBuilder[] = [];
  const dynamicTests: FieldTest[] = [];
  const where = `acl[${index}].match`;

  for (const field of ['account', 'service'] as const) {
    const p = rule.match[field];
    if (p === undefined) continue;
    const c = compileValuePattern(p, cache, `${where}.${field}`);
    if (c.scopeDependent) dynamicTests.push((subject, scope) => anyMatches(c.forSubject(subject, scope), fieldValue(field, subject, scope)));
    else if (c.placeholders) expandingTests.push((subject) => anyMatches(c.forSubject(subject), fieldValue(field, subject, NO_SCOPE)));
    else {
      const m = c.forSubject(NO_SUBJECT)[0]!;
      subjectTests.push((subject) => m(fieldValue(field, subject, NO_SCOPE)));
    }
  }
  if (rule.match.ip !== undefined) subjectTests.push(compileIp(rule.match.ip, `${where}.ip`));
  for (const [label, spec] of Object.entries(rule.match.labels ?? {})) {
    const patterns = (Array.isArray(spec) ? spec : [spec]).map((p) => compileValuePattern(p, cache, `${where}.labels.${label}`));
    const fixed = patterns.some((c) => c.placeholders) ? null : patterns.flatMap((c) => c.forSubject(NO_SUBJECT));
    const test = (subject: AclSubject, scope?: Scope) => {
      const values = subject.labels[label];
      if (!values) return false;
      const matchers = fixed ?? patterns.flatMap((c) => c.forSubject(subject, scope));
      for (const v of values) if (anyMatches(matchers, v)) return true;
      return false;
    };
    if (patterns.some((c) => c.scopeDependent)) dynamicTests.push(test);
    else (patterns.some((c) => c.placeholders) ? expandingTests : subjectTests).push((subject) => test(subject));
  }
  for (const field of ['type', 'name'] as const) {
    const p = rule.match[field];
    if (p === undefined) continue;
    const c = compileValuePattern(p, cache, `${where}.${field}`);
    if (c.scopeDependent) {
      dynamicTests.push((subject, scope) => anyMatches(c.forSubject(subject, scope), fieldValue(field, subject, scope)));
      continue;
    }
    const fixed = c.placeholders ? null : c.forSubject(NO_SUBJECT);
    scopeBuilders.push((subject) => {
      const ms = fixed ?? c.forSubject(subject);
      if (ms.length === 0) return null;
      const only = ms.length === 1 ? ms[0]! : null;
      return only ? (scope) => only(scope[field]) : (scope) => anyMatches(ms, scope[field]);
    });
  }
  const out: CompiledRule = { index, actions: rule.actions, grantsAll: rule.actions.includes('*'), subjectTests: [...subjectTests, ...expandingTests], scopeBuilders, dynamicTests };
  if (rule.comment !== undefined) out.comment = rule.comment;
  return out;
}


interface LiveRule {
  rule: CompiledRule;
  tests: ScopeTest[];
  /** A placeholder overflowed while preparing the rule: it denies whatever reaches it. */
  undecidable?: true;
}

export class Acl {
  readonly rules: CompiledRule[];

  constructor(rules: readonly AclRuleConfig[]) {
    const cache = new PatternCache();
    this.rules = rules.map((r, i) => compileRule(r, i, cache));
    cache.seal();
  }

  /**
   * The rules that can still match this caller, each with its per-scope tests. Computed once per
   * request, so ten scopes against a thousand rules cost one pass over the rules plus ten passes
   * over the few that concern this caller.
   */
  private live(subject: AclSubject): LiveRule[] {
    const out: LiveRule[] = [];
    next: for (const rule of this.rules) {
      try {
        for (const t of rule.subjectTests) if (!t(subject)) continue next;
        const tests: ScopeTest[] = [];
        for (const b of rule.scopeBuilders) {
          const t = b(subject);
          if (!t) continue next;
          tests.push(t);
        }
        for (const d of rule.dynamicTests) tests.push((scope) => d(subject, scope));
        out.push({ rule, tests });
      } catch (e) {
        if (!(e instanceof PlaceholderOverflowError)) throw e;
        out.push({ rule, tests: [], undecidable: true });
      }
    }
    return out;
  }

  private static decision(rule: CompiledRule, scope: Scope): ScopeDecision {
    const granted = rule.grantsAll ? [...scope.actions] : scope.actions.filter((a) => rule.actions.includes(a));
    const d: ScopeDecision = { scope, granted, rule: rule.index };
    if (rule.comment !== undefined) d.comment = rule.comment;
    return d;
  }

  private static undecidable(rule: CompiledRule, scope: Scope): ScopeDecision {
    return { scope, granted: [], rule: rule.index, comment: `denied: too many label values to evaluate acl[${rule.index}]` };
  }

  decideOne(subject: AclSubject, scope: Scope): ScopeDecision {
    return this.decide(subject, [scope])[0]!;
  }

  decide(subject: AclSubject, scopes: readonly Scope[]): ScopeDecision[] {
    if (scopes.length === 0) return [];
    const live = this.live(subject);
    return scopes.map((scope) => {
      for (const { rule, tests, undecidable } of live) {
        if (undecidable) return Acl.undecidable(rule, scope);
        let holds: boolean;
        try {
          holds = tests.every((t) => t(scope));
        } catch (e) {
          if (!(e instanceof PlaceholderOverflowError)) throw e;
          return Acl.undecidable(rule, scope);
        }
        if (holds) return Acl.decision(rule, scope);
      }
      return { scope, granted: [], rule: -1 };
    });
  }
}

/**
 * Parses a client address once per request; IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4. Only
 * standard forms count: `167772169` or `0xa.0.0.9` is no address at all, so it matches no `ip` rule.
 */
export function parseClientIp(ip: string | undefined): AclSubject['ip'] {
  return ip ? parseStandardIp(ip) : null;
}
