import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { Acl } from '../../src/policy/acl.js';
import { compileGlob, compileGlobTokens, compilePattern, escapeGlobLiteral, parseGlob, restrictionPatternProblem } from '../../src/policy/pattern.js';
import { MAX_NAME_LENGTH, parseScope } from '../../src/policy/scope.js';
import { authorize } from '../../src/http/token/authorize.js';
import type { TokenRequest } from '../../src/http/token/request.js';
import { parseTokenInput } from '../../src/http/web/token-form.js';
import { PatPolicyError, Pats } from '../../src/tokens/pats.js';
import { RefreshTokens } from '../../src/tokens/refresh-tokens.js';
import { RobotError, Robots } from '../../src/robots/robots.js';
import { MemoryStore } from '../../src/store/memory.js';

// Anything a signed-in person (a PAT or robot restriction) or an identity provider (a label value)
// supplies must cost linear time to match. The old globs compiled to `[^/]*a[^/]*a…` RegExps:
// `*a*a*a*b` against 400 a's took 7 s, `/.*.*.*.*.*z/` against 200 a's 18 s (measured on this machine).

/** The RegExp the globs used to compile to: the reference for what a glob means. */
function referenceRegex(glob: string): RegExp {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '\\' && i + 1 < glob.length) out += esc(glob[++i]!);
    else if (c === '*') {
      if (glob[i + 1] === '*') {
        out += '.*';
        i++;
      } else out += '[^/]*';
    } else if (c === '?') out += '[^/]';
    else out += esc(c);
  }
  return new RegExp(`^${out}$`);
}

const long = 'a'.repeat(MAX_NAME_LENGTH);
const PATHOLOGICAL_GLOBS = [
  '*a*a*a*a*a*a*a*a*a*a*b',
  '**a**a**a**a**a**a**a**a**b',
  '*?*?*?*?*?*?*?*?*?*?*?*b',
  `${'a*'.repeat(99)}b`, // 199 characters, just under the restriction limit
  `${'**a'.repeat(66)}b`,
  '*/*/*/*/*/*/*/*/*/*/*/*/*/*/*/*/x',
];
const NAMES = [long, 'a/'.repeat(MAX_NAME_LENGTH / 2), `${'a'.repeat(MAX_NAME_LENGTH - 1)}c`, `${'ab'.repeat(MAX_NAME_LENGTH / 2 - 1)}/x`];

/** Milliseconds one call takes. */
function timed(f: () => void): number {
  const t = performance.now();
  f();
  return performance.now() - t;
}

describe('glob matching', () => {
  it('means exactly what the RegExp it replaces meant', () => {
    const piece = fc.constantFrom('a', 'b', '/', '*', '**', '?', '\\*', '.', '+');
    const name = fc.array(fc.constantFrom('a', 'b', '/', '*', '.', '+'), { maxLength: 12 }).map((xs) => xs.join(''));
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 8 }).map((xs) => xs.join('')), name, (glob, value) => {
        // A lone `*` is the one deliberate exception: it has always matched everything.
        const expected = glob === '*' ? true : referenceRegex(glob).test(value);
        expect(compileGlob(glob)(value), `${glob} ~ ${value}`).toBe(expected);
      }),
      { numRuns: 3000 },
    );
  });

  it('a set of literal values (a placeholder) means: any one of the values, written literally', () => {
    const text = fc.array(fc.constantFrom('a', 'b', '/', '*', '?'), { maxLength: 4 }).map((xs) => xs.join(''));
    const rest = fc.array(fc.constantFrom('a', '/', '*', '**', '?'), { maxLength: 4 }).map((xs) => xs.join(''));
    fc.assert(
      fc.property(fc.array(text, { minLength: 1, maxLength: 4 }), rest, text, (values, tail, value) => {
        const expected = values.some((v) => referenceRegex(escapeGlobLiteral(v) + tail).test(value));
        expect(compileGlobTokens([{ kind: 'set', values }, ...parseGlob(tail)])(value)).toBe(expected);
      }),
      { numRuns: 3000 },
    );
  });

  it('answers pathological globs against 512-character names in milliseconds', () => {
    let worst = 0;
    const started = performance.now();
    for (const glob of PATHOLOGICAL_GLOBS) {
      const m = compilePattern(glob);
      for (const n of NAMES) {
        let result = true;
        // Best of three: a loaded machine adds pauses of its own (measured: up to 15 ms on a 0.03 ms call).
        const ms = Math.min(...[0, 1, 2].map(() => timed(() => (result = m(n)))));
        worst = Math.max(worst, ms);
        // Each needs what these names lack (a final b, or 17 segments ending in x): the worst case.
        expect(result, `${glob} ~ ${n.slice(0, 20)}…`).toBe(false);
      }
    }
    // O(512 × 200) steps: about 0.3 ms once compiled by V8, 25 ms before. The old RegExps took
    // seconds at 400 characters and hours at 512.
    expect(worst).toBeLessThan(40);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('still finds the matches in long names', () => {
    expect(compileGlob('**a**a**a**b')(`${long}b`)).toBe(true);
    expect(compileGlob('*a*a*a*b')(`${long}b`)).toBe(true);
    expect(compileGlob('team/**/app-?')(`team/${'x/'.repeat(200)}app-1`)).toBe(true);
    expect(compileGlob('team/*/app-?')(`team/${'x/'.repeat(2)}app-1`)).toBe(false);
    expect(compileGlob('*/*/*/*/*/*/*/*/*/*/*/*/*/*/*/*/x')(`${'a/'.repeat(16)}x`)).toBe(true);
    expect(compileGlob(`${'a*'.repeat(99)}b`)(`${long}b`)).toBe(true);
  });
});

