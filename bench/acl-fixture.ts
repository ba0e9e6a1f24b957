import type { AclRuleConfig } from '../src/config/schema.js';

/** Who the Berth targets authenticate as: an SSO user of team-a (PAT) or a static user with the same groups. */
export const BENCH_SERVICE = 'registry';
export const PAT_USER = { username: 'alice', email: 'alice@example.test', groups: ['team-a'] } as const;
/** The robot account of the robot targets (restricted to team-a/**, pull and push). */
export const ROBOT_NAME = 'bench';
export const STATIC_USER = { username: 'carol', password: 'bench-static-password', groups: ['team-a'] } as const;

/** A small installation's policy (the shape of config/compose/berth.yaml). */
export const SMALL_ACL: AclRuleConfig[] = [
  { match: { labels: { groups: 'platform' } }, actions: ['*'], comment: 'platform runs the registry' },
  { match: { account: 'robot:bench', name: 'team-a/**' }, actions: ['push', 'pull'], comment: 'the bench robot deploys team-a' },
  { match: { name: '${labels:groups}/**' }, actions: ['push', 'pull'], comment: 'teams push to their namespace' },
  { match: { account: '/.+/', type: 'repository' }, actions: ['pull'], comment: 'everyone signed in pulls' },
];

/**
 * One generated rule of a large installation. The kinds cycle through what such policies hold:
 * per-service accounts, per-project groups, home namespaces, legacy regexes, email domains, CI
 * address ranges and placeholder rules. None of them matches the bench users.
 */
function fillerRule(i: number): AclRuleConfig {
  switch (i % 7) {
    case 0:
      return { match: { account: `svc-${i}` }, actions: ['*'] };
    case 1:
      return { match: { name: `proj-${i}/**`, labels: { groups: `grp-${i}` } }, actions: ['push', 'pull'] };
    case 2:
      return { match: { account: `user-${i}`, type: 'repository', name: `home-${i}/*` }, actions: ['pull', 'push', 'delete'] };
    case 3:
      return { match: { name: `/legacy-${i}-[a-z0-9]+/` }, actions: ['pull'] };
    case 4:
      return { match: { labels: { email: `/.*@dept-${i}\\.example\\.com/` }, name: `dept-${i}/**` }, actions: ['pull'] };
    case 5:
      return { match: { ip: `10.${i % 256}.0.0/16`, name: `ci-${i}/**` }, actions: ['push', 'pull'] };
    default:
      return { match: { name: `\${labels:groups}-${i}/**` }, actions: ['pull'] };
  }
}

/**
 * `total` rules whose deciding ones come last, so that every scope of the bench user walks all of
 * them: the worst case of first-match evaluation.
 */
export function largeAcl(total = 1000): AclRuleConfig[] {
  const rules: AclRuleConfig[] = [];
  for (let i = 0; i < total - SMALL_ACL.length; i++) rules.push(fillerRule(i));
  return [...rules, ...SMALL_ACL];
}

/** `n` scopes the bench user is granted pull+push on. */
export function benchScopes(n: number): string[] {
  return Array.from({ length: n }, (_, k) => `repository:team-a/svc-${k}:pull,push`);
}
