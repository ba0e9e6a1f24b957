/**
 * The registry token protocol's wire shapes, in one place: the scope grammar, the access entries a
 * token carries, the bodies of a GET and a POST answer, and the error body every registry client
 * reads. The token pipeline (pipeline.ts), the reuse cache and the JSON error translator
 * (../errors.ts) build their answers here, so a change to what clients see is made once.
 */
import { formatScope, type Scope } from '../../policy/scope.js';

/** Scope grammar (`repository:name:pull,push`), src/policy/scope.ts. */
export { formatScope, parseScopes, ScopeError, type Scope } from '../../policy/scope.js';

import type { AccessEntry } from '../../model/access.js';
export type { AccessEntry } from '../../model/access.js';

/** The space-separated scope a POST answer reports: what was granted, in the request's grammar. */
export function grantedScope(access: readonly AccessEntry[]): string {
  let out = '';
  for (const a of access) {
    if (!a.actions.length) continue;
    const s: Scope = { type: a.type, name: a.name, actions: a.actions };
    if (a.class) s.class = a.class;
    out += (out ? ' ' : '') + formatScope(s);
  }
  return out;
}

/** An issued token as both answers describe it. */
export interface IssuedToken {
  token: string;
  expiresIn: number;
  /** ISO 8601 `issued_at`. */
  issuedAtText: string;
  refreshToken?: string | undefined;
}

/**
 * The GET answer (Docker's token spec: `token`, with `access_token` for OAuth-minded clients). A JWT is
 * base64url and dots, a refresh token `berth_rt_` and base64url, the date ISO 8601: nothing needs JSON
 * escaping, so the body is one template rather than a JSON.stringify of a fresh object.
 */
export function getBody(t: IssuedToken): string {
  const refresh = t.refreshToken ? `,"refresh_token":${JSON.stringify(t.refreshToken)}` : '';
  return `{"token":"${t.token}","access_token":"${t.token}","expires_in":${t.expiresIn},"issued_at":"${t.issuedAtText}"${refresh}}`;
}

/** The POST answer (OAuth 2.0 form, as containerd and buildkit ask). */
export function postBody(t: IssuedToken, access: readonly AccessEntry[]): string {
  const refresh = t.refreshToken ? `,"refresh_token":${JSON.stringify(t.refreshToken)}` : '';
  return `{"access_token":"${t.token}","token_type":"Bearer","scope":${JSON.stringify(grantedScope(access))},"expires_in":${t.expiresIn},"issued_at":"${t.issuedAtText}"${refresh}}`;
}

/** The registry error body: `{"errors":[{"code","message"}]}`. */
export function errorBody(code: string, message: string): { errors: { code: string; message: string }[] } {
  return { errors: [{ code, message }] };
}

export const JSON_TYPE = 'application/json; charset=utf-8';
