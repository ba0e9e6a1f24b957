import { parseScopes, ScopeError, type Scope } from './wire.js';
import { badRequest } from '../errors.js';

/** A token request, whichever way it arrived (GET + Basic, or POST form as containerd sends it). */
export interface TokenRequest {
  method: 'GET' | 'POST';
  grantType: 'password' | 'refresh_token' | 'none';
  username: string;
  password: string;
  refreshToken: string;
  service: string;
  scopes: Scope[];
  offline: boolean;
  clientId: string;
}

export const MAX_SCOPES = 64;
const BERTH_SECRET = /^berth_(pat|rbt|rt)_/;
const MAX_CREDENTIAL_LENGTH = 8192;

function one(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) {
    if (value.length !== 1) throw badRequest(`parameter ${name} given ${value.length} times`);
    value = value[0];
  }
  if (typeof value !== 'string') throw badRequest(`parameter ${name} must be a string`);
  return value;
}

function many(value: unknown, name: string): string[] {
  if (value === undefined) return [];
  // A form parser turns a long run of repeated fields into an index-keyed object instead of an array.
  const list = Array.isArray(value) ? value : value && typeof value === 'object' && Object.keys(value).every((k) => /^\d+$/.test(k)) ? Object.values(value) : [value];
  // Counted before merging: identical repeats would otherwise slip past the scope limit.
  if (list.length > MAX_SCOPES) throw badRequest(`too many ${name} parameters (at most ${MAX_SCOPES})`);
  if (!list.every((v) => typeof v === 'string')) throw badRequest(`parameter ${name} must be a string`);
  return list as string[];
}

/** Parses `Authorization: Basic`; null when absent. */
export function parseBasic(header: string | undefined): { username: string; password: string } | null {
  if (!header) return null;
  const m = /^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header);
  if (!m) throw badRequest('unsupported Authorization header: use HTTP Basic');
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw badRequest('malformed Basic credentials: expected user:password');
  const username = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  // Basic credentials split at the first colon (RFC 7617), but account names from a prefixed source
  // carry one (`robot:deploy`, `gh:alice`). Berth's own secrets never contain a colon, so
  // `gh:alice:berth_pat_…` is read with the user name up to the last colon; so is `robot:NAME:SECRET`.
  const last = decoded.lastIndexOf(':');
  if (last > colon && BERTH_SECRET.test(decoded.slice(last + 1))) return { username: decoded.slice(0, last), password: decoded.slice(last + 1) };
  return { username, password };
}

function scopesOf(params: string[]): Scope[] {
  try {
    return parseScopes(params, MAX_SCOPES);
  } catch (e) {
    if (e instanceof ScopeError) throw badRequest(e.message);
    throw e;
  }
}

/** Parameters as node:querystring gives them (a name given twice is an array). */
export type Params = Record<string, string | string[] | undefined>;

/** A POST form (the body already read and decoded by body.ts's readForm). */
export function parsePostRequest(f: Params): TokenRequest {
  const grant = one(f.grant_type, 'grant_type');
  const clientId = one(f.client_id, 'client_id');
  if (!clientId) throw badRequest('missing client_id');
  const service = one(f.service, 'service') ?? '';
  const scopes = scopesOf(many(f.scope, 'scope'));
  const offline = one(f.access_type, 'access_type') === 'offline';
  if (grant === 'password') {
    const username = one(f.username, 'username');
    const password = one(f.password, 'password');
    if (!username || password === undefined) throw badRequest('grant_type=password needs username and password');
    if (password.length > MAX_CREDENTIAL_LENGTH) throw badRequest('password too long');
    return { method: 'POST', grantType: 'password', username, password, refreshToken: '', service, scopes, offline, clientId };
  }
  if (grant === 'refresh_token') {
    const refreshToken = one(f.refresh_token, 'refresh_token');
    if (!refreshToken) throw badRequest('grant_type=refresh_token needs refresh_token');
    return { method: 'POST', grantType: 'refresh_token', username: '', password: '', refreshToken, service, scopes, offline, clientId };
  }
  throw badRequest(grant ? `unsupported grant_type ${JSON.stringify(grant.slice(0, 40))}` : 'missing grant_type');
}

/** A GET: query parameters and the Authorization header (Basic, or none for anonymous). */
export function parseGetRequest(q: Params, auth: string): TokenRequest {
  const service = one(q.service, 'service') ?? '';
  const scopes = scopesOf(many(q.scope, 'scope'));
  const account = one(q.account, 'account');
  const offline = one(q.offline_token, 'offline_token') === 'true';
  const clientId = one(q.client_id, 'client_id') ?? '';
  if (auth.length > MAX_CREDENTIAL_LENGTH) throw badRequest('Authorization header too long');
  const basic = parseBasic(auth || undefined);
  // Clients that split `robot:NAME:SECRET` at the first colon themselves send account=robot (gh for gh:alice).
  const sameAccount = (a: string, user: string) => a === user || user.startsWith(`${a}:`);
  if (basic && account !== undefined && account !== '' && !sameAccount(account, basic.username)) throw badRequest('account parameter does not match the user name in the Authorization header');
  if (!basic) return { method: 'GET', grantType: 'none', username: '', password: '', refreshToken: '', service, scopes, offline, clientId };
  return { method: 'GET', grantType: 'password', username: basic.username, password: basic.password, refreshToken: '', service, scopes, offline, clientId };
}
