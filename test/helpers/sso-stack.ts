import { loadConfigText } from '../../src/app/load-config.js';
import { startDevProvider, type DevProvider } from '../../src/demo/dev-provider.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { freePort } from './redis.js';
import { startRegistry, type RunningRegistry } from './registry.js';

export const SSO_SERVICE = 'registry';

/** People at the test provider: one per team, password `<name>-pw`. */
export const SSO_USERS = [
  { username: 'alice', password: 'alice-pw', email: 'alice@example.test', emailVerified: true, groups: ['team-a'] },
  { username: 'bob', password: 'bob-pw', email: 'bob@example.test', emailVerified: true, groups: ['team-b'] },
];

export interface SsoStack {
  provider: DevProvider;
  berth: RunningServer;
  registry: RunningRegistry;
  close(): Promise<void>;
}

/**
 * The real chain a person uses: a loopback OpenID provider ("Corp SSO"), Berth with an `oidc`
 * connector to it, team-namespace ACL, and the real registry trusting Berth's generated key.
 * `extraYaml` is appended to Berth's config (more top-level sections or ACL rules after the first).
 */
export async function startSsoStack(workDir: string, issuer: string, extraYaml = ''): Promise<SsoStack> {
  const port = await freePort();
  const publicURL = `http://127.0.0.1:${port}`;
  const provider = await startDevProvider({
    users: SSO_USERS,
    clients: [{ clientId: 'berth', clientSecret: 'berth-secret', redirectUris: [`${publicURL}/callback/corp`], postLogoutRedirectUris: [`${publicURL}/signed-out`] }],
    claimStyle: 'plain',
  });
  const config = await loadConfigText(
    `
server: { addr: "127.0.0.1:${port}", publicURL: "${publicURL}" }
token: { issuer: ${issuer}, services: [${SSO_SERVICE}], generatedKeyDir: keys }
web: { registryHost: "127.0.0.1:5000" }
connectors:
  - type: oidc
    id: corp
    name: Corp SSO
    issuer: "${provider.issuer}"
    clientID: berth
    clientSecret: berth-secret
    scopes: [openid, profile, email, groups, offline_access]
    allowInsecureIssuer: true
${extraYaml}
acl:
  - match: { name: "\${labels:groups}/**" }
    actions: [push, pull]
    comment: teams push to their namespace
  - match: { account: "/.+/" }
    actions: [pull]
    comment: everyone signed in pulls
`,
    workDir,
  );
  const berth = await startServer(config, { log: createLogger('silent') });
  const registry = await startRegistry({ realm: `${berth.url}/auth`, service: SSO_SERVICE, issuer, rootCertBundlePath: berth.certificatePath! });
  return {
    provider,
    berth,
    registry,
    async close() {
      await registry.stop();
      await berth.close();
      await provider.close();
    },
  };
}
