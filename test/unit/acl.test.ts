import { describe, expect, it } from 'vitest';
import type { AclRuleConfig } from '../../src/config/schema.js';
import { Acl, AclCompileError, parseClientIp, type AclSubject } from '../../src/policy/acl.js';
import { parseScope } from '../../src/policy/scope.js';

type Match = AclRuleConfig['match'];
const rule = (match: Match, actions: string[], comment?: string): AclRuleConfig => (comment === undefined ? { match, actions } : { match, actions, comment });

function subject(over: Partial<Omit<AclSubject, 'ip'>> & { ip?: string } = {}): AclSubject {
  return { account: over.account ?? 'alice', labels: over.labels ?? {}, service: over.service ?? 'registry', ip: parseClientIp(over.ip ?? '10.1.2.3') };
}

/** Granted actions for one scope string. */
function grant(acl: Acl, sub: AclSubject, scope: string): string[] {
  return acl.decideOne(sub, parseScope(scope)).granted;
}
function ruleFor(acl: Acl, sub: AclSubject, scope: string): number {
  return acl.decideOne(sub, parseScope(scope)).rule;
}

describe('ACL decisions', () => {
  it('lets the first matching rule decide, even when a later rule would grant more', () => {
    const acl = new Acl([rule({ account: 'alice' }, ['pull'], 'alice reads'), rule({ account: 'alice' }, ['*'], 'never reached')]);
    const d = acl.decideOne(subject(), parseScope('repository:a:pull,push'));
    expect(d.granted).toEqual(['pull']);
    expect(d.rule).toBe(0);
    expect(d.comment).toBe('alice reads');
  });

  it('skips rules that do not match and uses the next one', () => {
    const acl = new Acl([rule({ account: 'bob' }, ['*']), rule({ account: 'alice' }, ['pull'])]);
    expect(ruleFor(acl, subject(), 'repository:a:pull')).toBe(1);
  });

  it('["*"] grants exactly what was asked', () => {
    const acl = new Acl([rule({}, ['*'])]);
    expect(grant(acl, subject(), 'repository:a:pull,push,delete')).toEqual(['pull', 'push', 'delete']);
    expect(grant(acl, subject(), 'repository:a:pull')).toEqual(['pull']);
  });

  it('a list grants the intersection with what was asked', () => {
    const acl = new Acl([rule({}, ['pull', 'delete'])]);
    expect(grant(acl, subject(), 'repository:a:pull,push')).toEqual(['pull']);
    expect(grant(acl, subject(), 'repository:a:push')).toEqual([]);
  });

  it('[] is an explicit deny that stops later rules', () => {
    const acl = new Acl([rule({ name: 'secret/*' }, [], 'nobody'), rule({}, ['*'])]);
    const d = acl.decideOne(subject(), parseScope('repository:secret/x:pull'));
    expect(d.granted).toEqual([]);
    expect(d.rule).toBe(0);
    expect(grant(acl, subject(), 'repository:public/x:pull')).toEqual(['pull']);
  });

  it('grants nothing when no rule matches, and says so with rule -1', () => {
    const acl = new Acl([rule({ account: 'bob' }, ['*'])]);
    const d = acl.decideOne(subject(), parseScope('repository:a:pull'));
    expect(d).toEqual({ scope: parseScope('repository:a:pull'), granted: [], rule: -1 });
  });

  it('an empty ACL grants nothing', () => {
    expect(grant(new Acl([]), subject(), 'repository:a:pull')).toEqual([]);
  });

  it('decides each scope on its own', () => {
    const acl = new Acl([rule({ name: 'a' }, ['pull']), rule({ name: 'b' }, ['*'])]);
    const ds = acl.decide(subject(), [parseScope('repository:a:pull,push'), parseScope('repository:b:push'), parseScope('repository:c:pull')]);
    expect(ds.map((d) => [d.rule, d.granted])).toEqual([
      [0, ['pull']],
      [1, ['push']],
      [-1, []],
    ]);
  });

  it('all match fields of a rule must hold', () => {
    const acl = new Acl([rule({ account: 'alice', name: 'a', type: 'repository', service: 'registry' }, ['pull'])]);
    expect(grant(acl, subject(), 'repository:a:pull')).toEqual(['pull']);
    expect(grant(acl, subject({ account: 'bob' }), 'repository:a:pull')).toEqual([]);
    expect(grant(acl, subject(), 'repository:b:pull')).toEqual([]);
    expect(grant(acl, subject({ service: 'other' }), 'repository:a:pull')).toEqual([]);
  });

  it('registry:catalog:* can be granted to an account and is refused to others', () => {
    const acl = new Acl([rule({ account: 'ops', type: 'registry', name: 'catalog' }, ['*']), rule({ account: '/.+/' }, ['pull'])]);
    expect(grant(acl, subject({ account: 'ops' }), 'registry:catalog:*')).toEqual(['*']);
    const other = acl.decideOne(subject({ account: 'dev' }), parseScope('registry:catalog:*'));
    expect(other.rule).toBe(1);
    expect(other.granted).toEqual([]);
  });

  it('matches the anonymous account "" only where a rule says so', () => {
    const acl = new Acl([rule({ account: '', name: 'hello-world' }, ['pull'], 'anonymous pulls hello-world'), rule({ account: '/.+/' }, ['*'])]);
    const anon = subject({ account: '' });
    expect(grant(acl, anon, 'repository:hello-world:pull,push')).toEqual(['pull']);
    expect(grant(acl, anon, 'repository:other:pull')).toEqual([]);
    expect(grant(acl, subject({ account: 'alice' }), 'repository:hello-world:push')).toEqual(['push']);
  });

  it('the service field restricts a rule to one audience', () => {
    const acl = new Acl([rule({ service: 'staging-*' }, ['*'])]);
    expect(grant(acl, subject({ service: 'staging-eu' }), 'repository:a:push')).toEqual(['push']);
    expect(grant(acl, subject({ service: 'prod' }), 'repository:a:push')).toEqual([]);
  });

  it('the type field distinguishes repository from registry', () => {
    const acl = new Acl([rule({ type: 'registry' }, ['*'])]);
    expect(grant(acl, subject(), 'registry:catalog:*')).toEqual(['*']);
    expect(grant(acl, subject(), 'repository:catalog:pull')).toEqual([]);
  });
});

