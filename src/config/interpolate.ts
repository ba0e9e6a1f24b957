import { readFileSync } from 'node:fs';
import { formatPath } from './errors.js';

// Only these two prefixes are touched, so ACL placeholders such as ${account} or ${labels:groups}
// pass through unchanged.
const REF = /\$\{(env|file):([^}]+)\}/g;

/**
 * Replaces `${env:NAME}` and `${file:PATH}` in every string of a parsed YAML document. A missing
 * variable or unreadable file is reported with the YAML path that referenced it.
 */
export function interpolateSecrets(doc: unknown, problems: string[], path: PropertyKey[] = []): unknown {
  if (typeof doc === 'string') {
    return doc.replace(REF, (_all, kind: string, ref: string) => {
      if (kind === 'env') {
        const v = process.env[ref];
        if (v === undefined) {
          problems.push(`${formatPath(path)}: environment variable ${ref} is not set`);
          return '';
        }
        return v;
      }
      try {
        return readFileSync(ref, 'utf8').replace(/\r?\n$/, '');
      } catch (e) {
        problems.push(`${formatPath(path)}: cannot read ${ref}: ${(e as NodeJS.ErrnoException).code ?? e}`);
        return '';
      }
    });
  }
  if (Array.isArray(doc)) return doc.map((v, i) => interpolateSecrets(v, problems, [...path, i]));
  if (doc && typeof doc === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(doc)) out[k] = interpolateSecrets(v, problems, [...path, k]);
    return out;
  }
  return doc;
}
