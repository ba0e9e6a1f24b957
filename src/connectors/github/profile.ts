import { z } from 'zod';
import { UpstreamUnavailableError } from '../../model/identity.js';
import { GithubAnswerIncomplete, GithubStatusError, type GithubHttp } from './http.js';

const userShape = z.object({
  id: z.number().int().positive(),
  login: z.string().min(1),
  name: z.string().nullish(),
  email: z.string().nullish(),
  html_url: z.string().optional(),
});
const emailShape = z.object({ email: z.string(), primary: z.boolean(), verified: z.boolean() });
const orgShape = z.object({ login: z.string().min(1) });
const teamShape = z.object({ slug: z.string().min(1), organization: orgShape });

export interface GithubTeam {
  org: string;
  slug: string;
}

export interface GithubProfile {
  id: number;
  login: string;
  name?: string;
  htmlURL?: string;
  email?: string;
  /** Organization logins, from /user/orgs plus any org a listed team belongs to. */
  orgs: string[];
  teams: GithubTeam[];
  /** False when GitHub refused to list organizations (the token lacks read:org). */
  orgsReadable: boolean;
  teamsReadable: boolean;
}

/** 401 anywhere, or 403 on /user itself: GitHub no longer accepts this token for this user. */
export class GithubCredentialsRejected extends Error {
  override name = 'GithubCredentialsRejected';
}

function parse<T>(schema: z.ZodType<T>, value: unknown, path: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new UpstreamUnavailableError(`GitHub ${path} answered in an unexpected shape`);
  return r.data;
}

function rejected(e: unknown): boolean {
  return e instanceof GithubStatusError && e.status === 401;
}

/** Runs an optional listing; a 403/404 (missing scope, endpoint disabled) means "not readable". */
async function optional<T>(run: () => Promise<T>): Promise<T | undefined> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof GithubStatusError && (e.status === 403 || e.status === 404)) return undefined;
    throw e;
  }
}

/**
 * Team memberships carry `actions: []` deny rules: without them a user would have fewer groups and
 * so possibly more access. A 403/404 (no read:org, an organization's OAuth app policy) is therefore
 * not "no teams" but an incomplete answer.
 */
async function teamsOrFail<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof GithubStatusError && (e.status === 403 || e.status === 404)) {
      throw new GithubAnswerIncomplete(
        `GitHub did not let Berth read your team memberships (/user/teams answered ${e.status}); access rules depend on them. Grant the read:org scope, or ask an organization owner to approve this app`,
      );
    }
    throw e;
  }
}

function unavailableOrRejected(e: unknown): never {
  if (rejected(e)) throw new GithubCredentialsRejected((e as Error).message);
  if (e instanceof GithubStatusError) throw new UpstreamUnavailableError(e.message);
  throw e;
}

export async function fetchProfile(http: GithubHttp, token: string, opts: { loadTeams: boolean }): Promise<GithubProfile> {
  let user: z.infer<typeof userShape>;
  try {
    user = parse(userShape, await http.getOne(token, '/user'), '/user');
  } catch (e) {
    // A suspended account answers 403 on /user (rate limiting was already told apart in GithubHttp).
    if (e instanceof GithubStatusError && e.status === 403) throw new GithubCredentialsRejected(e.message);
    unavailableOrRejected(e);
  }
  try {
    const [emails, orgs, teams] = await Promise.all([
      optional(async () => parse(z.array(emailShape), await http.getAll(token, '/user/emails'), '/user/emails')),
      optional(async () => parse(z.array(orgShape), await http.getAll(token, '/user/orgs'), '/user/orgs')),
      opts.loadTeams ? teamsOrFail(async () => parse(z.array(teamShape), await http.getAll(token, '/user/teams'), '/user/teams')) : Promise.resolve([]),
    ]);
    // Only a verified primary address from /user/emails: the profile's `email` is whatever the user
    // typed, unverified, and would become the `email` label that ACL rules match.
    const email = emails?.find((e) => e.primary && e.verified)?.email;
    const teamList = teams.map((t) => ({ org: t.organization.login, slug: t.slug }));
    const orgSet = new Map<string, string>();
    for (const o of [...(orgs ?? []).map((o) => o.login), ...teamList.map((t) => t.org)]) {
      if (!orgSet.has(o.toLowerCase())) orgSet.set(o.toLowerCase(), o);
    }
    return {
      id: user.id,
      login: user.login,
      ...(user.name ? { name: user.name } : {}),
      ...(user.html_url ? { htmlURL: user.html_url } : {}),
      ...(email ? { email } : {}),
      orgs: [...orgSet.values()],
      teams: teamList,
      orgsReadable: orgs !== undefined,
      teamsReadable: opts.loadTeams,
    };
  } catch (e) {
    unavailableOrRejected(e);
  }
}