describe('patterns', () => {
  it('glob * stays within one path segment', () => {
    const acl = new Acl([rule({ name: 'team/*' }, ['pull'])]);
    expect(grant(acl, subject(), 'repository:team/app:pull')).toEqual(['pull']);
    expect(grant(acl, subject(), 'repository:team/app/sub:pull')).toEqual([]);
    expect(grant(acl, subject(), 'repository:teamx/app:pull')).toEqual([]);
  });

  it('glob ** crosses /', () => {
    const acl = new Acl([rule({ name: 'team/**' }, ['pull'])]);
    expect(grant(acl, subject(), 'repository:team/app/sub/deeper:pull')).toEqual(['pull']);
    expect(grant(acl, subject(), 'repository:other/app:pull')).toEqual([]);
  });

  it('glob ? is one character and not /', () => {
    const acl = new Acl([rule({ name: 'app?' }, ['pull'])]);
    expect(grant(acl, subject(), 'repository:app1:pull')).toEqual(['pull']);
    expect(grant(acl, subject(), 'repository:app12:pull')).toEqual([]);
    expect(grant(acl, subject(), 'repository:app/:pull')).toEqual([]);
  });

  it('a plain name without wildcards matches only itself (dots are literal)', () => {
    const acl = new Acl([rule({ name: 'a.b' }, ['pull'])]);
    expect(grant(acl, subject(), 'repository:a.b:pull')).toEqual(['pull']);
    expect(grant(acl, subject(), 'repository:axb:pull')).toEqual([]);
  });

  it('glob metacharacters of regular expressions are literal', () => {
    const acl = new Acl([rule({ name: 'a+(b)*' }, ['pull'])]);
    const named = (name: string) => acl.decideOne(subject(), { type: 'repository', name, actions: ['pull'] }).granted;
    expect(named('a+(b)x')).toEqual(['pull']);
    expect(named('aaa(b)x')).toEqual([]);
    expect(named('ab')).toEqual([]);
  });

  it('/regex/ is anchored: /foo/ does not match xfoox', () => {
    const acl = new Acl([rule({ name: '/foo/' }, ['pull'])]);
    expect(grant(acl, subject(), 'repository:foo:pull')).toEqual(['pull']);
    expect(grant(acl, subject(), 'repository:xfoox:pull')).toEqual([]);
    expect(grant(acl, subject(), 'repository:foox:pull')).toEqual([]);
  });

  it('an anchored regex with alternation is anchored as a whole', () => {
    const acl = new Acl([rule({ name: '/a|b/' }, ['pull'])]);
    expect(grant(acl, subject(), 'repository:a:pull')).toEqual(['pull']);
    expect(grant(acl, subject(), 'repository:b:pull')).toEqual(['pull']);
    expect(grant(acl, subject(), 'repository:ab:pull')).toEqual([]);
    expect(grant(acl, subject(), 'repository:xa:pull')).toEqual([]);
  });

  it('a regex may span segments when it says so', () => {
    const acl = new Acl([rule({ account: '/.+/', name: '/(dev|qa)/.+/' }, ['push'])]);
    expect(grant(acl, subject(), 'repository:dev/a/b:push')).toEqual(['push']);
    expect(grant(acl, subject(), 'repository:prod/a:push')).toEqual([]);
    expect(grant(acl, subject({ account: '' }), 'repository:dev/a:push')).toEqual([]);
  });

  it('an invalid regex is refused when the ACL is built, naming the rule', () => {
    expect(() => new Acl([rule({}, ['*']), rule({ name: '/(unclosed/' }, ['pull'])])).toThrow(AclCompileError);
    expect(() => new Acl([rule({}, ['*']), rule({ name: '/(unclosed/' }, ['pull'])])).toThrow(/acl\[1\]\.match\.name: invalid pattern/);
  });
});

