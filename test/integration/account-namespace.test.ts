import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashSync } from '@node-rs/bcrypt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfigText } from '../../src/app/load-config.js';
import { startDevProvider, type DevProvider } from '../../src/demo/dev-provider.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { RedisStore } from '../../src/store/redis.js';
import { startFakeGithub, type FakeGithub } from '../helpers/fake-github.js';
import { cleanPrefix, freePort, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';
import { basic, WebClient } from '../helpers/web-client.js';

// The attacks of "one account namespace", against a running Berth on real Redis with a real OpenID
// provider and a fake of GitHub's documented API: a provider's username or group must never reach
// another source's account or group of the same name.

const SERVICE = 'registry';
const ADMIN_HASH = hashSync('admin-pw', 4);
let work: string;
let provider: DevProvider;
let gh: FakeGithub;
let berth: RunningServer;
let store: RedisStore;
let prefix: string;

async function token(auth: string, scope: string): Promise<{ status: number; access: { name: string; actions: string[] }[]; body: Record<string, unknown> }> {
  const res = await fetch(`${berth.url}/auth?${new URLSearchParams({ service: SERVICE, scope })}`, { headers: { authorization: auth } });
  const body = (await res.json()) as Record<string, unknown>;
  if (res.status !== 200) return { status: res.status, access: [], body };
  const claims = JSON.parse(Buffer.from(String(body.token).split('.')[1]!, 'base64url').toString()) as { access: { name: string; actions: string[] }[]; sub: string };
  return { status: 200, access: claims.access, body: { ...body, sub: claims.sub } };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'berth-ns-'));
  const port = await freePort();
  const publicURL = `http://127.0.0.1:${port}`;
  provider = await startDevProvider({
    users: [
      { username: 'alice', password: 'alice-pw', email: 'alice@corp.test', emailVerified: true, groups: ['platform'] },
      { username: 'admin', password: 'x-pw', email: 'evil1@corp.test', emailVerified: true, groups: [] },
      { username: 'robot:deploy', password: 'x-pw', email: 'evil2@corp.test', emailVerified: true, groups: [] },
      { username: 'ci:acme/web', password: 'x-pw', email: 'evil3@corp.test', emailVerified: true, groups: [] },
    ],
    clients: [{ clientId: 'berth', clientSecret: 'berth-secret', redirectUris: [`${publicURL}/callback/corp`] }],
    claimStyle: 'plain',
  });
  gh = await startFakeGithub();
  prefix = uniqueKeyPrefix();
  store = new RedisStore({ url: await redisUrl(), keyPrefix: prefix });
  await store.open();
  const config = await loadConfigText(
    `
server: { addr: "127.0.0.1:${port}", publicURL: "${publicURL}" }
token: { issuer: ns-test, services: [${SERVICE}], generatedKeyDir: keys }
store: { type: redis, redis: { url: "${await redisUrl()}", keyPrefix: "${prefix}" } }
secrets: { encryptionKey: "a-namespace-test-key-of-at-least-32-chars" }
users:
  admin: { password: "${ADMIN_HASH}" }
connectors:
  - type: oidc
    id: corp
    issuer: "${provider.issuer}"
    clientID: berth
    clientSecret: berth-secret
    scopes: [openid, profile, email, groups]
    allowInsecureIssuer: true
  - type: github
    id: gh
    clientID: ${gh.clientID}
    clientSecret: ${gh.clientSecret}
    baseURL: ${gh.baseURL}
    apiURL: ${gh.apiURL}
    allowedOrgs: [platform, acme]
    accountPrefix: "gh:"
federation:
  - id: gha
    issuer: https://token.actions.githubusercontent.com
    audience: berth
    claims: { repository_owner: acme }
    account: "ci:\${repository}"
admin:
  groups: [platform]
  accounts: [admin]
acl:
  - match: { account: admin }
    actions: ["*"]
  - match: { labels: { groups: platform } }
    actions: ["*"]
  - match: { name: "\${account}/**" }
    actions: [push, pull]
  - match: { account: "/.+/", type: repository, name: "public/**" }
    actions: [pull]
`,
    work,
  );
  berth = await startServer(config, { store, log: createLogger('silent'), port });
}, 60_000);

afterAll(async () => {
  await berth?.close();
  await provider?.close();
  await gh?.close();
  if (store) {
    await cleanPrefix(prefix).catch(() => {});
    await store.close();
  }
  rmSync(work, { recursive: true, force: true });
});

async function oidcSignIn(username: string): Promise<{ web: WebClient; status: number; html: string }> {
  const web = new WebClient(berth.url);
  const page = await web.get('/login/corp');
  const action = /<form method="post" action="([^"]+)"/.exec(page.html)?.[1];
  if (!action) throw new Error(`no login form: ${page.html.slice(0, 200)}`);
  const done = await web.postForm(new URL(action.replace(/&amp;/g, '&'), page.url), { username, password: username === 'alice' ? 'alice-pw' : 'x-pw' });
  return { web, status: done.res.status, html: done.html };
}

