import type { Context } from 'koa';
import type { CurrentAccount } from '../../identity/continuous-access.js';
import { AuthenticationError } from '../../model/principal.js';
import type { WebDeps } from './deps.js';
import type { SessionData } from './session.js';

export interface Viewer {
  session: SessionData;
  account: CurrentAccount;
}

/**
 * The signed-in person behind a browser request, with groups as they stand now (continuous access),
 * or null. A session whose account the provider no longer accepts is ended on the spot.
 */
export async function currentViewer(ctx: Context, d: Pick<WebDeps, 'sessions' | 'accounts' | 'access'>): Promise<Viewer | null> {
  const session = await d.sessions.get(ctx);
  if (!session) return null;
  const stored = await d.accounts.get(session.accountKey);
  if (!stored) return null;
  try {
    return { session, account: await d.access.current(stored) };
  } catch (e) {
    if (e instanceof AuthenticationError) {
      await d.sessions.destroy(ctx);
      return null;
    }
    throw e;
  }
}
