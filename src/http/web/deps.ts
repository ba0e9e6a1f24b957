import type { Logger } from 'pino';
import type { CallbackConnector } from '../../connectors/connector.js';
import type { AccountRecord, Accounts } from '../../identity/accounts.js';
import type { ContinuousAccess } from '../../identity/continuous-access.js';
import type { StaticUsers } from '../../identity/static-users.js';
import type { Pats } from '../../tokens/pats.js';
import type { Sessions } from './session.js';
import type { AuthLimiter } from '../../security/auth-limiter.js';
import type { Metrics } from '../../observability/metrics.js';
import type { PageEnv } from './pages.js';

/** Everything the browser pages and the token API need, built once in src/server.ts. */
export interface WebDeps {
  env: PageEnv;
  publicURL: string;
  connectors: ReadonlyMap<string, CallbackConnector>;
  /** Per connector: its configured redirectURL, else `${publicURL}/callback/${id}`. */
  redirectURI(connectorId: string): string;
  localLogin: boolean;
  staticUsers: StaticUsers;
  accounts: Accounts;
  access: ContinuousAccess;
  pats: Pats;
  sessions: Sessions;
  recheckMinutes: number;
  limiter: AuthLimiter;
  /** Per-address limit on starting a sign-in (each start stores a login attempt). */
  loginStarts: { allowed(ip: string): Promise<boolean> };
  /** Admins (config `admin`) see the robot accounts page. */
  isAdmin(account: AccountRecord): boolean;
  metrics: Metrics;
  log: Logger;
}