describe('placeholders', () => {
  it('${account} lets every user own a namespace', () => {
    const acl = new Acl([rule({ account: '/.+/', name: '${account}/*' }, ['*'], 'own namespace')]);
    expect(grant(acl, subject({ account: 'alice' }), 'repository:alice/app:push')).toEqual(['push']);
    expect(grant(acl, subject({ account: 'alice' }), 'repository:bob/app:push')).toEqual([]);
  });

  it('${name} and ${type} refer to the requested resource', () => {
    const acl = new Acl([rule({ account: '${name}' }, ['pull']), rule({ name: '${type}-mirror' }, ['push'])]);
    expect(grant(acl, subject({ account: 'alice' }), 'repository:alice:pull')).toEqual(['pull']);
    expect(grant(acl, subject({ account: 'alice' }), 'repository:repository-mirror:push')).toEqual(['push']);
    expect(grant(acl, subject({ account: 'alice' }), 'repository:registry-mirror:push')).toEqual([]);
  });

  it('${service} refers to the audience', () => {
    const acl = new Acl([rule({ name: '${service}/*' }, ['pull'])]);
    expect(grant(acl, subject({ service: 'eu' }), 'repository:eu/app:pull')).toEqual(['pull']);
    expect(grant(acl, subject({ service: 'us' }), 'repository:eu/app:pull')).toEqual([]);
  });

  it('${labels:KEY} tries every value of the label', () => {
    const acl = new Acl([rule({ name: '${labels:groups}/*' }, ['push'])]);
    const sub = subject({ labels: { groups: ['web', 'data', 'ops'] } });
    expect(grant(acl, sub, 'repository:web/app:push')).toEqual(['push']);
    expect(grant(acl, sub, 'repository:ops/app:push')).toEqual(['push']);
    expect(grant(acl, sub, 'repository:sales/app:push')).toEqual([]);
  });

  it('${labels:KEY} does not match when the subject has no such label', () => {
    const acl = new Acl([rule({ name: '${labels:groups}/*' }, ['push'])]);
    expect(grant(acl, subject({ labels: {} }), 'repository:web/app:push')).toEqual([]);
    // No value at all must not degrade to an empty prefix ("/app").
    expect(acl.decideOne(subject({ labels: { groups: [] } }), { type: 'repository', name: '/app', actions: ['push'] }).granted).toEqual([]);
  });

  it('a label value containing * is matched literally, not as a glob', () => {
    const acl = new Acl([rule({ name: '${labels:groups}/app' }, ['push'])]);
    const sub = subject({ labels: { groups: ['*'] } });
    expect(grant(acl, sub, 'repository:web/app:push')).toEqual([]);
    expect(acl.decideOne(sub, { type: 'repository', name: '*/app', actions: ['push'] }).granted).toEqual(['push']);
  });

  it('a label value containing ** or ? stays literal too', () => {
    const acl = new Acl([rule({ name: '${labels:team}' }, ['push'])]);
    expect(grant(acl, subject({ labels: { team: ['**'] } }), 'repository:anything/at/all:push')).toEqual([]);
    expect(grant(acl, subject({ labels: { team: ['a?'] } }), 'repository:ab:push')).toEqual([]);
  });

  it('an account that looks like a regex is still matched literally', () => {
    const acl = new Acl([rule({ name: '${account}' }, ['push'])]);
    expect(grant(acl, subject({ account: '/.+/' }), 'repository:victim:push')).toEqual([]);
    expect(grant(acl, subject({ account: '/a|b/' }), 'repository:a:push')).toEqual([]);
  });

  it('a value is escaped inside a /regex/ pattern', () => {
    const acl = new Acl([rule({ name: '/${account}-(dev|prod)/' }, ['pull'])]);
    expect(grant(acl, subject({ account: 'a.b' }), 'repository:a.b-dev:pull')).toEqual(['pull']);
    expect(grant(acl, subject({ account: 'a.b' }), 'repository:axb-dev:pull')).toEqual([]);
    expect(grant(acl, subject({ account: '.*' }), 'repository:anything-dev:pull')).toEqual([]);
  });

  it('a value that would make the regex invalid does not throw, it just does not match', () => {
    const acl = new Acl([rule({ name: '/[${account}]x/' }, ['pull'])]);
    expect(() => grant(acl, subject({ account: 'z-a' }), 'repository:zx:pull')).not.toThrow();
    expect(grant(acl, subject({ account: 'z-a' }), 'repository:zx:pull')).toEqual([]);
  });

  it('several placeholders combine', () => {
    const acl = new Acl([rule({ name: '${labels:org}/${account}/*' }, ['push'])]);
    const sub = subject({ account: 'alice', labels: { org: ['acme', 'initech'] } });
    expect(grant(acl, sub, 'repository:initech/alice/x:push')).toEqual(['push']);
    expect(grant(acl, sub, 'repository:initech/bob/x:push')).toEqual([]);
  });
});