async function signedIn(web: WebClient): Promise<boolean> {
  const r = await web.fetch('/tokens');
  return r.status === 200;
}

describe('a provider cannot send another source’s account name', () => {
  it('a person named like a static user gets a clear refusal and no session (not the static user’s rules)', async () => {
    const { web, status, html } = await oidcSignIn('admin');
    expect(status).toBe(400);
    expect(html).toContain('reserved for a local account');
    expect(await signedIn(web)).toBe(false);
  });

  it('names with ":" (a robot’s, a CI account’s) are refused at sign-in', async () => {
    for (const name of ['robot:deploy', 'ci:acme/web']) {
      const { web, status, html } = await oidcSignIn(name);
      expect(status).toBe(400);
      expect(html).toMatch(/cannot be used as a registry account name/);
      expect(await signedIn(web)).toBe(false);
    }
  });

  it('a GitHub user gets the gh: prefix for account and groups: org "platform" is not the SSO group "platform"', async () => {
    gh.addUser({ id: 4242, login: 'alice', name: 'Not Alice', publicEmail: null, emails: [], orgs: ['platform'], teams: [] });
    gh.signInAs('alice');
    const web = new WebClient(berth.url);
    const page = await web.get('/login/gh');
    expect(page.url.pathname).toBe('/tokens');
    expect(page.html).toContain('Signed in as gh:alice');
    const pat = await web.createPat('laptop');
    // docker login -u gh:alice: the name carries a colon, Basic auth still reads it whole.
    const t = await token(basic('gh:alice', pat), 'repository:prod/db:push,pull,delete repository:gh:alice/x:push');
    expect(t.status).toBe(200);
    expect(t.body.sub).toBe('gh:alice');
    expect(t.access.find((a) => a.name === 'prod/db')?.actions ?? []).toEqual([]);
    // Not an admin either: admin.groups [platform] means the SSO group.
    const csrf = await web.csrf();
    const api = await web.fetch('/api/v1/robots', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: JSON.stringify({ name: 'evil', repositories: ['**'], actions: ['*'] }) });
    expect(api.status).toBe(403);
  });

  it('the SSO member of "platform" keeps the group’s rights and may administer robots', async () => {
    const { web } = await oidcSignIn('alice');
    expect(await signedIn(web)).toBe(true);
    const pat = await web.createPat('laptop');
    const t = await token(basic('alice', pat), 'repository:prod/db:push,pull');
    expect(t.access).toEqual([{ type: 'repository', name: 'prod/db', actions: ['push', 'pull'] }]);
    const csrf = await web.csrf();
    const api = await web.fetch('/api/v1/robots', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: JSON.stringify({ name: 'ns-ok', repositories: ['apps/**'], actions: ['pull'] }) });
    expect(api.status).toBe(201);
  });
});

describe('accounts follow the immutable subject, not the login', () => {
  it('a renamed GitHub login cannot be taken over; the PATs follow their owner to the new name', async () => {
    gh.addUser({ id: 5001, login: 'carol', name: 'Carol', publicEmail: null, emails: [], orgs: ['acme'], teams: [] });
    gh.signInAs('carol');
    const carol = new WebClient(berth.url);
    expect((await carol.get('/login/gh')).url.pathname).toBe('/tokens');
    const pat = await carol.createPat('ci');
    expect((await token(basic('gh:carol', pat), 'repository:gh:carol/app:push')).access[0]!.actions).toEqual(['push']);

    // Carol renames herself; someone else registers "carol".
    gh.renameUser('carol', 'carol-new');
    gh.addUser({ id: 6002, login: 'carol', name: 'Mallory', publicEmail: null, emails: [], orgs: ['acme'], teams: [] });
    gh.signInAs('carol');
    const mallory = new WebClient(berth.url);
    const refused = await mallory.get('/login/gh');
    expect(refused.res.status).toBe(400);
    expect(refused.html).toContain('already belongs to another person');
    expect(await signedIn(mallory)).toBe(false);

    // Carol signs in again under her new login: same subject, new name; her old PAT follows her.
    gh.signInAs('carol-new');
    const again = new WebClient(berth.url);
    const page = await again.get('/login/gh');
    expect(page.html).toContain('Signed in as gh:carol-new');
    const t = await token(basic('gh:carol', pat), 'repository:gh:carol-new/app:push repository:gh:carol/app:push');
    expect(t.status).toBe(200);
    expect(t.body.sub).toBe('gh:carol-new');
    expect(t.access.find((a) => a.name === 'gh:carol-new/app')!.actions).toEqual(['push']);
    // The old namespace is no longer hers to push to under ${account}, and nobody else's either.
    expect(t.access.find((a) => a.name === 'gh:carol/app')!.actions).toEqual([]);
  });
});

