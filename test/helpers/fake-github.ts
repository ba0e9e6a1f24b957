/**
 * A stand-in for github.com / GitHub Enterprise Server on loopback, answering in the shapes GitHub
 * documents: the OAuth web flow (authorize auto-approves as the chosen user, access_token answers
 * 200 with either a token or {error, error_description, error_uri}), and the REST endpoints under
 * /api/v3 that the connector reads, with per_page/page paging, Link headers, X-OAuth-Scopes /
 * X-Accepted-OAuth-Scopes and {message, documentation_url, status} error bodies.
 *
 * Scope rules: /user/emails accepts user:email or user and /user/orgs read:org or user, as
 * documented. /user/teams is stricter than github.com (which also accepts user and repo): it
 * demands read:org, so a test can get a 403 on teams while orgs still list.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export interface FakeEmail {
  email: string;
  primary: boolean;
  verified: boolean;
  visibility?: 'public' | 'private' | null;
}

export interface FakeTeam {
  org: string;
  slug: string;
  name?: string;
}

export interface FakeUserInput {
  id: number;
  login: string;
  name?: string;
  /** The profile's public email (GET /user `email`); null when the user hides it. */
  publicEmail?: string | null;
  emails?: FakeEmail[];
  orgs?: string[];
  teams?: FakeTeam[];
}

interface FakeUser extends Required<Omit<FakeUserInput, 'name'>> {
  name: string | null;
  /** Scopes this user grants on the consent screen; undefined = whatever the app asked for. */
  grant?: string[];
}

interface IssuedCode {
  login: string;
  clientID: string;
  redirectURI: string;
  challenge: string | null;
  scopes: string[];
  expires: number;
  used: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
}

export interface FakeGithub {
  /** Instance URL, like https://github.com or a GHE host. */
  readonly baseURL: string;
  /** REST root as GitHub Enterprise Server serves it: `${baseURL}/api/v3`. */
  readonly apiURL: string;
  readonly clientID: string;
  readonly clientSecret: string;
  /** Every /login/oauth/authorize query, in order. */
  readonly authorizeRequests: URLSearchParams[];
  /** Every REST request, in order. */
  readonly apiRequests: RecordedRequest[];
  /** Answer 502 everywhere, like GitHub's "unicorn" page during an outage. */
  down: boolean;
  /** Accept connections but never answer (timeouts). */
  hang: boolean;
  /** Largest page served; GitHub's documented maximum is 100. Lower it to page small data. */
  maxPerPage: number;
  /** The next authorize request is denied by the user (error=access_denied). */
  denyNext: boolean;
  /**
   * REST paths answered with this status and GitHub's error body whatever the token's scopes:
   * 403 (an organization's OAuth app policy, a disabled endpoint) or 404 (GitHub's answer to a
   * token that may not see a resource).
   */
  refuse: Map<string, 403 | 404>;
  /**
   * A REST path answered with a well-formed JSON list `bytes` long (team objects), streamed
   * without Content-Length unless `declare` is set, like a misbehaving proxy or instance would.
   */
  oversize: { path: string; bytes: number; declare?: boolean } | undefined;
  /** Bytes of the last oversize answer that were actually written before the client hung up. */
  oversizeSent: number;
  addUser(u: FakeUserInput): void;
  /** Which account the browser is "signed in" as at GitHub (the authorize endpoint approves as this user). */
  signInAs(login: string): void;
  setOrgs(login: string, orgs: string[]): void;
  setTeams(login: string, teams: FakeTeam[]): void;
  setEmails(login: string, emails: FakeEmail[], publicEmail?: string | null): void;
  /** Scopes the user grants from now on (space or comma separated); undefined restores "all requested". */
  grantScopes(login: string, scopes: string | undefined): void;
  tokensOf(login: string): string[];
  revokeToken(token: string): void;
  revokeTokensOf(login: string): void;
  /**
   * GitHub lets a user change their login (same numeric id, tokens keep working); the old login is
   * then free for anyone to register.
   */
  renameUser(from: string, to: string): void;
  close(): Promise<void>;
}

