import { pollDeviceToken, requestDeviceCode } from './berth-client.js';
import type { StoredCredential } from './credential-file.js';
import { HelperError } from './errors.js';
import { printable } from './terminal.js';

export interface LoginIO {
  /** Where the person reads instructions: stderr, because stdout belongs to docker. */
  tell(message: string): void;
  sleep(ms: number): Promise<void>;
  now(): number;
}

const DEFAULT_INTERVAL_S = 5;
const TOKEN_NAME = 'credential helper (device)';

/**
 * The device side of RFC 8628: ask Berth for a code, show where to enter it, poll at the interval
 * Berth asked for (5 s slower after each slow_down), and return the PAT once someone approves.
 */
export async function deviceLogin(berth: string, registryKey: string, io: LoginIO): Promise<StoredCredential> {
  // requestDeviceCode already made every field it returns fit to print (terminal.ts).
  const registry = printable(registryKey);
  const code = await requestDeviceCode(berth);
  let interval = Math.max(1, code.interval ?? DEFAULT_INTERVAL_S);
  const deadline = io.now() + code.expires_in * 1000;
  io.tell(
    [
      '',
      `Sign in to use ${registry}:`,
      `  open ${code.verification_uri} in a browser and enter the code ${code.user_code}`,
      ...(code.verification_uri_complete ? [`  (or open ${code.verification_uri_complete})`] : []),
      `Waiting for approval (the code expires in ${Math.round(code.expires_in / 60)} minutes)…`,
      '',
    ].join('\n'),
  );
  let lastTrouble = '';
  for (;;) {
    await io.sleep(interval * 1000);
    const r = await pollDeviceToken(berth, code.device_code);
    if (r.kind === 'token') {
      const now = io.now();
      io.tell(`Signed in to ${registry} as ${r.username}.\n`);
      const cred: StoredCredential = { username: r.username, secret: r.accessToken, source: 'device', berthURL: berth, tokenName: TOKEN_NAME, createdAt: now };
      if (r.expiresIn !== null) cred.expiresAt = now + r.expiresIn * 1000;
      if (r.tokenId !== null) cred.tokenId = r.tokenId;
      return cred;
    }
    if (r.kind === 'unreachable') {
      // A restarting Berth or a flaky proxy: keep the sign-in alive until the code expires.
      if (r.why !== lastTrouble) io.tell(`(still waiting: ${r.why})\n`);
      lastTrouble = r.why;
    } else if (r.error === 'slow_down') {
      interval = Math.max(interval + 5, r.interval ?? 0);
    } else if (r.error === 'access_denied') {
      throw new HelperError('the sign-in was denied in the browser');
    } else if (r.error === 'expired_token') {
      throw new HelperError('the sign-in code expired before it was approved; run the command again to get a new one');
    } else if (r.error !== 'authorization_pending') {
      throw new HelperError(`Berth ended the sign-in: ${r.error}: ${r.description}`);
    }
    // Berth itself answers expired_token; this only ends a wait on a Berth that stopped answering.
    if (io.now() > deadline + 30_000) throw new HelperError('the sign-in code expired before it was approved; run the command again to get a new one');
  }
}
