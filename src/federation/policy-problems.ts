import { formatPath } from '../config/errors.js';
import type { FederationPolicyConfig } from '../config/federation.js';
import { compilePattern } from '../policy/pattern.js';
import { templateProblem } from './template.js';

/**
 * What the schema cannot judge without the domain: claim conditions must be valid patterns, and the
 * account and label templates valid references. Each problem names its YAML path.
 */
export function federationPatternProblems(policies: readonly FederationPolicyConfig[]): string[] {
  const problems: string[] = [];
  policies.forEach((p, i) => {
    for (const [claim, patterns] of Object.entries(p.claims)) {
      patterns.forEach((pattern, j) => {
        try {
          compilePattern(pattern);
        } catch (e) {
          problems.push(`${formatPath(['federation', i, 'claims', claim, ...(patterns.length > 1 ? [j] : [])])}: invalid pattern: ${(e as Error).message}`);
        }
      });
    }
    const accountProblem = templateProblem(p.account);
    if (accountProblem) problems.push(`${formatPath(['federation', i, 'account'])}: ${accountProblem}`);
    for (const [label, values] of Object.entries(p.labels)) {
      values.forEach((v, j) => {
        const problem = templateProblem(v);
        if (problem) problems.push(`${formatPath(['federation', i, 'labels', label, ...(values.length > 1 ? [j] : [])])}: ${problem}`);
      });
    }
  });
  return problems;
}
