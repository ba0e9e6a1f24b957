/**
 * One account namespace: every registry account name belongs to exactly one source, by construction.
 *
 *   static users   `users:` keys, written by the operator (docker_auth's names, unchanged)
 *   robots         `robot:NAME`
 *   federation     a template whose literal prefix ends in `:` (`ci:${repository}`); one issuer per prefix
 *   connectors     the provider's username, behind the connector's `accountPrefix` (`gh:alice`); at most
 *                  one connector has none. A provider's username may not contain `:` and may not be a
 *                  static user's name, so nothing a provider sends can reach another source's names.
 *
 * The same prefix qualifies a connector's groups (`gh:platform`), so a group a person can create at
 * one provider never matches rules written for another source's group of the same name.
 *
 * This module is pure (no store, no config types) so that the config loader can refuse overlapping
 * sources at start and the sign-in path can refuse a name with the same rules.
 */

export const ROBOT_ACCOUNT_PREFIX = 'robot:';
/** Static users sign in on the web under this connector id; no configured connector may take it. */
export const LOCAL_CONNECTOR_ID = 'local';

const PREFIX = /^[a-z][a-z0-9-]{0,30}:$/;
const MAX_NAME = 200;

/** A sign-in or a re-check would produce a name the namespace does not allow; `message` is for people. */
export class AccountNameError extends Error {
  override name = 'AccountNameError';
}

export interface NamespaceSources {
  staticUsers: readonly string[];
  /** In config order; `prefix` '' = unprefixed. */
  connectors: readonly { id: string; prefix: string; where: string }[];
  /** The literal text of each federation account template before its first `${`. */
  federation: readonly { issuer: string; template: string; where: string }[];
}

/** The literal head of a template: `ci:${repository}` → `ci:`. */
export function templateHead(template: string): string {
  const i = template.indexOf('${');
  return i < 0 ? template : template.slice(0, i);
}

/** The prefix (up to and including the first `:`) a template's names all start with, or null. */
function federationPrefix(template: string): string | null {
  const head = templateHead(template);
  const colon = head.indexOf(':');
  return colon > 0 && PREFIX.test(head.slice(0, colon + 1)) ? head.slice(0, colon + 1) : null;
}

/**
 * Every way two sources could produce one name, as config problems naming both sides. Empty when the
 * sources are disjoint by construction.
 */
export function namespaceProblems(s: NamespaceSources): string[] {
  const problems: string[] = [];
  const owners = new Map<string, string>(); // prefix → who owns it
  owners.set(ROBOT_ACCOUNT_PREFIX, 'robot accounts');
  const unprefixed: string[] = [];
  for (const c of s.connectors) {
    if (c.id === LOCAL_CONNECTOR_ID) problems.push(`${c.where}.id: "${LOCAL_CONNECTOR_ID}" is reserved for the static users' sign-in; pick another id`);
    if (c.prefix === '') {
      unprefixed.push(c.where);
      continue;
    }
    if (!PREFIX.test(c.prefix)) {
      problems.push(`${c.where}.accountPrefix: ${JSON.stringify(c.prefix)} must be lowercase letters, digits or "-" followed by ":" (e.g. "gh:")`);
      continue;
    }
    const other = owners.get(c.prefix);
    if (other) problems.push(`${c.where}.accountPrefix: ${c.prefix} is already used by ${other}; each source needs its own prefix`);
    else owners.set(c.prefix, `connector ${c.id} (${c.where})`);
  }
  if (unprefixed.length > 1) {
    problems.push(`${unprefixed.join(' and ')}: more than one connector produces unprefixed account names, so the same username from two providers would be one account; give all but one an accountPrefix such as "${s.connectors.find((c) => c.where === unprefixed[1])?.id ?? 'gh'}:"`);
  }
  const fedIssuer = new Map<string, string>();
  for (const f of s.federation) {
    const prefix = federationPrefix(f.template);
    if (!prefix) {
      problems.push(`${f.where}.account: the template must start with a fixed prefix ending in ":" (e.g. "ci:\${repository}") so that CI accounts can never be named like a person, a static user or a robot`);
      continue;
    }
    const seen = fedIssuer.get(prefix);
    if (seen !== undefined && seen !== f.issuer) {
      problems.push(`${f.where}.account: prefix ${prefix} is also used for issuer ${seen}; two issuers could name the same account, so give each issuer its own prefix`);
      continue;
    }
    if (seen === undefined) {
      const other = owners.get(prefix);
      if (other) problems.push(`${f.where}.account: prefix ${prefix} is already used by ${other}; each source needs its own prefix`);
      fedIssuer.set(prefix, f.issuer);
      owners.set(prefix, `federation issuer ${f.issuer}`);
    }
  }
  for (const name of s.staticUsers) {
    if (name === '') continue;
    const colon = name.indexOf(':');
    if (colon < 0) continue;
    const prefix = name.slice(0, colon + 1);
    const other = owners.get(prefix);
    if (other) problems.push(`users.${name}: the name starts with ${prefix}, which belongs to ${other}; rename the user`);
  }
  // `gh:alice:SECRET` reaches Basic auth as user `gh`; the static user `gh` would make that ambiguous.
  for (const prefix of owners.keys()) {
    if (s.staticUsers.includes(prefix.slice(0, -1))) problems.push(`users.${prefix.slice(0, -1)}: this name is the prefix ${prefix} of ${owners.get(prefix)}; rename the user`);
  }
  return problems;
}

/**
 * The namespace at run time: turns what a connector reports into the account name and groups, or
 * refuses with a message a person can act on.
 */
export class AccountNamespace {
  private readonly prefixes: ReadonlyMap<string, string>;
  private readonly staticUsers: ReadonlySet<string>;

  constructor(sources: Pick<NamespaceSources, 'staticUsers' | 'connectors'>) {
    this.prefixes = new Map(sources.connectors.map((c) => [c.id, c.prefix]));
    this.staticUsers = new Set(sources.staticUsers);
  }

  prefixOf(connectorId: string): string {
    return connectorId === LOCAL_CONNECTOR_ID ? '' : (this.prefixes.get(connectorId) ?? `${connectorId}:`);
  }

  /** The registry account of a connector's user; throws AccountNameError when the name is not theirs to have. */
  connectorAccount(connectorId: string, username: string): string {
    if (connectorId === LOCAL_CONNECTOR_ID) {
      if (!this.staticUsers.has(username) || username === '') throw new AccountNameError('unknown local account');
      return username;
    }
    // Control characters and ':' would let a provider's text leave the connector's part of the namespace.
    // eslint-disable-next-line no-control-regex
    if (username === '' || username.length > MAX_NAME || /[\u0000-\u001f\u007f:\s]/.test(username)) {
      throw new AccountNameError(`Your username at this identity provider (${JSON.stringify(username.slice(0, 60))}) cannot be used as a registry account name: it is empty, too long, or contains ":", spaces or control characters.`);
    }
    const prefix = this.prefixOf(connectorId);
    if (prefix === '' && this.staticUsers.has(username)) {
      throw new AccountNameError(`The account name "${username}" is reserved for a local account on this server, so it cannot be used for a sign-in through an identity provider. Ask your administrator.`);
    }
    return prefix + username;
  }

  /** A connector's groups as the ACL sees them: behind the connector's prefix. */
  connectorGroups(connectorId: string, groups: readonly string[]): string[] {
    const prefix = this.prefixOf(connectorId);
    return prefix === '' ? [...groups] : groups.map((g) => prefix + g);
  }
}
