import { createHash } from 'node:crypto';
import { z } from 'zod';
import { LoginRefusedError, UpstreamUnavailableError } from '../../model/identity.js';
import { fetchOrUnavailable, readJSON } from './http.js';

/** Profile, verified emails, and org/team membership; nothing that writes. */
export const GITHUB_SCOPES = ['read:user', 'user:email', 'read:org'] as const;

const VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;

/** RFC 7636 S256, the only method GitHub accepts. */
export function pkceChallenge(codeVerifier: string): string {
  if (!VERIFIER.test(codeVerifier)) throw new Error('PKCE code verifier must be 43-128 unreserved characters');
  return createHash('sha256').update(codeVerifier).digest('base64url');
}

export interface AuthorizeParams {
  webRoot: string;
  clientID: string;
  redirectURI: string;
  state: string;
  codeVerifier: string;
}

export function authorizeURL(p: AuthorizeParams): URL {
  const u = new URL(`${p.webRoot}/login/oauth/authorize`);
  u.searchParams.set('client_id', p.clientID);
  u.searchParams.set('redirect_uri', p.redirectURI);
  u.searchParams.set('scope', GITHUB_SCOPES.join(' '));
  u.searchParams.set('state', p.state);
  u.searchParams.set('code_challenge', pkceChallenge(p.codeVerifier));
  u.searchParams.set('code_challenge_method', 'S256');
  return u;
}

const tokenAnswer = z.union([
  z.object({ access_token: z.string().min(1), token_type: z.string(), scope: z.string().optional() }),
  z.object({ error: z.string(), error_description: z.string().optional() }),
]);

export interface ExchangeParams {
  webRoot: string;
  clientID: string;
  clientSecret: string;
  code: string;
  redirectURI: string;
  codeVerifier: string;
  fetch: typeof fetch;
  timeoutMs: number;
}

export interface GithubToken {
  accessToken: string;
  /** What the user actually granted, comma separated as GitHub reports it. */
  scope: string;
}

export async function exchangeCode(p: ExchangeParams): Promise<GithubToken> {
  const body = new URLSearchParams({
    client_id: p.clientID,
    client_secret: p.clientSecret,
    code: p.code,
    redirect_uri: p.redirectURI,
    code_verifier: p.codeVerifier,
  });
  const res = await fetchOrUnavailable(
    p.fetch,
    `${p.webRoot}/login/oauth/access_token`,
    {
      method: 'POST',
      redirect: 'manual',
      headers: { Accept: 'application/json', 'Content-Type': 'application/x-www-form-urlencoded', 'User-Agent': 'berth' },
      body,
      signal: AbortSignal.timeout(p.timeoutMs),
    },
    'token endpoint',
  );
  if (res.status >= 500 || res.status === 429) {
    await res.body?.cancel().catch(() => {});
    throw new UpstreamUnavailableError(`GitHub token endpoint answered ${res.status}`);
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => {});
    throw new LoginRefusedError(`GitHub token endpoint refused the code exchange (HTTP ${res.status})`);
  }
  const parsed = tokenAnswer.safeParse(await readJSON(res, 'token endpoint'));
  if (!parsed.success) throw new UpstreamUnavailableError('GitHub token endpoint answered without access_token or error');
  // GitHub reports failures as 200 with an error object.
  if ('error' in parsed.data) {
    throw new LoginRefusedError(`GitHub refused the sign-in code: ${parsed.data.error}${parsed.data.error_description ? ` (${parsed.data.error_description})` : ''}`);
  }
  if (parsed.data.token_type.toLowerCase() !== 'bearer') throw new LoginRefusedError(`GitHub issued an unexpected token type ${parsed.data.token_type}`);
  return { accessToken: parsed.data.access_token, scope: parsed.data.scope ?? '' };
}
