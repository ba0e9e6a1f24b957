/** One resource a client asks access to: `type[(class)]:name:actions`. */
export interface Scope {
  type: string;
  class?: string;
  name: string;
  actions: string[];
}

export class ScopeError extends Error {
  override name = 'ScopeError';
}

const TYPE = /^([a-z0-9]+)(?:\(([a-z0-9]+)\))?$/i;
// Repository names may carry a registry host with a port (host:5000/a/b); the character set is the
// union of what distribution's reference grammar allows, checked loosely so that policy decides.
const NAME = /^[A-Za-z0-9][A-Za-z0-9._\-/:]*$/;
const ACTION = /^(?:[a-z][a-z-]*|\*)$/;
export const MAX_NAME_LENGTH = 512;

/**
 * Parses one scope string. The type ends at the first ':' and the actions start after the last one,
 * so a name holding `host:port/` is kept whole.
 */
export function parseScope(raw: string): Scope {
  const first = raw.indexOf(':');
  const last = raw.lastIndexOf(':');
  if (first <= 0 || last === first) throw new ScopeError(`invalid scope ${JSON.stringify(raw.slice(0, 100))}: expected type:name:actions`);
  const typePart = raw.slice(0, first);
  const name = raw.slice(first + 1, last);
  const actionPart = raw.slice(last + 1);
  const t = TYPE.exec(typePart);
  if (!t) throw new ScopeError(`invalid scope type ${JSON.stringify(typePart.slice(0, 50))}`);
  if (!name || name.length > MAX_NAME_LENGTH || !NAME.test(name)) throw new ScopeError(`invalid resource name in scope ${JSON.stringify(raw.slice(0, 100))}`);
  const actions = actionPart === '' ? [] : actionPart.split(',');
  for (const a of actions) if (!ACTION.test(a)) throw new ScopeError(`invalid action ${JSON.stringify(a.slice(0, 30))} in scope`);
  const scope: Scope = { type: t[1]!, name, actions: [...new Set(actions)] };
  if (t[2]) scope.class = t[2];
  return scope;
}

/**
 * Parses every `scope` parameter (each may hold several space-separated scopes) and merges
 * repeated resources, so `repository:a:pull` + `repository:a:push` becomes one entry (Helm asks
 * both). The class (`repository(plugin)`) does not make another resource: the registry keys access by
 * type and name, so asks differing only in class merge, and the merged entry carries no class.
 */
export function parseScopes(params: readonly string[], maxScopes = 64): Scope[] {
  const byKey = new Map<string, Scope>();
  for (const param of params) {
    for (const raw of param.split(' ')) {
      if (!raw) continue;
      const s = parseScope(raw);
      const key = `${s.type}\u0000${s.name}`;
      const prev = byKey.get(key);
      if (prev) {
        for (const a of s.actions) if (!prev.actions.includes(a)) prev.actions.push(a);
        if (prev.class !== s.class) delete prev.class;
      } else {
        if (byKey.size >= maxScopes) throw new ScopeError(`too many scopes (at most ${maxScopes})`);
        byKey.set(key, s);
      }
    }
  }
  return [...byKey.values()];
}

export function formatScope(s: Scope): string {
  return `${s.type}${s.class ? `(${s.class})` : ''}:${s.name}:${s.actions.join(',')}`;
}
