import type { Config } from '../app/load-config.js';
import { parseClientIp } from '../policy/acl.js';
import { formatScope, parseScopes } from '../policy/scope.js';
import { ruleReason } from '../policy/explain.js';

/** Text for `berth acl explain`: which rule decided each scope and why. */
export function explain(config: Config, account: string, labels: Record<string, string[]>, scopes: string[], service = '', ip?: string): string {
  const parsed = parseScopes(scopes);
  const decisions = config.acl.decide({ account, labels, service, ip: parseClientIp(ip) }, parsed);
  const lines: string[] = [];
  for (const d of decisions) {
    const asked = formatScope(d.scope);
    if (d.rule < 0) {
      lines.push(`${asked}\n  granted: (nothing)\n  because: no rule matched (default deny)`);
      continue;
    }
    const rule = config.raw.acl[d.rule]!;
    const why = ruleReason(rule);
    lines.push(`${asked}\n  granted: ${d.granted.length ? d.granted.join(',') : '(nothing)'}\n  rule:    acl[${d.rule}] match ${JSON.stringify(rule.match)}${rule.comment ? ` (${rule.comment})` : ''}\n  because: first matching rule; ${why}`);
  }
  return lines.join('\n');
}