const DOCS = 'https://docs.github.com/rest';
const CODE_TTL_MS = 10 * 60 * 1000;
const SCOPES_FOR: Record<string, string[]> = {
  '/user': [],
  '/user/emails': ['user:email', 'user'],
  '/user/orgs': ['read:org', 'write:org', 'admin:org', 'user'],
  '/user/teams': ['read:org', 'write:org', 'admin:org'],
};

function splitScopes(s: string | null | undefined): string[] {
  return (s ?? '').split(/[\s,]+/).filter(Boolean);
}

function numericID(s: string): number {
  return createHash('sha256').update(s).digest().readUInt32BE(0) & 0x7fffffff;
}

function nodeID(kind: string, id: number): string {
  return Buffer.from(`0${kind.length}:${kind}${id}`).toString('base64');
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startFakeGithub(opts: { clientID?: string; clientSecret?: string } = {}): Promise<FakeGithub> {
  const clientID = opts.clientID ?? `Iv1.${randomBytes(8).toString('hex')}`;
  const clientSecret = opts.clientSecret ?? randomBytes(20).toString('hex');
  const users = new Map<string, FakeUser>();
  const codes = new Map<string, IssuedCode>();
  const tokens = new Map<string, { login: string; scopes: string[] }>();
  let signedIn: string | undefined;

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) json(res, 500, { message: String(e), documentation_url: DOCS, status: '500' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const baseURL = `http://127.0.0.1:${port}`;
  const apiURL = `${baseURL}/api/v3`;

  const fake: FakeGithub = {
    baseURL,
    apiURL,
    clientID,
    clientSecret,
    authorizeRequests: [],
    apiRequests: [],
    down: false,
    hang: false,
    maxPerPage: 100,
    denyNext: false,
    refuse: new Map(),
    oversize: undefined,
    oversizeSent: 0,
    addUser(u) {
      users.set(u.login.toLowerCase(), {
        id: u.id,
        login: u.login,
        name: u.name ?? null,
        publicEmail: u.publicEmail ?? null,
        emails: u.emails ?? [],
        orgs: u.orgs ?? [],
        teams: u.teams ?? [],
      });
    },
    signInAs(login) {
      if (!users.has(login.toLowerCase())) throw new Error(`fake GitHub has no user ${login}`);
      signedIn = login.toLowerCase();
    },
    setOrgs(login, orgs) {
      mustUser(login).orgs = orgs;
    },
    setTeams(login, teams) {
      mustUser(login).teams = teams;
    },
    setEmails(login, emails, publicEmail) {
      const u = mustUser(login);
      u.emails = emails;
      if (publicEmail !== undefined) u.publicEmail = publicEmail;
    },
    grantScopes(login, scopes) {
      const u = mustUser(login);
      if (scopes === undefined) delete u.grant;
      else u.grant = splitScopes(scopes);
    },
    tokensOf(login) {
      return [...tokens].filter(([, t]) => t.login === login.toLowerCase()).map(([k]) => k);
    },
    revokeToken(token) {
      tokens.delete(token);
    },
    revokeTokensOf(login) {
      for (const t of fake.tokensOf(login)) tokens.delete(t);
    },
    renameUser(from, to) {
      const u = mustUser(from);
      users.delete(from.toLowerCase());
      u.login = to;
      users.set(to.toLowerCase(), u);
      for (const t of tokens.values()) if (t.login === from.toLowerCase()) t.login = to.toLowerCase();
      if (signedIn === from.toLowerCase()) signedIn = to.toLowerCase();
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };

  function mustUser(login: string): FakeUser {
    const u = users.get(login.toLowerCase());
    if (!u) throw new Error(`fake GitHub has no user ${login}`);
    return u;
  }

  function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', ...headers });
    res.end(JSON.stringify(body));
  }

  function redirect(res: ServerResponse, to: URL): void {
    res.writeHead(302, { Location: to.href, 'Content-Type': 'text/html; charset=utf-8' });
    res.end(`<html><body>You are being <a href="${to.href}">redirected</a>.</body></html>`);
  }

  function orgObject(login: string) {
    const id = numericID(`org:${login.toLowerCase()}`);
    const url = `${apiURL}/orgs/${login}`;
    return {
      login,
      id,
      node_id: nodeID('Organization', id),
      url,
      repos_url: `${url}/repos`,
      events_url: `${url}/events`,
      hooks_url: `${url}/hooks`,
      issues_url: `${url}/issues`,
      members_url: `${url}/members{/member}`,
      public_members_url: `${url}/public_members{/member}`,
      avatar_url: `${baseURL}/avatars/${id}`,
      description: null,
    };
  }

  function teamObject(t: FakeTeam) {
    const id = numericID(`team:${t.org.toLowerCase()}/${t.slug}`);
    return {
      id,
      node_id: nodeID('Team', id),
      url: `${apiURL}/teams/${id}`,
      html_url: `${baseURL}/orgs/${t.org}/teams/${t.slug}`,
      name: t.name ?? t.slug,
      slug: t.slug,
      description: null,
      privacy: 'closed',
      notification_setting: 'notifications_enabled',
      permission: 'pull',
      members_url: `${apiURL}/teams/${id}/members{/member}`,
      repositories_url: `${apiURL}/teams/${id}/repos`,
      parent: null,
      members_count: 1,
      repos_count: 0,
      created_at: '2020-01-01T00:00:00Z',
      updated_at: '2020-01-01T00:00:00Z',
      organization: { ...orgObject(t.org), name: t.org, type: 'Organization', html_url: `${baseURL}/${t.org}` },
    };
  }

  function userObject(u: FakeUser) {
    return {
      login: u.login,
      id: u.id,
      node_id: nodeID('User', u.id),
      avatar_url: `${baseURL}/avatars/u/${u.id}`,
      gravatar_id: '',
      url: `${apiURL}/users/${u.login}`,
      html_url: `${baseURL}/${u.login}`,
      type: 'User',
      site_admin: false,
      name: u.name,
      company: null,
      blog: '',
      location: null,
      email: u.publicEmail,
      hireable: null,
      bio: null,
      public_repos: 0,
      public_gists: 0,
      followers: 0,
      following: 0,
      created_at: '2020-01-01T00:00:00Z',
      updated_at: '2020-01-01T00:00:00Z',
    };
  }

  /** One page of `all` plus the documented Link header (prev/next/first/last as they apply). */
  function paged(res: ServerResponse, url: URL, all: unknown[], headers: Record<string, string>): void {
    const requested = Number(url.searchParams.get('per_page') ?? '30');
    const perPage = Math.max(1, Math.min(Number.isFinite(requested) && requested > 0 ? requested : 30, 100, fake.maxPerPage));
    const pageParam = Number(url.searchParams.get('page') ?? '1');
    const page = Number.isInteger(pageParam) && pageParam > 0 ? pageParam : 1;
    const last = Math.max(1, Math.ceil(all.length / perPage));
    const items = all.slice((page - 1) * perPage, page * perPage);
    const link = (p: number) => {
      const u = new URL(url.pathname, baseURL);
      u.searchParams.set('per_page', String(perPage));
      u.searchParams.set('page', String(p));
      return u.href;
    };
    const rels: string[] = [];
    if (page > 1) rels.push(`<${link(page - 1)}>; rel="prev"`);
    if (page < last) rels.push(`<${link(page + 1)}>; rel="next"`, `<${link(last)}>; rel="last"`);
    if (page > 1) rels.push(`<${link(1)}>; rel="first"`);
    json(res, 200, items, rels.length > 0 ? { ...headers, Link: rels.join(', ') } : headers);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (fake.hang) return;
    const url = new URL(req.url ?? '/', baseURL);
    if (fake.down) {
      res.writeHead(502, { 'Content-Type': 'text/html' });
      res.end('<html><body><h1>Unicorn!</h1>No server is currently available to service your request.</body></html>');
      return;
    }
    if (req.method === 'GET' && url.pathname === '/login/oauth/authorize') return authorize(url, res);
    if (req.method === 'POST' && url.pathname === '/login/oauth/access_token') return accessToken(req, res);
    if (url.pathname.startsWith('/api/v3/')) return rest(req, url, res);
    json(res, 404, { message: 'Not Found', documentation_url: DOCS, status: '404' });
  }

  function authorize(url: URL, res: ServerResponse): void {
    const q = url.searchParams;
    fake.authorizeRequests.push(new URLSearchParams(q));
    if (q.get('client_id') !== clientID) {
      res.writeHead(404, { 'Content-Type': 'text/html' });
      res.end('<html><body>Not Found</body></html>');
      return;
    }
    const redirectURI = q.get('redirect_uri');
    if (!redirectURI) {
      res.writeHead(400, { 'Content-Type': 'text/html' });
      res.end('<html><body>This app has no callback URL on file and none was sent.</body></html>');
      return;
    }
    const back = new URL(redirectURI);
    const state = q.get('state');
    const fail = (error: string, description: string) => {
      back.searchParams.set('error', error);
      back.searchParams.set('error_description', description);
      back.searchParams.set('error_uri', 'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors');
      if (state !== null) back.searchParams.set('state', state);
      redirect(res, back);
    };
    const challenge = q.get('code_challenge');
    if (challenge !== null && q.get('code_challenge_method') !== 'S256') return fail('invalid_request', 'Only the S256 code challenge method is supported.');
    if (fake.denyNext) {
      fake.denyNext = false;
      return fail('access_denied', 'The user has denied your application access.');
    }
    if (!signedIn) throw new Error('fake GitHub: call signInAs(login) before an authorize request');
    const user = mustUser(signedIn);
    const requested = splitScopes(q.get('scope'));
    const code = randomBytes(10).toString('hex');
    codes.set(code, {
      login: user.login.toLowerCase(),
      clientID,
      redirectURI,
      challenge,
      scopes: user.grant ?? requested,
      expires: Date.now() + CODE_TTL_MS,
      used: false,
    });
    back.searchParams.set('code', code);
    if (state !== null) back.searchParams.set('state', state);
    redirect(res, back);
  }

  async function accessToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const type = req.headers['content-type'] ?? '';
    let p: URLSearchParams;
    if (type.includes('application/json')) {
      try {
        p = new URLSearchParams(JSON.parse(raw) as Record<string, string>);
      } catch {
        return json(res, 400, { message: 'Problems parsing JSON', documentation_url: DOCS, status: '400' });
      }
    } else {
      p = new URLSearchParams(raw);
    }
    const wantsJSON = (req.headers.accept ?? '').includes('application/json');
    const answer = (body: Record<string, string>) => {
      // Without Accept: application/json GitHub answers form-encoded, errors included, always 200.
      if (wantsJSON) return json(res, 200, body);
      res.writeHead(200, { 'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8' });
      res.end(new URLSearchParams(body).toString());
    };
    const troubleshooting = '/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors';
    if (p.get('client_id') !== clientID || p.get('client_secret') !== clientSecret) {
      return answer({
        error: 'incorrect_client_credentials',
        error_description: 'The client_id and/or client_secret passed are incorrect.',
        error_uri: `${troubleshooting}/#incorrect-client-credentials`,
      });
    }
    const badCode = () =>
      answer({ error: 'bad_verification_code', error_description: 'The code passed is incorrect or expired.', error_uri: `${troubleshooting}/#bad-verification-code` });
    const code = p.get('code') ?? '';
    const issued = codes.get(code);
    if (!issued || issued.used || issued.expires < Date.now()) return badCode();
    // Single use: a failed exchange burns the code as well, so a stolen code cannot be retried.
    issued.used = true;
    const redirectURI = p.get('redirect_uri');
    if (redirectURI !== null && redirectURI !== issued.redirectURI) {
      return answer({
        error: 'redirect_uri_mismatch',
        error_description: 'The redirect_uri MUST match the registered callback URL for this application.',
        error_uri: '/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#redirect-uri-mismatch2',
      });
    }
    if (issued.challenge !== null) {
      const verifier = p.get('code_verifier') ?? '';
      const computed = createHash('sha256').update(verifier).digest('base64url');
      if (computed !== issued.challenge) return badCode();
    }
    const token = `gho_${randomBytes(18).toString('base64url')}`;
    tokens.set(token, { login: issued.login, scopes: issued.scopes });
    return answer({ access_token: token, token_type: 'bearer', scope: issued.scopes.join(',') });
  }

  function rest(req: IncomingMessage, url: URL, res: ServerResponse): void {
    const path = url.pathname.slice('/api/v3'.length);
    fake.apiRequests.push({ method: req.method ?? 'GET', path, query: new URLSearchParams(url.searchParams), headers: req.headers });
    const auth = req.headers.authorization ?? '';
    const m = /^(?:Bearer|token)\s+(\S+)$/i.exec(auth);
    if (!m) return json(res, 401, { message: 'Requires authentication', documentation_url: DOCS, status: '401' });
    const grant = tokens.get(m[1]!);
    const user = grant ? users.get(grant.login) : undefined;
    if (!grant || !user) return json(res, 401, { message: 'Bad credentials', documentation_url: DOCS, status: '401' });
    const accepted = SCOPES_FOR[path];
    if (req.method !== 'GET' || accepted === undefined) return json(res, 404, { message: 'Not Found', documentation_url: DOCS, status: '404' });
    const headers = { 'X-OAuth-Scopes': grant.scopes.join(', '), 'X-Accepted-OAuth-Scopes': accepted.join(', '), 'X-GitHub-Media-Type': 'github.v3; format=json' };
    if (accepted.length > 0 && !accepted.some((s) => grant.scopes.includes(s))) {
      return json(res, 403, { message: 'Resource not accessible by integration', documentation_url: DOCS, status: '403' }, headers);
    }
    const refused = fake.refuse.get(path);
    if (refused === 403) return json(res, 403, { message: 'Resource not accessible by integration', documentation_url: DOCS, status: '403' }, headers);
    if (refused === 404) return json(res, 404, { message: 'Not Found', documentation_url: DOCS, status: '404' }, headers);
    if (fake.oversize?.path === path) return streamOversize(res, fake.oversize, headers);
    switch (path) {
      case '/user':
        return json(res, 200, userObject(user), headers);
      case '/user/emails':
        return paged(res, url, user.emails.map((e) => ({ email: e.email, primary: e.primary, verified: e.verified, visibility: e.visibility ?? (e.primary ? 'private' : null) })), headers);
      case '/user/orgs':
        return paged(res, url, user.orgs.map(orgObject), headers);
      default:
        return paged(res, url, user.teams.map(teamObject), headers);
    }
  }

  function streamOversize(res: ServerResponse, o: { bytes: number; declare?: boolean }, headers: Record<string, string>): void {
    const item = JSON.stringify(teamObject({ org: 'acme', slug: 'padding' }));
    const count = Math.max(1, Math.floor((o.bytes - 2) / (item.length + 1)));
    const total = 2 + count * item.length + (count - 1);
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', ...headers, ...(o.declare ? { 'Content-Length': String(total) } : {}) });
    fake.oversizeSent = 0;
    let i = 0;
    const chunk = Buffer.from(Array.from({ length: 64 }, () => item).join(','));
    // Written as the client reads (backpressure), so a client that stops reading stops the flow.
    const pump = () => {
      while (i < count) {
        const n = Math.min(64, count - i);
        const piece = i === 0 ? Buffer.concat([Buffer.from('['), n === 64 ? chunk : Buffer.from(Array.from({ length: n }, () => item).join(','))]) : Buffer.concat([Buffer.from(','), n === 64 ? chunk : Buffer.from(Array.from({ length: n }, () => item).join(','))]);
        i += n;
        fake.oversizeSent += piece.length;
        if (i >= count) {
          res.end(Buffer.concat([piece, Buffer.from(']')]));
          return;
        }
        if (!res.write(piece)) return void res.once('drain', pump);
      }
    };
    res.on('close', () => {
      i = count;
    });
    pump();
  }

  return fake;
}
