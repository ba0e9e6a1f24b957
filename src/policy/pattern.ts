/**
 * ACL patterns: a glob where `*` and `?` stay inside one path segment and `**` crosses `/`, or
 * `/regex/`, which Berth anchors (docker_auth does not, so `/foo/` there also matched `xfoox`).
 *
 * Globs are never turned into a JavaScript RegExp: `*a*a*a*b` compiled to `[^/]*a[^/]*a…` backtracks
 * polynomially on a long name (seconds for 400 characters). They run on matchGlob() below, which
 * costs at most (name length + 1) × (pattern length) steps whatever the input. `/regex/` patterns are
 * only ever written by the operator (the ACL file, federation claims); PAT and robot restrictions are
 * globs only (restrictionPatternProblem) and placeholder values are literal text, never syntax.
 */
export type Matcher = (value: string) => boolean;

/** One piece of a glob: literal text, `?`, `*`, `**`, or one of several literal strings (a placeholder's values). */
export type GlobToken =
  | { kind: 'lit'; text: string }
  | { kind: 'one' }
  | { kind: 'star' }
  | { kind: 'any' }
  | { kind: 'set'; values: readonly string[] };

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** Splits glob text into tokens; `\x` is a literal x. */
export function parseGlob(glob: string): GlobToken[] {
  const out: GlobToken[] = [];
  let lit = '';
  const flush = () => {
    if (lit) out.push({ kind: 'lit', text: lit });
    lit = '';
  };
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '\\' && i + 1 < glob.length) lit += glob[++i]!;
    else if (c === '*') {
      flush();
      if (glob[i + 1] === '*') {
        out.push({ kind: 'any' });
        i++;
      } else out.push({ kind: 'star' });
    } else if (c === '?') {
      flush();
      out.push({ kind: 'one' });
    } else lit += c;
  }
  flush();
  return out;
}

/** Merges adjacent literals (a one-value set is a literal) so the matcher and the fast paths see the simplest form. */
function normalise(tokens: readonly GlobToken[]): GlobToken[] {
  const out: GlobToken[] = [];
  for (const t0 of tokens) {
    const t: GlobToken = t0.kind === 'set' && t0.values.length === 1 ? { kind: 'lit', text: t0.values[0]! } : t0;
    const prev = out[out.length - 1];
    if (t.kind === 'lit' && prev?.kind === 'lit') out[out.length - 1] = { kind: 'lit', text: prev.text + t.text };
    else if (t.kind === 'lit' && !t.text) continue;
    // `***` and `****` mean `**`: one state is enough.
    else if ((t.kind === 'any' || t.kind === 'star') && prev?.kind === 'any') continue;
    else if (t.kind === 'any' && prev?.kind === 'star') out[out.length - 1] = t;
    else out.push(t);
  }
  return out;
}

// Scratch rows reused by every match (the event loop runs one at a time, and matchGlob never re-enters).
let rowA = new Uint8Array(1024);
let rowB = new Uint8Array(1024);
const SLASH = 47;

/**
 * Whether `value` matches the tokens. Walks the pattern once, keeping the set of positions in the
 * value that the pattern so far can end at: each token costs one pass over the value (a literal of
 * length L or a set of total length L at most L per position), so the whole match is
 * O(value length × pattern length) with no backtracking, whatever either contains.
 */
export function matchGlob(tokens: readonly GlobToken[], value: string): boolean {
  const n = value.length;
  if (rowA.length < n + 1) {
    rowA = new Uint8Array(2 * (n + 1));
    rowB = new Uint8Array(2 * (n + 1));
  }
  let cur = rowA;
  let next = rowB;
  cur.fill(0, 0, n + 1);
  cur[0] = 1;
  // Reachable positions lie in [lo, n]; nothing below lo needs looking at.
  let lo = 0;
  for (const t of tokens) {
    next.fill(0, lo, n + 1);
    let newLo = -1;
    switch (t.kind) {
      case 'lit': {
        const len = t.text.length;
        if (len === 1) {
          const c = t.text.charCodeAt(0);
          for (let p = lo; p < n; p++) {
            if (cur[p] === 1 && value.charCodeAt(p) === c) {
              next[p + 1] = 1;
              if (newLo < 0) newLo = p + 1;
            }
          }
          break;
        }
        for (let p = lo; p + len <= n; p++) {
          if (cur[p] === 1 && value.startsWith(t.text, p)) {
            next[p + len] = 1;
            if (newLo < 0) newLo = p + len;
          }
        }
        break;
      }
      case 'one':
        for (let p = lo; p < n; p++) {
          if (cur[p] && value.charCodeAt(p) !== SLASH) {
            next[p + 1] = 1;
            if (newLo < 0) newLo = p + 1;
          }
        }
        break;
      case 'star':
        for (let p = lo; p <= n; p++) {
          if (cur[p] || (p > lo && next[p - 1] && value.charCodeAt(p - 1) !== SLASH)) {
            next[p] = 1;
            if (newLo < 0) newLo = p;
          }
        }
        break;
      case 'any':
        // Everything from the first reachable position on.
        for (let p = lo; p <= n; p++) {
          if (cur[p]) {
            next.fill(1, p, n + 1);
            newLo = p;
            break;
          }
        }
        break;
      case 'set':
        for (let p = lo; p <= n; p++) {
          if (!cur[p]) continue;
          for (const v of t.values) {
            if (p + v.length <= n && value.startsWith(v, p)) {
              next[p + v.length] = 1;
              if (newLo < 0 || p + v.length < newLo) newLo = p + v.length;
            }
          }
        }
        break;
    }
    if (newLo < 0) return false;
    lo = newLo;
    const swap = cur;
    cur = next;
    next = swap;
  }
  return cur[n] === 1;
}