describe('labels', () => {
  it('a label matches when any of its values matches', () => {
    const acl = new Acl([rule({ labels: { groups: 'admins' } }, ['*'])]);
    expect(grant(acl, subject({ labels: { groups: ['dev', 'admins'] } }), 'repository:a:push')).toEqual(['push']);
    expect(grant(acl, subject({ labels: { groups: ['dev'] } }), 'repository:a:push')).toEqual([]);
    expect(grant(acl, subject({ labels: {} }), 'repository:a:push')).toEqual([]);
  });

  it('a list of patterns for one label matches when any pattern matches any value', () => {
    const acl = new Acl([rule({ labels: { groups: ['ops', 'sre-*'] } }, ['*'])]);
    expect(grant(acl, subject({ labels: { groups: ['sre-eu'] } }), 'repository:a:push')).toEqual(['push']);
    expect(grant(acl, subject({ labels: { groups: ['dev'] } }), 'repository:a:push')).toEqual([]);
  });

  it('every label in a rule must match', () => {
    const acl = new Acl([rule({ labels: { groups: 'dev', tier: 'gold' } }, ['*'])]);
    expect(grant(acl, subject({ labels: { groups: ['dev'], tier: ['gold'] } }), 'repository:a:pull')).toEqual(['pull']);
    expect(grant(acl, subject({ labels: { groups: ['dev'], tier: ['silver'] } }), 'repository:a:pull')).toEqual([]);
  });

  it('label patterns may use placeholders', () => {
    const acl = new Acl([rule({ labels: { groups: '${name}-writers' } }, ['push'])]);
    expect(grant(acl, subject({ labels: { groups: ['web-writers'] } }), 'repository:web:push')).toEqual(['push']);
    expect(grant(acl, subject({ labels: { groups: ['web-writers'] } }), 'repository:db:push')).toEqual([]);
  });
});

