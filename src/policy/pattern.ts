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
    const re = new RegExp(`^(?:${pattern.slice(1, -1)})$`);
    return (v) => re.test(v);
  }
  if (pattern === '*' || pattern === '**') return () => true;
  if (!/[*?\\]/.test(pattern)) return (v) => v === pattern;
  const re = new RegExp(`^${globToRegexSource(pattern)}$`);
  return (v) => re.test(v);
}

/** Escapes a placeholder's value so it is matched literally inside a glob or a regex. */
export function literalFor(pattern: string, value: string): string {
  return isRegexPattern(pattern) ? escapeRegex(value) : value.replace(/[*?\\]/g, (c) => `\\${c}`);
}
