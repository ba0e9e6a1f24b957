import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { startFakeGithub, type FakeGithub } from '../helpers/fake-github.js';
import { basic, WebClient } from '../helpers/web-client.js';

// A team carries a deny rule. When GitHub stops showing the user's teams (403 on /user/teams, a
// listing cut at 20 pages), re-checks must not quietly drop the team and with it the deny.

let dir: string;
let gh: FakeGithub;
let berth: RunningServer;
let pat: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-gh-deny-'));
  gh = await startFakeGithub();
  gh.addUser({ id: 777, login: 'casey', emails: [{ email: 'casey@example.com', primary: true, verified: true }], orgs: ['acme'], teams: [{ org: 'acme', slug: 'contractors' }] });
  gh.signInAs('casey');
  berth = await startServer(
    await loadConfigText(
      `
token: { issuer: deny, services: [registry], generatedKeyDir: keys, reuseWindow: 0 }
continuousAccess: { ttl: 1s, grace: 2s }
connectors:
  - { type: github, id: github, clientID: ${gh.clientID}, clientSecret: ${gh.clientSecret}, baseURL: "${gh.baseURL}", apiURL: "${gh.apiURL}", allowedOrgs: [acme] }
acl:
  - { match: { labels: { groups: acme/contractors }, name: "secret/**" }, actions: [], comment: contractors never see secret images }
  - { match: { labels: { groups: acme } }, actions: [pull] }
`,
      dir,
    ),
    { port: 0, host: '127.0.0.1', log: createLogger('silent') },
  );
  const web = new WebClient(berth.url);
  const landed = await web.get('/login/github');
  expect(landed.res.status).toBe(200);
  pat = await web.createPat('deny');
});

afterAll(async () => {
  await berth?.close();
  await gh?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function secretPull(): Promise<number | string[]> {
  const res = await fetch(`${berth.url}/auth?service=registry&scope=repository:secret/app:pull`, { headers: { authorization: basic('casey', pat) } });
  if (res.status !== 200) return res.status;
  const { token } = (await res.json()) as { token: string };
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).access[0].actions;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a team deny rule while GitHub hides the teams', () => {
  it('keeps applying within the grace period and fails closed after it, never granting', async () => {
    expect(await secretPull()).toEqual([]);
    gh.refuse.set('/user/teams', 403);
    try {
      const seen: (number | string[])[] = [];
      // ttl 1 s + grace 2 s: sample across both phases and beyond.
      for (let i = 0; i < 10; i++) {
        seen.push(await secretPull());
        await sleep(500);
      }
      expect(seen.some((r) => Array.isArray(r) && r.includes('pull'))).toBe(false);
      expect(seen.at(-1)).toBe(401);
    } finally {
      gh.refuse.clear();
    }
    // Readable again: the re-check restores the account, deny included.
    await sleep(1100);
    expect(await secretPull()).toEqual([]);
  });
});
