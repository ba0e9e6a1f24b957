import type { GithubProfile } from './profile.js';

export type MembershipResult = { ok: true; groups: string[] } | { ok: false; reason: string };

/**
 * Groups are org logins and `org/team-slug`. With allowedOrgs set, the user must belong to one of
 * them (case-insensitive, as GitHub logins are) and groups are limited to those orgs and their
 * teams: memberships elsewhere are none of this registry's business and would only widen what a
 * loosely written ACL pattern could match.
 */
export function membershipGroups(p: GithubProfile, allowedOrgs: readonly string[] | undefined): MembershipResult {
  const allowed = allowedOrgs && allowedOrgs.length > 0 ? new Set(allowedOrgs.map((o) => o.toLowerCase())) : undefined;
  const inScope = (org: string) => !allowed || allowed.has(org.toLowerCase());
  const orgs = p.orgs.filter(inScope);
  if (allowed && orgs.length === 0) {
    if (!p.orgsReadable) return { ok: false, reason: 'GitHub did not reveal organization memberships (the read:org scope was not granted)' };
    return { ok: false, reason: 'not a member of an allowed organization' };
  }
  const teams = p.teams.filter((t) => inScope(t.org)).map((t) => `${t.org}/${t.slug}`);
  return { ok: true, groups: [...new Set([...orgs, ...teams])].sort() };
}