/** A matcher for glob tokens, with the common shapes (exact, `prefix/**`, `*`) as plain string tests. */
export function compileGlobTokens(tokens0: readonly GlobToken[]): Matcher {
  const tokens = normalise(tokens0);
  if (tokens.some((t) => t.kind === 'set' && t.values.length === 0)) return () => false;
  if (tokens.length === 0) return (v) => v === '';
  const first = tokens[0]!;
  if (tokens.length === 1) {
    if (first.kind === 'lit') return (v) => v === first.text;
    if (first.kind === 'any') return () => true;
  }
  const prefix = first.kind === 'lit' ? first.text : '';
  // `team/**` is by far the commonest shape: a prefix test.
  if (tokens.length === 2 && prefix && tokens[1]!.kind === 'any') return (v) => v.startsWith(prefix);
  // `${labels:groups}/**`, the next commonest: one prefix test per value.
  if (first.kind === 'set' && tokens[tokens.length - 1]!.kind === 'any' && tokens.length <= 3 && (tokens.length === 2 || tokens[1]!.kind === 'lit')) {
    const tail = tokens.length === 3 ? (tokens[1] as { text: string }).text : '';
    const prefixes = first.values.map((x) => x + tail);
    return (v) => prefixes.some((p) => v.startsWith(p));
  }
  return withPrefix(prefix, (v) => matchGlob(tokens, v));
}

/** Glob only: `/x/` is the literal text `/x/` here (PAT and robot restrictions). */
export function compileGlob(glob: string): Matcher {
  // A lone `*` has always matched everything, slashes included (docker_auth does the same).
  if (glob === '*') return () => true;
  return compileGlobTokens(parseGlob(glob));
}

export function isRegexPattern(p: string): boolean {
  return p.length >= 2 && p.startsWith('/') && p.endsWith('/');
}

export type PatternKind = 'glob' | 'regex';

export function compilePattern(pattern: string): Matcher {
  return compilePatternAs(pattern, isRegexPattern(pattern) ? 'regex' : 'glob');
}

/**
 * Compiles with a kind fixed by the caller: once placeholders are filled in, the text must keep the
 * kind of the configured pattern, or an account named `/.+/` would turn a glob into a match-all regex.
 */
export function compilePatternAs(pattern: string, kind: PatternKind): Matcher {
  if (kind === 'regex') {
    // The operator's own regex (ACL file, federation claims): V8's backtracking engine, anchored.
    const source = pattern.slice(1, -1);
    const re = new RegExp(`^(?:${source})$`);
    return withPrefix(regexLiteralPrefix(source), (v) => re.test(v));
  }
  return compileGlob(pattern);
}

/**
 * Large ACLs are mostly patterns that do not concern the name at hand; a literal prefix turns most
 * of those into one failed startsWith instead of a match run.
 */
function withPrefix(prefix: string, m: Matcher): Matcher {
  return prefix ? (v) => v.startsWith(prefix) && m(v) : m;
}

/** The literal text every match of a regex must start with ('' when unsure: alternation, escapes, quantifiers). */
function regexLiteralPrefix(source: string): string {
  if (source.includes('|')) return '';
  const m = /^[A-Za-z0-9_/-]*/.exec(source)![0];
  // A quantifier after the run applies to its last character, which then is not required.
  const next = source[m.length];
  return next === '?' || next === '*' || next === '{' ? m.slice(0, -1) : m;
}

/** Escape a placeholder's value so it is matched literally inside a regex pattern... */
export const escapeRegexLiteral = escapeRegex;

/** ...or inside a glob. */
export function escapeGlobLiteral(value: string): string {
  return /[*?\\]/.test(value) ? value.replace(/[*?\\]/g, (c) => `\\${c}`) : value;
}

export const MAX_RESTRICTION_PATTERN_LENGTH = 200;
const RESTRICTION_CHARS = /^[A-Za-z0-9*?._\-/:]+$/;

/**
 * Why a PAT or robot repository pattern is refused, or null. Restrictions are written by any
 * signed-in person, so they are globs only: a `/regex/` could hold the event loop for hours.
 */
export function restrictionPatternProblem(p: string): string | null {
  const shown = JSON.stringify(p.slice(0, 60));
  if (isRegexPattern(p)) return `repository pattern ${shown} is a regular expression; restrictions take globs only (* within a path segment, ** across segments, e.g. "team/**")`;
  if (!p || p.length > MAX_RESTRICTION_PATTERN_LENGTH) return `repository patterns are 1 to ${MAX_RESTRICTION_PATTERN_LENGTH} characters`;
  if (!RESTRICTION_CHARS.test(p)) return `invalid repository pattern ${shown}: letters, digits, ".", "_", "-", "/", ":" and the wildcards * ** ?`;
  return null;
}