describe('restriction patterns', () => {
  it('are globs only: a /regex/ is refused with a message that says what to write', () => {
    expect(restrictionPatternProblem('/.*.*.*.*.*z/')).toMatch(/regular expression; restrictions take globs only .*team\/\*\*/);
    expect(restrictionPatternProblem('team/**')).toBeNull();
    expect(restrictionPatternProblem('x'.repeat(201))).toMatch(/1 to 200 characters/);
    expect(restrictionPatternProblem('a b')).toMatch(/invalid repository pattern/);
  });

  it('the token form and the API refuse a /regex/', () => {
    expect(() => parseTokenInput({ name: 'ci', repositories: '/.*.*.*.*.*z/', actions: 'pull' })).toThrow(PatPolicyError);
    expect(() => parseTokenInput({ name: 'ci', repositories: ['team/**', '/.*z/'], actions: ['pull'] })).toThrow(/regular expression/);
  });

  it('Pats.create and Robots.create refuse a /regex/ whoever calls them', async () => {
    const store = new MemoryStore();
    const pats = new Pats(store, { defaultTTLSeconds: 3600, maxTTLSeconds: 7200, maxPerUser: 5 }, new RefreshTokens(store, 3600));
    await expect(pats.create({ owner: 'o', username: 'u', name: 'x', restriction: { repositories: ['/.*.*.*.*.*z/'], actions: ['pull'] } })).rejects.toThrow(/regular expression/);
    const robots = new Robots(store);
    const made = robots.create({ name: 'r', owner: 'admin', restriction: { repositories: ['/(a+)+z/'], actions: ['pull'] } });
    await expect(made).rejects.toBeInstanceOf(RobotError);
    await expect(made).rejects.toThrow(/regular expression/);
    expect(await pats.list('o')).toEqual([]);
    expect(await robots.list()).toEqual([]);
    await store.close();
  });

  it('check-config refuses a /regex/ in a robot declared in config, naming the path', async () => {
    const text = (repo: string) => `
robots:
  - name: robot:deploy
    repositories: ["apps/web", "${repo}"]
    actions: [pull]
    secretSHA256: "${'a'.repeat(64)}"
`;
    await expect(loadConfigText(text('/.*.*.*.*.*z/'), '/tmp')).rejects.toThrow(/robots\[0\]\.repositories\[1\].*regular expression; restrictions take globs only/s);
    await expect(loadConfigText(text('apps/**'), '/tmp')).resolves.toBeDefined();
  });

  it('a /regex/ restriction stored before the fix is literal text at authorization: no match, no backtracking', () => {
    const acl = new Acl([{ match: { account: 'alice' }, actions: ['*'] }]);
    const req: TokenRequest = { method: 'GET', grantType: 'none', username: 'alice', password: '', refreshToken: '', service: 'registry', scopes: [parseScope(`repository:${long}:pull,push`)], offline: false, clientId: '' };
    let access: { actions: string[] }[] = [];
    const ms = timed(() => {
      access = authorize(req, { account: 'alice', kind: 'pat', labels: {}, restriction: { repositories: ['/.*.*.*.*.*z/'], actions: ['*'] } }, acl, '10.0.0.1').access;
    });
    expect(access[0]!.actions).toEqual([]);
    expect(ms).toBeLessThan(200);
    const glob = authorize(req, { account: 'alice', kind: 'pat', labels: {}, restriction: { repositories: ['*a*a*a*a*a*a*a*a*a*a*a*a'], actions: ['pull'] } }, acl, '10.0.0.1');
    expect(glob.access[0]!.actions).toEqual(['pull']);
  });
});
