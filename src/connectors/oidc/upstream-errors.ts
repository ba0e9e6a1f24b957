import * as oidc from 'openid-client';

/**
 * What went wrong when talking to the provider, in the terms Berth acts on:
 * - `unavailable`: the provider could not answer now (network, timeout, 5xx, 429) or Berth's own
 *   client setup is refused (invalid_client...); nothing is known about the user.
 * - `invalid_grant`: the provider refused the code or refresh token itself.
 * - `rejected`: the provider answered, but the answer is unusable for this user or attempt
 *   (mismatched state, nonce, issuer; an authorization error; a failed token check).
 * - `unknown`: anything else (a bug, most likely); callers must not read it as a verdict on the user.
 */
export type UpstreamFailure = { kind: 'unavailable' | 'invalid_grant' | 'rejected' | 'unknown'; detail: string };

const NETWORK_CODES = new Set(['OAUTH_TIMEOUT', 'OAUTH_ABORT', 'OAUTH_HTTP_REQUEST_FORBIDDEN', 'OAUTH_REQUEST_PROTOCOL_FORBIDDEN']);

function isNetworkTypeError(err: TypeError): boolean {
  // undici reports refused connections, resets and DNS failures as TypeError('fetch failed', {cause}).
  return !('code' in err && typeof err.code === 'string' && err.code.startsWith('ERR_')) && (err.message === 'fetch failed' || err.cause !== undefined);
}

export function classifyUpstreamError(err: unknown): UpstreamFailure {
  if (err instanceof oidc.ResponseBodyError) {
    if (err.status >= 500 || err.status === 429) return { kind: 'unavailable', detail: `provider answered ${err.status} ${err.error}` };
    if (err.error === 'invalid_grant') return { kind: 'invalid_grant', detail: 'invalid_grant' };
    // invalid_client, unauthorized_client...: Berth's registration is wrong, the user is not at fault.
    return { kind: 'unavailable', detail: `provider refused Berth's client: ${err.error}` };
  }
  if (err instanceof oidc.AuthorizationResponseError) return { kind: 'rejected', detail: `authorization error ${err.error}` };
  if (err instanceof oidc.WWWAuthenticateChallengeError) {
    return err.status >= 500 ? { kind: 'unavailable', detail: `provider answered ${err.status}` } : { kind: 'rejected', detail: `access token refused (${err.status})` };
  }
  if (err instanceof oidc.ClientError) {
    if (err.code && NETWORK_CODES.has(err.code)) return { kind: 'unavailable', detail: err.message };
    if (err.cause instanceof Response) {
      // Non-JSON or unexpected statuses: a proxy error page, a wrong endpoint. Not the user's doing.
      return { kind: 'unavailable', detail: `unexpected response ${err.cause.status} from the provider` };
    }
    // The cause names the failed check ('unexpected ID Token "nonce" claim value'); the wrapper does not.
    return { kind: 'rejected', detail: err.cause instanceof Error ? err.cause.message : err.message };
  }
  if (err instanceof TypeError && isNetworkTypeError(err)) return { kind: 'unavailable', detail: 'provider unreachable' };
  if (err instanceof DOMException && (err.name === 'TimeoutError' || err.name === 'AbortError')) return { kind: 'unavailable', detail: 'provider timed out' };
  if (err instanceof TypeError) return { kind: 'rejected', detail: err.message };
  return { kind: 'unknown', detail: err instanceof Error ? err.message : String(err) };
}
