import { parseClientIp, type Acl, type ScopeDecision } from '../../policy/acl.js';
import { compileGlob } from '../../policy/pattern.js';
import type { Principal, Restriction } from '../../model/principal.js';
import type { AccessEntry } from '../../tokens/registry-jwt.js';
import type { TokenRequest } from './request.js';

const restrictionMatchers = new WeakMap<Restriction, ((name: string) => boolean)[]>();

function narrow(decision: ScopeDecision, r: Restriction): string[] {
  let matchers = restrictionMatchers.get(r);
  if (!matchers) {
    // Globs only, linear time: a `/regex/` stored before they were refused is literal text here (matches nothing).
    matchers = r.repositories.map(compileGlob);
    restrictionMatchers.set(r, matchers);
  }
  const name = decision.scope.name;
  if (!matchers.some((m) => m(name))) return [];
  if (r.actions.includes('*')) return decision.granted;
  return decision.granted.filter((a) => r.actions.includes(a));
}

/**
 * A scope's decision after the credential's own restriction. When the restriction took away actions
 * the ACL granted, `restrictedBy` says so and `aclGranted` keeps what the ACL alone gave: the audit
 * line of a refusal must not credit the ACL rule that granted (it was the token that refused).
 */
export interface AuthorizedDecision extends ScopeDecision {
  restrictedBy?: 'token' | 'robot';
  aclGranted?: string[];
}

// The last client address and its parsed form: a client asks many times in a row, and parsing
// (ipaddr.js) cost 1-2 µs of every fresh token in the bench profile.
let lastIp = '';
let lastParsed: ReturnType<typeof parseClientIp> = null;
function clientAddress(ip: string): ReturnType<typeof parseClientIp> {
  if (ip !== lastIp) {
    lastParsed = parseClientIp(ip);
    lastIp = ip;
  }
  return lastParsed;
}

export interface Authorization {
  decisions: AuthorizedDecision[];
  access: AccessEntry[];
}

/**
 * Step 3: what they get. The ACL decides each scope (src/policy/acl.ts); a PAT's or robot's own
 * restriction can only narrow that further. Partial access is not an error: the token carries the
 * intersection and the registry refuses what is missing.
 */
export function authorize(req: TokenRequest, principal: Principal, acl: Acl, clientIp: string): Authorization {
  const decisions: AuthorizedDecision[] = acl.decide({ account: principal.account, labels: principal.labels, service: req.service, ip: clientAddress(clientIp) }, req.scopes);
  const access: AccessEntry[] = [];
  for (const d of decisions) {
    if (principal.restriction) {
      const narrowed = narrow(d, principal.restriction);
      if (narrowed.length < d.granted.length) {
        d.restrictedBy = principal.kind === 'robot' ? 'robot' : 'token';
        d.aclGranted = d.granted;
      }
      d.granted = narrowed;
    }
    const e: AccessEntry = { type: d.scope.type, name: d.scope.name, actions: d.granted };
    if (d.scope.class) e.class = d.scope.class;
    access.push(e);
  }
  return { decisions, access };
}
