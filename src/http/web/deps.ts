import type { Logger } from 'pino';
import type { CallbackConnector } from '../../connectors/connector.js';
import type { Accounts } from '../../identity/accounts.js';
import type { ContinuousAccess, CurrentAccount } from '../../identity/continuous-access.js';
import type { Credentials } from '../../identity/credentials.js';
import type { PasswordConnector } from '../../connectors/connector.js';
import type { PatVerifier } from '../../identity/pat-verifier.js';
import type { Pats } from '../../tokens/pats.js';
import type { Sessions } from './session.js';
import type { Metrics } from '../../observability/metrics.js';
import type { PageEnv } from './pages.js';
import type { AclRuleConfig } from '../../config/schema.js';

/** Everything the browser pages and the token API need, built once in src/server.ts. */
export interface WebDeps {
  env: PageEnv;
  publicURL: string;
  connectors: ReadonlyMap<string, CallbackConnector>;
  /** Per connector: its configured redirectURL, else `${publicURL}/callback/${id}`. */
  redirectURI(connectorId: string): string;
  localLogin: boolean;
  /** The credential gate: the web form's passwords and the API's PATs are checked there, like every other secret. */
  credentials: Credentials;
  /** The static users as a sign-in source (the page's username/password form). */
  local: PasswordConnector;
  patVerifier: PatVerifier;
  accounts: Accounts;
  access: ContinuousAccess;
  pats: Pats;
  sessions: Sessions;
  recheckMinutes: number;
  /** Per-address limit on starting a sign-in (each start stores a login attempt). */
  loginStarts: { allowed(ip: string): Promise<boolean> };
  /** Admins (config `admin`) see the robot accounts page. */
  isAdmin(account: CurrentAccount): boolean;
  /** The configured acl rules: the tokens page says what they grant the signed-in person. */
  aclRules: readonly AclRuleConfig[];
  metrics: Metrics;
  log: Logger;
}
