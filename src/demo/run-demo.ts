import type { Config } from '../app/load-config.js';
import { startDevProvider, type DevProvider, type DevUser } from './dev-provider.js';

/** The demo's people: two teams, so that group-based rules can be tried. */
export const DEMO_USERS: DevUser[] = [
  { username: 'alice', password: 'alice', email: 'alice@example.test', emailVerified: true, name: 'Alice (platform team)', groups: ['platform'] },
  { username: 'bob', password: 'bob', email: 'bob@example.test', emailVerified: true, name: 'Bob (team-a)', groups: ['team-a'] },
];

/**
 * Starts the local OpenID provider that config/demo.yaml's `demo` connector points at. Only called
 * for `berth serve --demo` with a config that says `demo: true`.
 */
export async function startDemoProvider(config: Config, publicURL: string): Promise<DevProvider | null> {
  const c = config.raw.connectors.find((x) => x.id === 'demo' && x.type !== 'github');
  if (!c || c.type === 'github') return null;
  const port = Number(new URL(c.issuer).port);
  return startDevProvider({
    port,
    users: DEMO_USERS,
    clients: [{ clientId: c.clientID, ...(c.clientSecret ? { clientSecret: c.clientSecret } : {}), redirectUris: [`${publicURL}/callback/${c.id}`], postLogoutRedirectUris: [`${publicURL}/signed-out`] }],
    claimStyle: 'plain',
    loginHint: `Demo accounts: ${DEMO_USERS.map((u) => `${u.username} / ${u.password} (groups: ${u.groups.join(', ')})`).join('; ')}`,
  });
}
