import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LoginAttempt } from '../../src/connectors/connector.js';
import { createGithubConnector, githubAPIRoot, type GithubConnector } from '../../src/connectors/github/index.js';
import { githubConnectorSchema } from '../../src/config/connectors-github.js';
import { loadConfigText } from '../../src/app/load-config.js';
import { tmpdir } from 'node:os';
import { IdentityRevokedError, LoginRefusedError, UpstreamUnavailableError, type Identity } from '../../src/model/identity.js';
import { randomBase62 } from '../../src/util/secret.js';
import { freePort } from '../helpers/redis.js';
import { startFakeGithub, type FakeGithub, type FakeUserInput } from '../helpers/fake-github.js';

let gh: FakeGithub;
let nextID = 1000;

beforeAll(async () => {
  gh = await startFakeGithub();
});

afterAll(async () => {
  await gh?.close();
});

afterEach(() => {
  gh.down = false;
  gh.hang = false;
  gh.maxPerPage = 100;
  gh.denyNext = false;
  gh.refuse.clear();
  gh.oversize = undefined;
});

function connector(over: Record<string, unknown> = {}, env: { timeoutMs?: number } = {}): GithubConnector {
  const cfg = githubConnectorSchema.parse({
    type: 'github',
    id: 'github',
    clientID: gh.clientID,
    clientSecret: gh.clientSecret,
    baseURL: gh.baseURL,
    apiURL: gh.apiURL,
    ...over,
  });
  return createGithubConnector(cfg, { publicURL: 'https://berth.test', ...env });
}

function newAttempt(): LoginAttempt {
  return { state: randomBase62(32), nonce: randomBase62(32), codeVerifier: randomBase62(64), redirectURI: 'https://berth.test/login/github/callback' };
}

/** A user unique to the calling test, signed in at the fake. */
function user(over: Partial<FakeUserInput> = {}): FakeUserInput {
  const id = nextID++;
  const u: FakeUserInput = {
    id,
    login: `Octo${id}`,
    name: `Octo Cat ${id}`,
    publicEmail: null,
    emails: [{ email: `octo${id}@users.example`, primary: true, verified: true }],
    orgs: [],
    teams: [],
    ...over,
  };
  gh.addUser(u);
  gh.signInAs(u.login);
  return u;
}

/** Browser round trip: our authorize URL → the fake's redirect → the callback URL Berth would receive. */
async function toCallback(c: GithubConnector, attempt: LoginAttempt): Promise<URL> {
  const res = await fetch(await c.authorizationURL(attempt), { redirect: 'manual' });
  expect(res.status).toBe(302);
  return new URL(res.headers.get('location')!);
}

async function signIn(c: GithubConnector, attempt = newAttempt()): Promise<Identity> {
  return c.handleCallback(await toCallback(c, attempt), attempt);
}

describe('authorization URL', () => {
  it('asks GitHub for read-only scopes with state and an S256 PKCE challenge', async () => {
    const attempt = newAttempt();
    const url = await connector().authorizationURL(attempt);
    expect(url.origin + url.pathname).toBe(`${gh.baseURL}/login/oauth/authorize`);
    const q = url.searchParams;
    expect(q.get('client_id')).toBe(gh.clientID);
    expect(q.get('redirect_uri')).toBe(attempt.redirectURI);
    expect(q.get('scope')).toBe('read:user user:email read:org');
    expect(q.get('state')).toBe(attempt.state);
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('code_challenge')).toBe(createHash('sha256').update(attempt.codeVerifier).digest('base64url'));
  });

  it('derives the API root: api.github.com for github.com, /api/v3 for Enterprise, apiURL when given', () => {
    expect(githubAPIRoot({ baseURL: 'https://github.com' })).toBe('https://api.github.com');
    expect(githubAPIRoot({ baseURL: 'https://ghe.corp.example/' })).toBe('https://ghe.corp.example/api/v3');
    expect(githubAPIRoot({ baseURL: 'https://ghe.corp.example', apiURL: 'https://api.ghe.corp.example/' })).toBe('https://api.ghe.corp.example');
  });

  it('refuses a configuration without a client secret', async () => {
    await expect(loadConfigText('connectors:\n  - { type: github, id: gh, clientID: x }\n', tmpdir())).rejects.toThrow(/connectors\[0\]\.clientSecret: GitHub's web flow needs clientSecret/);
  });
});

