import { createToken, revokeToken } from './berth-client.js';
import type { StoredCredential } from './credential-file.js';
import type { RenewPolicy } from './settings.js';

const DAY_MS = 86_400_000;

/** Only tokens this helper obtained can be renewed: it needs their Berth, id and lifetime. */
export function renewable(c: StoredCredential): c is StoredCredential & { berthURL: string; tokenId: string; createdAt: number; expiresAt: number } {
  return Boolean(c.berthURL && c.tokenId && c.createdAt !== undefined && c.expiresAt !== undefined);
}

export function expired(c: StoredCredential, now: number): boolean {
  return c.expiresAt !== undefined && c.expiresAt <= now;
}

export function renewalDue(c: StoredCredential, policy: RenewPolicy, now: number): boolean {
  if (!renewable(c) || expired(c, now)) return false;
  const left = c.expiresAt - now;
  const lifetime = Math.max(0, c.expiresAt - c.createdAt);
  if (left < lifetime * policy.remainingFraction) return true;
  return policy.remainingDays !== null && left < policy.remainingDays * DAY_MS;
}

/**
 * A successor with the same name and lifetime, made with the current token through Berth's API. If
 * Berth caps the lifetime lower than before, its default applies instead.
 */
export async function createSuccessor(c: StoredCredential & { berthURL: string; createdAt: number; expiresAt: number }): Promise<StoredCredential> {
  const name = c.tokenName ?? 'credential helper (renewed)';
  const days = Math.max(1, Math.round((c.expiresAt - c.createdAt) / DAY_MS));
  let made;
  try {
    made = await createToken(c.berthURL, c.secret, { name, expiresInDays: days });
  } catch (e) {
    if ((e as Error).name === 'TokenRejectedError') throw e;
    made = await createToken(c.berthURL, c.secret, { name });
  }
  return { username: made.username, secret: made.token, source: 'renewal', berthURL: c.berthURL, tokenId: made.id, tokenName: name, createdAt: made.createdAt, expiresAt: made.expiresAt };
}

/** Revokes the predecessor with its successor (the same account), once the successor is stored. */
export function revokePredecessor(old: StoredCredential & { tokenId: string }, successor: StoredCredential & { berthURL: string }): Promise<boolean> {
  return revokeToken(successor.berthURL, successor.secret, old.tokenId);
}
