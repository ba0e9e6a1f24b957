import ipaddr from 'ipaddr.js';
import type { AclRuleConfig } from '../config/schema.js';
import { compilePattern, compilePatternAs, isRegexPattern, literalFor, type Matcher, type PatternKind } from './pattern.js';
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
type FieldTest = (subject: AclSubject, scope: Scope) => boolean;

const PLACEHOLDER = /\$\{(account|name|type|service|labels:[^}]+)\}/g;
const MAX_CACHED_PATTERNS = 10_000;

export class AclCompileError extends Error {}

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

/** Every way of filling a pattern's placeholders; a label placeholder yields one variant per value. */
function expand(pattern: string, subject: AclSubject, scope: Scope): string[] {
  let variants = [''];
  let last = 0;
  for (const m of pattern.matchAll(PLACEHOLDER)) {
    const lit = pattern.slice(last, m.index);
    const key = m[1]!;
    let values: readonly string[];
    if (key.startsWith('labels:')) values = subject.labels[key.slice(7)] ?? [];
    else values = [fieldValue(key as Field, subject, scope)];
    if (values.length === 0) return [];
    const next: string[] = [];
    for (const v of variants) for (const val of values) next.push(v + lit + literalFor(pattern, val));
    variants = next;
    last = m.index! + m[0].length;
  }
  const tail = pattern.slice(last);
  return variants.map((v) => v + tail);
}

const NEVER: Matcher = () => false;

class PatternCache {
  private readonly cache = new Map<string, Matcher>();
  get(pattern: string, kind: PatternKind): Matcher {
    const key = `${kind}\u0000${pattern}`;
    let m = this.cache.get(key);
    if (!m) {
      if (this.cache.size >= MAX_CACHED_PATTERNS) this.cache.clear();
      try {
        m = compilePatternAs(pattern, kind);
      } catch {
        // An escaped value can still break a regex (`[${account}]` with `z-a`): that is no match,
        // not a failed request.
        m = NEVER;
      }
      this.cache.set(key, m);
    }
    return m;
  }
}

type ValueTest = ((value: string, subject: AclSubject, scope: Scope) => boolean) & { dynamic?: boolean };

function compileValueTest(pattern: string, cache: PatternCache, where: string): ValueTest {
  if (!PLACEHOLDER.test(pattern)) {
    PLACEHOLDER.lastIndex = 0;
    let m: Matcher;
    try {
      m = compilePattern(pattern);
    } catch (e) {
      throw new AclCompileError(`${where}: invalid pattern: ${(e as Error).message}`);
    }
    return (v) => m(v);
  }
  PLACEHOLDER.lastIndex = 0;
  try {
    compilePattern(pattern.replace(PLACEHOLDER, 'x'));
  } catch (e) {
    throw new AclCompileError(`${where}: invalid pattern: ${(e as Error).message}`);
  }
  const kind: PatternKind = isRegexPattern(pattern) ? 'regex' : 'glob';
  const test: ValueTest = (v, subject, scope) => expand(pattern, subject, scope).some((p) => cache.get(p, kind)(v));
  test.dynamic = true;
  return test;
}

function parseIpSpec(spec: string): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  const slash = spec.indexOf('/');
  const addr = slash < 0 ? spec : spec.slice(0, slash);
  // ipaddr.js also reads `10` as 0.0.0.10 and `010.0.0.1` as octal 8.0.0.1; a rule written that way
  // would silently match other addresses than its author meant.
  if (!addr.includes(':') && !ipaddr.IPv4.isValidFourPartDecimal(addr)) throw new Error('not a dotted-quad IPv4 address');
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
  tests: FieldTest[];
}

export function compileRule(rule: AclRuleConfig, index: number, cache = new PatternCache()): CompiledRule {
  // Every test must hold, so their order is free: fixed patterns, ip and labels go first and a rule
  // that cannot match is left before any placeholder is expanded (one variant per label value).
  const fixed: FieldTest[] = [];
  const dynamic: FieldTest[] = [];
  const where = `acl[${index}].match`;
  for (const field of ['account', 'type', 'name', 'service'] as const) {
    const p = rule.match[field];
    if (p === undefined) continue;
    const t = compileValueTest(p, cache, `${where}.${field}`);
    (t.dynamic ? dynamic : fixed).push((subject, scope) => t(fieldValue(field, subject, scope), subject, scope));
  }
  if (rule.match.ip !== undefined) {
    const t = compileIp(rule.match.ip, `${where}.ip`);
    fixed.push((subject) => t(subject));
  }
  for (const [label, spec] of Object.entries(rule.match.labels ?? {})) {
    const patterns = (Array.isArray(spec) ? spec : [spec]).map((p) => compileValueTest(p, cache, `${where}.labels.${label}`));
    (patterns.some((t) => t.dynamic) ? dynamic : fixed).push((subject, scope) => {
      const values = subject.labels[label];
      if (!values) return false;
      return values.some((v) => patterns.some((t) => t(v, subject, scope)));
    });
  }
  const out: CompiledRule = { index, actions: rule.actions, grantsAll: rule.actions.includes('*'), tests: [...fixed, ...dynamic] };
  if (rule.comment !== undefined) out.comment = rule.comment;
  return out;
}

export class Acl {
  readonly rules: CompiledRule[];

  constructor(rules: readonly AclRuleConfig[]) {
    const cache = new PatternCache();
    this.rules = rules.map((r, i) => compileRule(r, i, cache));
  }

  decideOne(subject: AclSubject, scope: Scope): ScopeDecision {
    for (const rule of this.rules) {
      if (!rule.tests.every((t) => t(subject, scope))) continue;
      const granted = rule.grantsAll ? [...scope.actions] : scope.actions.filter((a) => rule.actions.includes(a));
      const d: ScopeDecision = { scope, granted, rule: rule.index };
      if (rule.comment !== undefined) d.comment = rule.comment;
      return d;
    }
    return { scope, granted: [], rule: -1 };
  }

  decide(subject: AclSubject, scopes: readonly Scope[]): ScopeDecision[] {
    return scopes.map((s) => this.decideOne(subject, s));
  }
}

/** Parses a client address once per request; IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4. */
export function parseClientIp(ip: string | undefined): AclSubject['ip'] {
  if (!ip) return null;
  try {
    const a = ipaddr.parse(ip);
    if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) return (a as ipaddr.IPv6).toIPv4Address();
    return a;
  } catch {
    return null;
  }
}
