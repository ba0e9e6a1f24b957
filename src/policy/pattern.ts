/**
 * ACL patterns: a glob where `*` and `?` stay inside one path segment and `**` crosses `/`, or
 * `/regex/`, which Berth anchors (docker_auth does not, so `/foo/` there also matched `xfoox`).
 */
export type Matcher = (value: string) => boolean;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

export function globToRegexSource(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '\\' && i + 1 < glob.length) {
      out += escapeRegex(glob[++i]!);
    } else if (c === '*') {
      if (glob[i + 1] === '*') {
        out += '.*';
        i++;
      } else out += '[^/]*';
    } else if (c === '?') out += '[^/]';
    else out += escapeRegex(c);
  }
  return out;
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
    const source = pattern.slice(1, -1);
    const re = new RegExp(`^(?:${source})$`);
    return withPrefix(regexLiteralPrefix(source), (v) => re.test(v));
  }
  if (pattern === '*' || pattern === '**') return () => true;
  if (!/[*?\\]/.test(pattern)) return (v) => v === pattern;
  const wild = pattern.search(/[*?\\]/);
  const prefix = pattern.slice(0, wild);
  // `team/**` is by far the commonest shape: a prefix test, no regex at all.
  if (pattern.slice(wild) === '**') return (v) => v.startsWith(prefix);
  const re = new RegExp(`^${globToRegexSource(pattern)}$`);
  return withPrefix(prefix, (v) => re.test(v));
}

/**
 * Large ACLs are mostly patterns that do not concern the name at hand; a literal prefix turns most
 * of those into one failed startsWith instead of a regex run.
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