describe('sign-in', () => {
  it('maps the user, the verified primary email, and orgs and teams paged over several Link pages', async () => {
    const u = user({
      emails: [
        { email: 'old@example.com', primary: false, verified: true },
        { email: 'unverified@example.com', primary: false, verified: false },
        { email: 'main@example.com', primary: true, verified: true },
      ],
      orgs: ['Acme', 'globex', 'initech'],
      teams: [
        { org: 'Acme', slug: 'platform' },
        { org: 'Acme', slug: 'security' },
        { org: 'globex', slug: 'ops' },
        { org: 'initech', slug: 'tps' },
        { org: 'Acme', slug: 'release-managers' },
      ],
    });
    gh.maxPerPage = 2;
    const before = gh.apiRequests.length;
    const id = await signIn(connector());
    expect(id.connector).toBe('github');
    expect(id.subject).toBe(String(u.id));
    expect(id.username).toBe(u.login);
    expect(id.email).toBe('main@example.com');
    expect(id.groups).toEqual(['Acme', 'Acme/platform', 'Acme/release-managers', 'Acme/security', 'globex', 'globex/ops', 'initech', 'initech/tps']);
    expect(id.upstream?.accessToken).toBeDefined();
    expect(gh.tokensOf(u.login)).toContain(id.upstream!.accessToken);
    expect(JSON.stringify(id.claims)).not.toContain(id.upstream!.accessToken!);

    const calls = gh.apiRequests.slice(before);
    const teamPages = calls.filter((r) => r.path === '/user/teams').map((r) => r.query.get('page'));
    expect(teamPages).toEqual([null, '2', '3']);
    expect(calls.filter((r) => r.path === '/user/orgs')).toHaveLength(2);
    expect(calls.find((r) => r.path === '/user/orgs')!.query.get('per_page')).toBe('100');
    for (const r of calls) {
      expect(r.headers.authorization).toBe(`Bearer ${id.upstream!.accessToken}`);
      expect(r.headers.accept).toBe('application/vnd.github+json');
      expect(r.headers['x-github-api-version']).toBe('2022-11-28');
    }
  });

  it('refuses to sign in with a list cut at 20 pages rather than fewer groups', async () => {
    const orgs = Array.from({ length: 25 }, (_, i) => `org-${String(i).padStart(2, '0')}`);
    user({ orgs });
    gh.maxPerPage = 1;
    const before = gh.apiRequests.length;
    const err = await signIn(connector({ loadTeams: false })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoginRefusedError);
    expect((err as Error).message).toMatch(/more than 20 pages/);
    // It still stopped reading after 20 pages.
    expect(gh.apiRequests.slice(before).filter((r) => r.path === '/user/orgs')).toHaveLength(20);
  });

  it('has no email when the email listing is forbidden, not the unverified profile email', async () => {
    const u = user({ publicEmail: 'public@example.com', emails: [{ email: 'private@example.com', primary: true, verified: true }], orgs: ['acme'] });
    gh.grantScopes(u.login, 'read:user read:org');
    const id = await signIn(connector());
    expect(id.email).toBeUndefined();
    expect(id.groups).toEqual(['acme']);
  });

  it('has no email when /user/emails answers 404', async () => {
    user({ publicEmail: 'public@example.com', orgs: ['acme'] });
    gh.refuse.set('/user/emails', 404);
    const id = await signIn(connector());
    expect(id.email).toBeUndefined();
  });

  it('has no email when the primary address is not verified', async () => {
    user({ emails: [{ email: 'unverified@example.com', primary: true, verified: false }] });
    const id = await signIn(connector());
    expect(id.email).toBeUndefined();
  });

  it('refuses to sign in when /user/teams answers 403 for a token without read:org (teams carry deny rules)', async () => {
    const u = user({ orgs: ['acme', 'globex'], teams: [{ org: 'acme', slug: 'platform' }] });
    // `user` lets /user/orgs through (documented) but /user/teams insists on read:org in the fake.
    gh.grantScopes(u.login, 'user');
    const err = await signIn(connector()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoginRefusedError);
    expect((err as Error).message).toMatch(/team memberships.*403.*read:org/);
    const token = gh.tokensOf(u.login).at(-1)!;
    const direct = await fetch(`${gh.apiURL}/user/teams`, { headers: { Authorization: `Bearer ${token}` } });
    expect(direct.status).toBe(403);
    expect(((await direct.json()) as { message: string }).message).toBe('Resource not accessible by integration');
  });

  it('refuses to sign in when /user/teams answers 404', async () => {
    user({ orgs: ['acme'], teams: [{ org: 'acme', slug: 'platform' }] });
    gh.refuse.set('/user/teams', 404);
    const err = await signIn(connector()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoginRefusedError);
    expect((err as Error).message).toMatch(/team memberships.*404/);
  });

  it('signs in without teams when loadTeams is off, without asking for them', async () => {
    user({ orgs: ['acme'], teams: [{ org: 'acme', slug: 'platform' }] });
    gh.refuse.set('/user/teams', 403);
    const before = gh.apiRequests.length;
    const id = await signIn(connector({ loadTeams: false }));
    expect(id.groups).toEqual(['acme']);
    expect(gh.apiRequests.slice(before).some((r) => r.path === '/user/teams')).toBe(false);
  });

  it('refuses to sign in with 2,100 teams instead of keeping the first 2,000', async () => {
    const teams = Array.from({ length: 2100 }, (_, i) => ({ org: 'acme', slug: `team-${i}` }));
    user({ orgs: ['acme'], teams });
    const err = await signIn(connector()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoginRefusedError);
    expect((err as Error).message).toMatch(/more than 20 pages.*\/user\/teams/);
  });

  it('stops reading a 120 MB /user/teams answer at the size limit', async () => {
    user({ orgs: ['acme'] });
    gh.oversize = { path: '/user/teams', bytes: 120 * 1024 * 1024 };
    const rss = process.memoryUsage().rss;
    const err = await signIn(connector()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoginRefusedError);
    expect((err as Error).message).toMatch(/\/user\/teams.*larger than/);
    // The fake writes only as fast as Berth reads: a little past the limit plus socket buffers.
    await new Promise((r) => setTimeout(r, 100));
    expect(gh.oversizeSent).toBeLessThan(16 * 1024 * 1024);
    expect(process.memoryUsage().rss - rss).toBeLessThan(100 * 1024 * 1024);
  });

  it('refuses a declared Content-Length over the limit without reading the body', async () => {
    user({ orgs: ['acme'] });
    gh.oversize = { path: '/user/teams', bytes: 50 * 1024 * 1024, declare: true };
    const err = await signIn(connector()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoginRefusedError);
    expect((err as Error).message).toMatch(/larger than/);
  });

  it('refuses a user outside allowedOrgs', async () => {
    user({ orgs: ['globex'], teams: [{ org: 'globex', slug: 'ops' }] });
    await expect(signIn(connector({ allowedOrgs: ['acme'] }))).rejects.toThrow(new LoginRefusedError('not a member of an allowed organization'));
  });

  it('explains a refusal when organization membership cannot be read at all', async () => {
    const u = user({ orgs: ['acme'] });
    gh.grantScopes(u.login, 'read:user user:email');
    const err = await signIn(connector({ allowedOrgs: ['acme'] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoginRefusedError);
    expect((err as Error).message).toMatch(/read:org/);
  });

  it('matches allowedOrgs case-insensitively and limits groups to those orgs', async () => {
    user({ orgs: ['Acme', 'globex'], teams: [{ org: 'Acme', slug: 'platform' }, { org: 'globex', slug: 'ops' }] });
    const id = await signIn(connector({ allowedOrgs: ['ACME'] }));
    expect(id.groups).toEqual(['Acme', 'Acme/platform']);
  });

  it('refuses a forged state without spending the code', async () => {
    const u = user();
    const c = connector();
    const attempt = newAttempt();
    const cb = await toCallback(c, attempt);
    const forged = new URL(cb);
    forged.searchParams.set('state', randomBase62(32));
    await expect(c.handleCallback(forged, attempt)).rejects.toThrow(new LoginRefusedError('sign-in state does not match this attempt'));
    const noState = new URL(cb);
    noState.searchParams.delete('state');
    await expect(c.handleCallback(noState, attempt)).rejects.toBeInstanceOf(LoginRefusedError);
    expect(gh.tokensOf(u.login)).toHaveLength(0);
    // The genuine callback still works: the refusal happened before any exchange.
    expect((await c.handleCallback(cb, attempt)).username).toBe(u.login);
  });

  it('refuses a replayed code', async () => {
    user();
    const c = connector();
    const attempt = newAttempt();
    const cb = await toCallback(c, attempt);
    await c.handleCallback(cb, attempt);
    const err = await c.handleCallback(cb, attempt).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoginRefusedError);
    expect((err as Error).message).toMatch(/bad_verification_code/);
  });

  it('refuses a code redeemed with the wrong PKCE verifier', async () => {
    const u = user();
    const c = connector();
    const attempt = newAttempt();
    const cb = await toCallback(c, attempt);
    const err = await c.handleCallback(cb, { ...attempt, codeVerifier: randomBase62(64) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoginRefusedError);
    expect((err as Error).message).toMatch(/bad_verification_code/);
    expect(gh.tokensOf(u.login)).toHaveLength(0);
  });

  it('reports a user who declined on the consent screen', async () => {
    user();
    gh.denyNext = true;
    const err = await signIn(connector()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoginRefusedError);
    expect((err as Error).message).toMatch(/denied/);
  });

  it('refuses when GitHub rejects the client secret', async () => {
    user();
    const err = await signIn(connector({ clientSecret: 'not-the-secret' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoginRefusedError);
    expect((err as Error).message).toMatch(/incorrect_client_credentials/);
  });

  it('works against an Enterprise instance from baseURL alone (REST under /api/v3)', async () => {
    const u = user({ orgs: ['acme'], teams: [{ org: 'acme', slug: 'platform' }] });
    const before = gh.apiRequests.length;
    const id = await signIn(connector({ apiURL: undefined }));
    expect(id.groups).toEqual(['acme', 'acme/platform']);
    expect(id.username).toBe(u.login);
    expect(gh.apiRequests.slice(before).map((r) => r.path).sort()).toEqual(['/user', '/user/emails', '/user/orgs', '/user/teams']);
  });

  it('treats an outage during the code exchange as upstream unavailable', async () => {
    user();
    const c = connector();
    const attempt = newAttempt();
    const cb = await toCallback(c, attempt);
    gh.down = true;
    await expect(c.handleCallback(cb, attempt)).rejects.toBeInstanceOf(UpstreamUnavailableError);
  });
});

describe('refresh', () => {
  it('reflects org and team changes made at GitHub', async () => {
    const u = user({ orgs: ['acme'], teams: [{ org: 'acme', slug: 'platform' }] });
    const c = connector();
    const id = await signIn(c);
    expect(id.groups).toEqual(['acme', 'acme/platform']);
    gh.setTeams(u.login, [{ org: 'acme', slug: 'security' }, { org: 'globex', slug: 'ops' }]);
    gh.setOrgs(u.login, ['acme', 'globex']);
    const fresh = await c.refresh(id);
    expect(fresh.subject).toBe(id.subject);
    expect(fresh.groups).toEqual(['acme', 'acme/security', 'globex', 'globex/ops']);
    expect(fresh.upstream).toEqual(id.upstream);
  });

  it('revokes the identity when the token is revoked', async () => {
    const u = user({ orgs: ['acme'] });
    const c = connector();
    const id = await signIn(c);
    gh.revokeTokensOf(u.login);
    await expect(c.refresh(id)).rejects.toBeInstanceOf(IdentityRevokedError);
  });

  it('revokes the identity when the user left every allowed org', async () => {
    const u = user({ orgs: ['acme', 'globex'] });
    const c = connector({ allowedOrgs: ['acme'] });
    const id = await signIn(c);
    gh.setOrgs(u.login, ['globex']);
    await expect(c.refresh(id)).rejects.toThrow(new IdentityRevokedError('no longer a member of an allowed organization'));
  });

  it('revokes when the stored token now answers for another GitHub user', async () => {
    user();
    const c = connector();
    const id = await signIn(c);
    await expect(c.refresh({ ...id, subject: '1' })).rejects.toBeInstanceOf(IdentityRevokedError);
    await expect(c.refresh({ ...id, upstream: {} })).rejects.toBeInstanceOf(IdentityRevokedError);
  });

  it('reports unreadable or cut team listings as upstream unavailable (grace, then closed), never fewer groups', async () => {
    const u = user({ orgs: ['acme'], teams: [{ org: 'acme', slug: 'platform' }] });
    const c = connector();
    const id = await signIn(c);
    expect(id.groups).toEqual(['acme', 'acme/platform']);
    for (const status of [403, 404] as const) {
      gh.refuse.set('/user/teams', status);
      await expect(c.refresh(id)).rejects.toBeInstanceOf(UpstreamUnavailableError);
      gh.refuse.clear();
    }
    gh.setTeams(u.login, Array.from({ length: 2100 }, (_, i) => ({ org: 'acme', slug: `team-${i}` })));
    await expect(c.refresh(id)).rejects.toBeInstanceOf(UpstreamUnavailableError);
    gh.setTeams(u.login, [{ org: 'acme', slug: 'platform' }]);
    gh.oversize = { path: '/user/teams', bytes: 30 * 1024 * 1024 };
    await expect(c.refresh(id)).rejects.toBeInstanceOf(UpstreamUnavailableError);
    gh.oversize = undefined;
    expect((await c.refresh(id)).groups).toEqual(['acme', 'acme/platform']);
  });

  it('drops the email at refresh when /user/emails becomes unreadable', async () => {
    const u = user({ publicEmail: 'public@example.com' });
    const c = connector();
    const id = await signIn(c);
    expect(id.email).toBe(`octo${u.id}@users.example`);
    gh.refuse.set('/user/emails', 403);
    expect((await c.refresh(id)).email).toBeUndefined();
  });

  it('reports GitHub answering 502 as upstream unavailable, not revoked', async () => {
    user({ orgs: ['acme'] });
    const c = connector();
    const id = await signIn(c);
    gh.down = true;
    await expect(c.refresh(id)).rejects.toBeInstanceOf(UpstreamUnavailableError);
    gh.down = false;
    expect((await c.refresh(id)).groups).toEqual(['acme']);
  });

  it('gives up on a GitHub that does not answer within the timeout', async () => {
    user();
    const c = connector({}, { timeoutMs: 300 });
    const id = await signIn(c);
    gh.hang = true;
    const started = Date.now();
    await expect(c.refresh(id)).rejects.toBeInstanceOf(UpstreamUnavailableError);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('reports an unreachable API host as upstream unavailable', async () => {
    user();
    const id = await signIn(connector());
    const closed = `http://127.0.0.1:${await freePort()}/api/v3`;
    await expect(connector({ apiURL: closed }).refresh(id)).rejects.toBeInstanceOf(UpstreamUnavailableError);
  });
});
