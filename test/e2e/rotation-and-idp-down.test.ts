import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { writeKeyPair } from '../../src/tokens/keygen.js';
import { freePort } from '../helpers/redis.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';

// Key rotation without downtime, as the README describes it: the next key is published (JWKS) and
// added to the registry's bundle first; then Berth switches to it and tokens of both keys work.
// And an identity provider that is down: the sign-in page says so instead of failing.

let dir: string;
let registry: RunningRegistry;
let oldKeyBerth: RunningServer;
let newKeyBerth: RunningServer;
let idpDownBerth: RunningServer;
const SERVICE = 'registry';

const config = (key: { keyPath: string; certPath: string }, published: string) => `
token:
  issuer: rotation
  services: [${SERVICE}]
  key: ${key.keyPath}
  certificate: ${key.certPath}
  publishedKeys: [{ certificate: ${published} }]
users: { "": {} }
acl:
  - { match: { account: "" }, actions: [pull] }
`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-rotation-'));
  const oldKey = await writeKeyPair(join(dir, 'old'), 'ES256');
  const newKey = await writeKeyPair(join(dir, 'new'), 'RS256');
  const bundle = join(dir, 'bundle.pem');
  writeFileSync(bundle, readFileSync(oldKey.certPath, 'utf8') + readFileSync(newKey.certPath, 'utf8'));
  oldKeyBerth = await startServer(await loadConfigText(config(oldKey, newKey.certPath), dir), { port: 0, host: '127.0.0.1', log: createLogger('silent') });
  newKeyBerth = await startServer(await loadConfigText(config(newKey, oldKey.certPath), dir), { port: 0, host: '127.0.0.1', log: createLogger('silent') });
  registry = await startRegistry({ realm: `${oldKeyBerth.url}/auth`, service: SERVICE, issuer: 'rotation', rootCertBundlePath: bundle });

  const closedPort = await freePort();
  idpDownBerth = await startServer(
    await loadConfigText(
      `
token: { issuer: idp-down, services: [${SERVICE}], generatedKeyDir: keys }
connectors:
  - { type: oidc, id: corp, name: Corp SSO, issuer: "http://127.0.0.1:${closedPort}", clientID: berth, clientSecret: s, allowInsecureIssuer: true }
acl: []
`,
      dir,
    ),
    { port: 0, host: '127.0.0.1', log: createLogger('silent') },
  );
}, 60_000);

afterAll(async () => {
  await registry?.stop();
  await Promise.all([oldKeyBerth?.close(), newKeyBerth?.close(), idpDownBerth?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

async function pullWith(berth: RunningServer): Promise<number> {
  const t = (await (await fetch(`${berth.url}/auth?service=${SERVICE}&scope=repository:any/thing:pull`)).json()) as { token: string };
  const res = await fetch(`${registry.url}/v2/any/thing/tags/list`, { headers: { authorization: `Bearer ${t.token}` } });
  await res.arrayBuffer();
  return res.status;
}

describe('signing key rotation', () => {
  it('publishes the signing key and the next one in the JWKS', async () => {
    const jwks = (await (await fetch(`${oldKeyBerth.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string; alg: string }[] };
    expect(jwks.keys.map((k) => k.alg).sort()).toEqual(['ES256', 'RS256']);
    const other = (await (await fetch(`${newKeyBerth.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
    expect(new Set(other.keys.map((k) => k.kid))).toEqual(new Set(jwks.keys.map((k) => k.kid)));
  });

  it('tokens signed with the old and the new key are both accepted by a registry trusting both', async () => {
    // The registry answers 404 (no such repository) once the token is accepted, 401 otherwise.
    expect(await pullWith(oldKeyBerth)).toBe(404);
    expect(await pullWith(newKeyBerth)).toBe(404);
  });
});

describe('identity provider down', () => {
  it('shows the sign-in page and a clear message instead of an error', async () => {
    expect((await fetch(`${idpDownBerth.url}/`)).status).toBe(200);
    const res = await fetch(`${idpDownBerth.url}/login/corp`, { redirect: 'manual' });
    expect(res.status).toBe(503);
    expect(await res.text()).toContain('Corp SSO cannot be reached right now');
  });
});
