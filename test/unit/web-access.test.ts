import type { Context } from 'koa';
import { describe, expect, it } from 'vitest';
import { Acl } from '../../src/policy/acl.js';
import { describeAccess, summarizeAccess } from '../../src/policy/explain.js';
import { parseScopes } from '../../src/policy/scope.js';
import { authorize } from '../../src/http/token/authorize.js';
import type { TokenRequest } from '../../src/http/token/request.js';
import type { Principal } from '../../src/model/principal.js';
import type { AclRuleConfig } from '../../src/config/schema.js';
import { MemoryStore } from '../../src/store/memory.js';
import { Sessions } from '../../src/http/web/session.js';

// Issue 13 item 5 (what an account may do, in words; a token's restriction named in the decision)
// and item 2's one-time slot, below the browser.

const RULES: AclRuleConfig[] = [
  { match: { account: 'admin' }, actions: ['*'], comment: 'admin may do everything' },
  { match: { labels: { groups: 'platform' } }, actions: ['*'] },
  { match: { name: 'secret/**' }, actions: [] },
  { match: { name: '${labels:groups}/**' }, actions: ['push', 'pull'], comment: 'teams push to their namespace' },
  { match: { name: 'ci/**', ip: '10.0.0.0/8' }, actions: ['push'] },
  { match: { account: '/.+/', type: 'repository' }, actions: ['pull'] },
];

const who = (account: string, groups: string[]) => ({ account, labels: { groups } });

describe('describeAccess: the rules that concern a person, in words', () => {
  it('fills the group placeholder, lists conditions, and keeps the first-match order', () => {
    const lines = describeAccess(RULES, who('bob', ['team-a', 'team-b']));
    expect(lines.map((l) => l.rule)).toEqual([2, 3, 4, 5]);
    expect(summarizeAccess(lines)).toBe('nothing on secret/** (denied); push and pull team-a/**, team-b/**; push ci/** (only from 10.0.0.0/8); pull every repository');
    expect(lines[1]!.comment).toBe('teams push to their namespace');
  });

  it('stops at a rule that decides everything for the person', () => {
    expect(summarizeAccess(describeAccess(RULES, who('alice', ['platform'])))).toBe('do anything');
    expect(describeAccess(RULES, who('admin', [])).map((l) => l.rule)).toEqual([0]);
  });

  it('skips a rule whose placeholder has no value, and says when nothing is granted', () => {
    const lines = describeAccess(RULES, who('', []));
    expect(lines.map((l) => l.rule)).toEqual([2, 4]);
    expect(summarizeAccess(describeAccess([{ match: { account: 'x' }, actions: ['pull'] }], who('y', [])))).toBe('nothing: no rule grants you any access');
  });

  it('agrees with the token endpoint for the person it describes', () => {
    const acl = new Acl(RULES);
    const d = acl.decide({ account: 'bob', labels: { groups: ['team-a'] }, service: 'registry', ip: null }, parseScopes(['repository:team-a/app:push,pull', 'repository:other/app:push,pull']));
    expect(d.map((x) => x.granted)).toEqual([['push', 'pull'], ['pull']]);
    expect(summarizeAccess(describeAccess(RULES, who('bob', ['team-a'])))).toContain('push and pull team-a/**');
  });
});

function request(scopes: string[]): TokenRequest {
  return { method: 'GET', grantType: 'password', username: 'bob', password: 'x', refreshToken: '', service: 'registry', scopes: parseScopes(scopes), offline: false, clientId: '' };
}

describe("authorize(): a refusal caused by the token's restriction says so", () => {
  const acl = new Acl(RULES);
  const pat: Principal = { account: 'bob', kind: 'pat', labels: { groups: ['team-a'] }, restriction: { repositories: ['team-a/**'], actions: ['pull'] } };

  it('marks the decision restrictedBy token and keeps what the ACL alone granted', () => {
    const { decisions, access } = authorize(request(['repository:team-a/app:push,pull']), pat, acl, '127.0.0.1');
    expect(access[0]!.actions).toEqual(['pull']);
    expect(decisions[0]!.rule).toBe(3);
    expect(decisions[0]!.restrictedBy).toBe('token');
    expect(decisions[0]!.aclGranted).toEqual(['push', 'pull']);
  });

  it('leaves decisions the restriction did not narrow unmarked, and names robots as robots', () => {
    expect(authorize(request(['repository:team-a/app:pull']), pat, acl, '127.0.0.1').decisions[0]!.restrictedBy).toBeUndefined();
    const unrestricted: Principal = { ...pat, restriction: undefined as never };
    delete unrestricted.restriction;
    expect(authorize(request(['repository:team-a/app:push']), unrestricted, acl, '127.0.0.1').decisions[0]!.restrictedBy).toBeUndefined();
    const robot: Principal = { ...pat, kind: 'robot' };
    expect(authorize(request(['repository:team-a/app:push']), robot, acl, '127.0.0.1').decisions[0]!.restrictedBy).toBe('robot');
  });
});

describe('the one-time slot behind redirect-after-post', () => {
  it('is shown once, and the store never holds the secret in the clear', async () => {
    const store = new MemoryStore();
    const sessions = new Sessions(store, 3600, false);
    const id = 'browser-session-cookie-value';
    const ctx = { cookies: { get: () => id, set: () => undefined }, secure: false } as unknown as Context;
    const secret = 'berth_pat_0123456789abcdefghijklmnopqrstuvwxyz';
    await sessions.putFlash(ctx, { created: { secret } });
    const data = (store as unknown as { data: Map<string, unknown> }).data;
    expect(data.size).toBe(1);
    const dump = JSON.stringify([...data]);
    expect(dump).toContain('flash:');
    expect(dump).not.toContain(secret);
    expect(dump).not.toContain(id);
    expect(await sessions.takeFlash<{ created: { secret: string } }>(ctx)).toEqual({ created: { secret } });
    expect(await sessions.takeFlash(ctx)).toBeNull();
    // Another browser's cookie finds nothing.
    await sessions.putFlash(ctx, { notice: 'x' });
    const other = { cookies: { get: () => 'another-cookie', set: () => undefined }, secure: false } as unknown as Context;
    expect(await sessions.takeFlash(other)).toBeNull();
  });
});