describe('ip', () => {
  it('matches a single IPv4 address', () => {
    const acl = new Acl([rule({ ip: '10.1.2.3' }, ['*'])]);
    expect(grant(acl, subject({ ip: '10.1.2.3' }), 'repository:a:pull')).toEqual(['pull']);
    expect(grant(acl, subject({ ip: '10.1.2.4' }), 'repository:a:pull')).toEqual([]);
  });

  it('matches an IPv4 CIDR range', () => {
    const acl = new Acl([rule({ ip: '10.0.0.0/8' }, ['*'])]);
    expect(grant(acl, subject({ ip: '10.200.3.4' }), 'repository:a:pull')).toEqual(['pull']);
    expect(grant(acl, subject({ ip: '11.0.0.1' }), 'repository:a:pull')).toEqual([]);
  });

  it('matches an IPv4-mapped IPv6 client address against IPv4 rules', () => {
    const acl = new Acl([rule({ ip: '192.168.0.0/16' }, ['*']), rule({ ip: '127.0.0.1' }, ['pull'])]);
    expect(grant(acl, subject({ ip: '::ffff:192.168.7.9' }), 'repository:a:push')).toEqual(['push']);
    expect(ruleFor(acl, subject({ ip: '::ffff:127.0.0.1' }), 'repository:a:pull')).toBe(1);
    expect(grant(acl, subject({ ip: '::ffff:172.16.0.1' }), 'repository:a:push')).toEqual([]);
  });

  it('matches a single IPv6 address and an IPv6 CIDR range', () => {
    const acl = new Acl([rule({ ip: '2001:db8::1' }, ['push']), rule({ ip: 'fd00::/8' }, ['pull'])]);
    expect(grant(acl, subject({ ip: '2001:db8:0:0::1' }), 'repository:a:push')).toEqual(['push']);
    expect(grant(acl, subject({ ip: '2001:db8::2' }), 'repository:a:push')).toEqual([]);
    expect(grant(acl, subject({ ip: 'fd12:3456::9' }), 'repository:a:pull')).toEqual(['pull']);
    expect(grant(acl, subject({ ip: 'fe80::1' }), 'repository:a:pull')).toEqual([]);
  });

  it('never matches across address families or an unknown client address', () => {
    const acl = new Acl([rule({ ip: '0.0.0.0/0' }, ['pull']), rule({ ip: '::/0' }, ['push'])]);
    expect(ruleFor(acl, subject({ ip: '2001:db8::1' }), 'repository:a:push')).toBe(1);
    expect(ruleFor(acl, subject({ ip: '1.2.3.4' }), 'repository:a:push')).toBe(0);
    expect(ruleFor(acl, subject({ ip: 'not-an-ip' }), 'repository:a:push')).toBe(-1);
  });

  it('an invalid ip in a rule is refused when the ACL is built, naming the rule', () => {
    expect(() => new Acl([rule({ ip: '10.0.0.0/99' }, ['*'])])).toThrow(/acl\[0\]\.match\.ip: not an IP address or CIDR range/);
    expect(() => new Acl([rule({ ip: 'example.com' }, ['*'])])).toThrow(AclCompileError);
  });

  it('refuses IPv4 shorthand and octal forms that would silently mean another address', () => {
    // `10/8` would otherwise be 0.0.0.10/8 and `010.0.0.1` would be 8.0.0.1.
    for (const ip of ['10/8', '10', '010.0.0.1', '0xa.0.0.1', '10.1/16']) {
      expect(() => new Acl([rule({ ip }, [])]), ip).toThrow(/not an IP address or CIDR range/);
    }
  });

  it('a rule written as an IPv4-mapped IPv6 range matches IPv4 clients', () => {
    const acl = new Acl([rule({ ip: '::ffff:10.0.0.0/104' }, ['pull'])]);
    expect(grant(acl, subject({ ip: '10.9.9.9' }), 'repository:a:pull')).toEqual(['pull']);
    expect(grant(acl, subject({ ip: '::ffff:10.9.9.9' }), 'repository:a:pull')).toEqual(['pull']);
    expect(grant(acl, subject({ ip: '11.0.0.1' }), 'repository:a:pull')).toEqual([]);
  });
});

describe('parseClientIp', () => {
  it('turns IPv4-mapped IPv6 into IPv4 and leaves others alone', () => {
    expect(parseClientIp('::ffff:1.2.3.4')!.kind()).toBe('ipv4');
    expect(parseClientIp('::ffff:1.2.3.4')!.toString()).toBe('1.2.3.4');
    expect(parseClientIp('::1')!.kind()).toBe('ipv6');
    expect(parseClientIp(undefined)).toBeNull();
    expect(parseClientIp('garbage')).toBeNull();
  });
});