describe('refresh tokens', () => {
  it('are bound to the service they were issued for', async () => {
    const res = await fetch(`${berth.url}/auth?${new URLSearchParams({ service: SERVICE, offline_token: 'true', client_id: 'docker' })}`, { headers: { authorization: basic('admin', 'admin-pw') } });
    const rt = ((await res.json()) as { refresh_token: string }).refresh_token;
    expect(rt).toMatch(/^berth_rt_/);
    const post = (service: string) =>
      fetch(`${berth.url}/auth`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: rt, service, client_id: 'docker', scope: 'repository:a/b:pull' }) });
    expect((await post(SERVICE)).status).toBe(200);
    // token.services lists only `registry`, so another service is refused before the token is even read…
    expect((await post('other')).status).toBe(400);
  });
});

describe('check-config refuses overlapping sources, naming them', () => {
  const conn = (id: string, extra = '') => `  - { type: oidc, id: ${id}, issuer: "https://${id}.example.com", clientID: x${extra} }\n`;
  const problems = async (yaml: string) => {
    try {
      await loadConfigText(yaml, tmpdir());
      return [];
    } catch (e) {
      if (e instanceof ConfigError) return e.problems;
      throw e;
    }
  };

  it('two unprefixed connectors, a reserved id, a shared prefix', async () => {
    expect(await problems(`connectors:\n${conn('a')}${conn('b')}`)).toEqual([expect.stringMatching(/^connectors\[0\] and connectors\[1\]: more than one connector produces unprefixed account names/)]);
    expect(await problems(`connectors:\n${conn('local')}`)).toEqual([expect.stringMatching(/^connectors\[0\]\.id: "local" is reserved/)]);
    expect(await problems(`connectors:\n${conn('a', ', accountPrefix: "x:"')}${conn('b', ', accountPrefix: "x:"')}`)).toEqual([expect.stringMatching(/^connectors\[1\]\.accountPrefix: x: is already used by connector a/)]);
    expect(await problems(`connectors:\n${conn('a', ', accountPrefix: "robot:"')}`)).toEqual([expect.stringMatching(/robot: is already used by robot accounts/)]);
    expect(await problems(`connectors:\n${conn('a')}${conn('b', ', accountPrefix: "gh:"')}`)).toEqual([]);
  });

  it('federation templates without a prefix, or one prefix for two issuers, or a static user inside a prefix', async () => {
    const fed = (id: string, issuer: string, account: string) => `  - { id: ${id}, issuer: "${issuer}", audience: berth, claims: { sub: "x" }, account: "${account}" }\n`;
    expect(await problems(`federation:\n${fed('a', 'https://a.example', '${repository}')}`)).toEqual([expect.stringMatching(/^federation\[0\]\.account: the template must start with a fixed prefix/)]);
    expect(await problems(`federation:\n${fed('a', 'https://a.example', 'ci:${repository}')}${fed('b', 'https://b.example', 'ci:${project_path}')}`)).toEqual([expect.stringMatching(/^federation\[1\]\.account: prefix ci: is also used for issuer https:\/\/a\.example/)]);
    expect(await problems(`federation:\n${fed('a', 'https://a.example', 'ci:${repository}')}${fed('b', 'https://a.example', 'ci:${repository}')}`)).toEqual([]);
    expect(await problems(`users:\n  "ci:web": { password: "${ADMIN_HASH}" }\nfederation:\n${fed('a', 'https://a.example', 'ci:${repository}')}`)).toEqual([expect.stringMatching(/^users\.ci:web: the name starts with ci:, which belongs to federation issuer/)]);
    expect(await problems(`users:\n  "robot:x": { password: "${ADMIN_HASH}" }\n`)).toEqual([expect.stringMatching(/^users\.robot:x: the name starts with robot:/)]);
  });

  it('a GitHub connector without allowedOrgs next to group rules', async () => {
    const yaml = `connectors:\n  - { type: github, id: gh, clientID: x, clientSecret: y }\nacl:\n  - { match: { labels: { groups: platform } }, actions: ["*"] }\n`;
    expect(await problems(yaml)).toEqual([expect.stringMatching(/^connectors\[0\]\.allowedOrgs: required when the ACL or admin\.groups use groups/)]);
    expect(await problems(yaml.replace('clientSecret: y', 'clientSecret: y, allowedOrgs: [acme]'))).toEqual([]);
    expect(await problems(yaml.replace(/acl:[\s\S]*/, ''))).toEqual([]);
  });
});
