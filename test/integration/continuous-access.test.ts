import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { startDevProvider, type DevProvider } from '../../src/demo/dev-provider.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { freePort } from '../helpers/redis.js';
import { basic, WebClient } from '../helpers/web-client.js';

// What a PAT is worth when its owner's identity provider goes away: the last known groups for the
// grace period, then nothing (fail closed). And a refresh token docker got with a PAT ends with it.

let dir: string;
let provider: DevProvider;
let berth: RunningServer;
let pat: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-ca-'));
  const port = await freePort();
  const publicURL = `http://127.0.0.1:${port}`;
  provider = await startDevProvider({
    users: [{ username: 'dana', password: 'dana-pw', email: 'dana@example.test', emailVerified: true, groups: ['team-d'] }],
    clients: [{ clientId: 'berth', clientSecret: 'secret', redirectUris: [`${publicURL}/callback/corp`] }],
  });
  berth = await startServer(
    await loadConfigText(
      `
server: { addr: "127.0.0.1:${port}", publicURL: "${publicURL}" }
token: { issuer: ca, services: [registry], generatedKeyDir: keys, reuseWindow: 0 }
continuousAccess: { ttl: 1s, grace: 2s }
connectors:
  - { type: oidc, id: corp, name: Corp, issuer: "${provider.issuer}", clientID: berth, clientSecret: secret, allowInsecureIssuer: true, scopes: [openid, profile, email, groups, offline_access] }
acl:
  - { match: { name: "\${labels:groups}/**" }, actions: [push, pull] }
`,
      dir,
    ),
    { log: createLogger('silent') },
  );
  const web = new WebClient(berth.url);
  await web.signInOidc('corp', 'dana', 'dana-pw');
  pat = await web.createPat('ca');
});

afterAll(async () => {
  await berth?.close();
  await provider?.close();
  rmSync(dir, { recursive: true, force: true });
});

const token = (query = 'scope=repository:team-d/app:push') => fetch(`${berth.url}/auth?service=registry&${query}`, { headers: { authorization: basic('dana', pat) } });

describe('continuous access when the provider is down', () => {
  it('a refresh token obtained with a PAT stops working when the PAT is revoked', async () => {
    const web = new WebClient(berth.url);
    await web.signInOidc('corp', 'dana', 'dana-pw');
    const second = await web.createPat('for-refresh');
    const offline = (await (await fetch(`${berth.url}/auth?service=registry&offline_token=true&client_id=docker`, { headers: { authorization: basic('dana', second) } })).json()) as { refresh_token: string };
    const refresh = () =>
      fetch(`${berth.url}/auth`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: offline.refresh_token, client_id: 'docker', service: 'registry', scope: 'repository:team-d/app:pull' }).toString(),
      });
    expect((await refresh()).status).toBe(200);
    const list = (await (await fetch(`${berth.url}/api/v1/tokens`, { headers: { authorization: `Bearer ${second}` } })).json()) as { tokens: { id: string; name: string }[] };
    const id = list.tokens.find((t) => t.name === 'for-refresh')!.id;
    expect((await fetch(`${berth.url}/api/v1/tokens/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${second}` } })).status).toBe(204);
    const after = await refresh();
    expect(after.status).toBe(401);
  });

  it('keeps the last known groups within the grace period, then fails closed', async () => {
    expect((await token()).status).toBe(200);
    await provider.close();
    // Past the TTL, within the grace: the provider cannot be asked, the last groups still count.
    await new Promise((r) => setTimeout(r, 1300));
    const within = await token();
    expect(within.status).toBe(200);
    const access = JSON.parse(Buffer.from(((await within.json()) as { token: string }).token.split('.')[1]!, 'base64url').toString()).access;
    expect(access[0].actions).toEqual(['push']);
    // Past TTL + grace: refused, saying why.
    await new Promise((r) => setTimeout(r, 2000));
    const late = await token('scope=repository:team-d/app:pull');
    expect(late.status).toBe(401);
    expect(JSON.stringify(await late.json())).toContain('cannot confirm your account with the identity provider');
  });
});