describe('cost', () => {
  it('decides 10 scopes against 1,000 rules and finds the right rule for each', () => {
    // 990 rules that never match this subject (other accounts, other names, ip and label rules),
    // then the rules that do, so every scope walks most of the list.
    const rules: AclRuleConfig[] = [];
    for (let i = 0; i < 990; i++) {
      if (i % 3 === 0) rules.push(rule({ account: `user${i}`, name: `team${i}/*` }, ['*']));
      else if (i % 3 === 1) rules.push(rule({ labels: { groups: `group-${i}` }, name: '${labels:groups}/**' }, ['push']));
      else rules.push(rule({ ip: `172.16.${i % 256}.0/24`, name: `/svc${i}-(a|b)/` }, ['pull']));
    }
    for (let j = 0; j < 10; j++) rules.push(rule({ account: 'alice', name: `ns${j}/*` }, j % 2 ? ['pull'] : ['*'], `rule for ns${j}`));
    expect(rules).toHaveLength(1000);
    const acl = new Acl(rules);
    const sub = subject({ account: 'alice', labels: { groups: Array.from({ length: 20 }, (_, k) => `g${k}`) } });
    const scopes = Array.from({ length: 10 }, (_, j) => parseScope(`repository:ns${j}/app:pull,push`));
    for (let round = 0; round < 50; round++) {
      const ds = acl.decide(sub, scopes);
      expect(ds.map((d) => d.rule)).toEqual(Array.from({ length: 10 }, (_, j) => 990 + j));
      expect(ds.map((d) => d.granted)).toEqual(Array.from({ length: 10 }, (_, j) => (j % 2 ? ['pull'] : ['pull', 'push'])));
      expect(ds[3]!.comment).toBe('rule for ns3');
    }
  });
});

describe('identity-provider text in placeholders', () => {
  // Label values come from the identity provider (groups) and accounts from sign-in: never syntax,
  // never a cost beyond linear.
  it('a value full of wildcards is literal and costs no backtracking on a 512-character name', () => {
    const acl = new Acl([rule({ name: '${labels:groups}/**' }, ['push']), rule({ name: '*/${account}' }, ['pull'])]);
    const evil = `${'*a'.repeat(20)}*b`;
    const sub = subject({ account: evil, labels: { groups: [evil, '**', '?'] } });
    const t = performance.now();
    expect(grant(acl, sub, `repository:${'a'.repeat(512)}:push,pull`)).toEqual([]);
    expect(grant(acl, sub, `repository:${'a/'.repeat(255)}a:push,pull`)).toEqual([]);
    expect(performance.now() - t).toBeLessThan(100);
    // ...and still matches itself, literally.
    expect(acl.decideOne(sub, { type: 'repository', name: `${evil}/x`, actions: ['push'] }).granted).toEqual(['push']);
    expect(acl.decideOne(sub, { type: 'repository', name: `x/${evil}`, actions: ['pull'] }).granted).toEqual(['pull']);
  });

  it('several label placeholders in one glob are not multiplied out: 3 × 400 values decide in milliseconds', () => {
    const acl = new Acl([rule({ name: '${labels:org}/${labels:team}/${labels:env}-*' }, ['push'])]);
    const many = (p: string) => Array.from({ length: 400 }, (_, i) => `${p}${i}`);
    const sub = subject({ labels: { org: many('o'), team: many('t'), env: many('e') } });
    const t = performance.now();
    // 64 million combinations if expanded; the old code built them one by one.
    expect(grant(acl, sub, 'repository:o399/t17/e250-api:push')).toEqual(['push']);
    expect(grant(acl, sub, 'repository:o399/t17/x250-api:push')).toEqual([]);
    expect(grant(acl, sub, `repository:o1/t1/e1-${'a'.repeat(490)}:push`)).toEqual(['push']);
    expect(performance.now() - t).toBeLessThan(500);
  });

  it('a /regex/ rule whose label product is too large denies at that rule instead of being skipped', () => {
    const acl = new Acl([rule({ name: '/${labels:org}-${labels:team}-(dev|qa)/' }, ['pull'], 'org-team'), rule({}, ['*'], 'everything else')]);
    const many = (p: string) => Array.from({ length: 100 }, (_, i) => `${p}${i}`);
    const big = acl.decideOne(subject({ labels: { org: many('o'), team: many('t') } }), parseScope('repository:o1-t1-dev:pull,push'));
    expect(big.rule).toBe(0);
    expect(big.granted).toEqual([]);
    expect(big.comment).toMatch(/too many label values/);
    // A product within bounds is decided as before.
    const small = subject({ labels: { org: many('o').slice(0, 10), team: many('t').slice(0, 10) } });
    expect(grant(acl, small, 'repository:o1-t9-qa:pull,push')).toEqual(['pull']);
    expect(ruleFor(acl, small, 'repository:o1-t9-prod:pull')).toBe(1);
    // One label alone is linear in its values and never refused.
    const single = new Acl([rule({ name: '/${labels:groups}-(dev|qa)/' }, ['pull'])]);
    expect(grant(single, subject({ labels: { groups: Array.from({ length: 5000 }, (_, i) => `g${i}`) } }), 'repository:g4999-qa:pull')).toEqual(['pull']);
  });
});
