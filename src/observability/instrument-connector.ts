import type { CallbackConnector } from '../connectors/connector.js';
import { IdentityRevokedError, LoginRefusedError } from '../model/identity.js';
import type { Metrics } from './metrics.js';

function outcomeOf(e: unknown): string {
  if (e instanceof LoginRefusedError) return 'refused';
  if (e instanceof IdentityRevokedError) return 'revoked';
  return 'error';
}

/** Wraps a connector so every call to its provider is counted and timed by connector and operation. */
export function instrumentConnector(c: CallbackConnector, m: Metrics): CallbackConnector {
  const timed = async <T>(operation: string, f: () => Promise<T>): Promise<T> => {
    const end = m.idpDuration.startTimer({ connector: c.id, operation });
    try {
      const r = await f();
      m.idpRequests.inc({ connector: c.id, operation, outcome: 'ok' });
      return r;
    } catch (e) {
      m.idpRequests.inc({ connector: c.id, operation, outcome: outcomeOf(e) });
      throw e;
    } finally {
      end();
    }
  };
  const wrapped: CallbackConnector = {
    id: c.id,
    type: c.type,
    name: c.name,
    authorizationURL: (a, options) => timed('authorize', () => c.authorizationURL(a, options)),
    handleCallback: (u, a) => timed('callback', () => c.handleCallback(u, a)),
  };
  if (c.refresh) wrapped.refresh = (i) => timed('refresh', () => c.refresh!(i));
  if (c.logoutURL) wrapped.logoutURL = (o) => timed('logout', () => c.logoutURL!(o));
  return wrapped;
}
