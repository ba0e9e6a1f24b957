import { HelperError } from './errors.js';
import { hasControls, printable } from './terminal.js';

export const CLIENT_ID = 'docker-credential-berth';
export const DEVICE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:device_code';
const TIMEOUT_MS = 20_000;

export interface DeviceCodeResponse {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete?: string;
  expires_in: number;
  interval?: number;
}

export type TokenPoll =
  | { kind: 'token'; accessToken: string; username: string; expiresIn: number | null; tokenId: string | null }
  | { kind: 'error'; error: string; description: string; interval: number | null }
  /** Not an answer from Berth (network, 5xx, a proxy's page): worth another try later. */
  | { kind: 'unreachable'; why: string };

export interface CreatedToken {
  id: string;
  token: string;
  username: string;
  createdAt: number;
  expiresAt: number;
}

async function call(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (e) {
    const cause = (e as { cause?: { message?: string } }).cause?.message;
    throw new HelperError(`cannot reach Berth at ${new URL(url).origin}: ${cause ?? (e as Error).message}`);
  }
}

async function json(res: Response): Promise<Record<string, unknown> | null> {
  try {
    const v = (await res.json()) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const form = (fields: Record<string, string>) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
  body: new URLSearchParams(fields).toString(),
});

/** Berth's error text in either of its shapes (OAuth, or the registry's `errors` list), fit to print. */
function describe(body: Record<string, unknown> | null, status: number): string {
  if (body && typeof body.error_description === 'string') return printable(body.error_description);
  const errors = body?.errors;
  if (Array.isArray(errors) && errors[0] && typeof (errors[0] as { message?: unknown }).message === 'string') return printable((errors[0] as { message: string }).message);
  return `HTTP ${status}`;
}

/** A user name goes into credentials.json, docker's requests and messages: one with controls is refused. */
function userName(berth: string, name: string): string {
  if (name === '' || name.length > 256 || hasControls(name)) throw new HelperError(`Berth at ${berth} sent an unusable user name (empty, too long or with control characters); refusing the token`);
  return name;
}

/**
 * Where the person is sent must be this Berth: a `javascript:` or `data:` URI, another host or port,
 * or `user@` in front of the host (which reads like a host) could send them to someone else's page
 * to type their password and code into. Returns the URL as the parser normalised it (controls
 * percent-encoded), and never echoes a refused one.
 */
function onBerthOrigin(berth: string, raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    u = new URL('invalid:');
  }
  const origin = new URL(berth).origin;
  if (u.origin !== origin || u.username || u.password) {
    throw new HelperError(`Berth at ${berth} sent a sign-in address that is not on its own origin (${origin}); refusing to show it. If Berth's public URL differs from the one configured here, configure that one.`);
  }
  if (u.href.length > 2048) throw new HelperError(`Berth at ${berth} sent a sign-in address of ${u.href.length} characters; refusing to show it`);
  return u.href;
}

export async function requestDeviceCode(berth: string): Promise<DeviceCodeResponse> {
  const res = await call(`${berth}/device/code`, form({ client_id: CLIENT_ID }));
  const body = await json(res);
  if (!res.ok || !body) throw new HelperError(`Berth at ${berth} refused to start a sign-in: ${describe(body, res.status)}`);
  const { device_code, user_code, verification_uri, verification_uri_complete, expires_in, interval } = body;
  if (typeof device_code !== 'string' || typeof user_code !== 'string' || typeof verification_uri !== 'string' || typeof expires_in !== 'number') {
    throw new HelperError(`Berth at ${berth} answered the device sign-in request without the fields RFC 8628 requires`);
  }
  return {
    device_code,
    // RFC 8628 user codes are a few characters; anything else only has to stay harmless on screen.
    user_code: printable(user_code, 64),
    verification_uri: onBerthOrigin(berth, verification_uri),
    expires_in,
    ...(typeof verification_uri_complete === 'string' ? { verification_uri_complete: onBerthOrigin(berth, verification_uri_complete) } : {}),
    ...(typeof interval === 'number' ? { interval } : {}),
  };
}

export async function pollDeviceToken(berth: string, deviceCode: string): Promise<TokenPoll> {
  let res: Response;
  try {
    res = await call(`${berth}/device/token`, form({ grant_type: DEVICE_GRANT_TYPE, device_code: deviceCode, client_id: CLIENT_ID }));
  } catch (e) {
    return { kind: 'unreachable', why: (e as Error).message };
  }
  const body = await json(res);
  if (res.ok && body && typeof body.access_token === 'string' && typeof body.username === 'string') {
    return {
      kind: 'token',
      accessToken: body.access_token,
      username: userName(berth, body.username),
      expiresIn: typeof body.expires_in === 'number' ? body.expires_in : null,
      tokenId: typeof body.token_id === 'string' ? body.token_id : null,
    };
  }
  if (res.status === 400 && body && typeof body.error === 'string') {
    const error = printable(body.error, 100);
    return { kind: 'error', error, description: typeof body.error_description === 'string' ? printable(body.error_description) : error, interval: typeof body.interval === 'number' ? body.interval : null };
  }
  return { kind: 'unreachable', why: `Berth answered HTTP ${res.status}: ${describe(body, res.status)}` };
}

export class TokenRejectedError extends HelperError {
  override name = 'TokenRejectedError';
}

/** A new PAT through `/api/v1/tokens`, authenticated with a current one (TokenRejectedError on 401). */
export async function createToken(berth: string, bearer: string, input: { name: string; expiresInDays?: number }): Promise<CreatedToken> {
  const res = await call(`${berth}/api/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(input),
  });
  const body = await json(res);
  if (res.status === 401) throw new TokenRejectedError(`Berth no longer accepts the stored token: ${describe(body, res.status)}`);
  if (res.status !== 201 || !body) throw new HelperError(`Berth refused to create a token: ${describe(body, res.status)}`);
  const { id, token, username, createdAt, expiresAt } = body;
  if (typeof id !== 'string' || typeof token !== 'string' || typeof username !== 'string' || typeof expiresAt !== 'string') throw new HelperError('Berth answered the token request without id, token, username and expiresAt');
  return { id, token, username: userName(berth, username), createdAt: typeof createdAt === 'string' ? Date.parse(createdAt) : Date.now(), expiresAt: Date.parse(expiresAt) };
}

/** Revokes a PAT by id; true when Berth removed it or it was already gone. */
export async function revokeToken(berth: string, bearer: string, id: string): Promise<boolean> {
  const res = await call(`${berth}/api/v1/tokens/${encodeURIComponent(id)}`, { method: 'DELETE', headers: { authorization: `Bearer ${bearer}`, accept: 'application/json' } });
  await res.arrayBuffer().catch(() => {});
  return res.status === 204 || res.status === 404;
}
