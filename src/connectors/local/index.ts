import type { StaticUser } from '../../config/schema.js';
import { LOCAL_CONNECTOR_ID } from '../../model/account-names.js';
import { IdentityRevokedError, type Identity } from '../../model/identity.js';
import type { Principal } from '../../model/principal.js';
import type { PasswordConnector } from '../connector.js';

/** What the local connector needs from the credential gate: a static user's password, checked. */
export type VerifyStaticPassword = (username: string, password: string, clientIp: string) => Promise<Principal>;

function identityOf(username: string, labels: Record<string, string[]>): Identity {
  return { connector: LOCAL_CONNECTOR_ID, subject: username, username, groups: labels.groups ?? [], claims: { labels } };
}

/**
 * The docker_auth `users:` section as a sign-in source, beside the OpenID and GitHub connectors. The
 * password itself is checked by the credential gate (one set of lockout and failure rules for the web
 * form and the token endpoint); this connector turns the result into an Identity and re-reads the
 * user from the running configuration on every use.
 */
export function createLocalConnector(users: ReadonlyMap<string, StaticUser>, verify: VerifyStaticPassword): PasswordConnector {
  return {
    id: LOCAL_CONNECTOR_ID,
    type: 'local',
    name: 'local account',
    async login(username, password, clientIp) {
      const p = await verify(username, password, clientIp);
      return identityOf(username, p.labels);
    },
    current(identity) {
      const u = users.get(identity.subject);
      if (!u || !u.hash) throw new IdentityRevokedError('account no longer exists');
      return identityOf(identity.subject, u.labels);
    },
  };
}
