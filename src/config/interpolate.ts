import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { formatPath } from './errors.js';

// Only these two prefixes are touched, so ACL placeholders such as ${account} or ${labels:groups}
// pass through unchanged.
const REF = /\$\{(env|file):([^}]+)\}/g;

export interface InterpolationResult {
  value: unknown;
  /** YAML paths whose reference could not be resolved: later checks skip them (no follow-on errors). */
  unresolved: Set<string>;
}

/**
 * Replaces `${env:NAME}` and `${file:PATH}` (relative to the config file, like every other path in
 * it) in every string of a parsed YAML document. A missing variable or unreadable file is reported
 * with the YAML path that referenced it.
 */
export function interpolateSecrets(doc: unknown, problems: string[], baseDir = process.cwd()): InterpolationResult {
  const unresolved = new Set<string>();
  const walk = (node: unknown, path: PropertyKey[]): unknown => {
    if (typeof node === 'string') {
      // On failure the reference text stays as the stand-in: the load fails anyway, and the rest of
      // the section can still be checked.
      return node.replace(REF, (all: string, kind: string, ref: string) => {
        const where = formatPath(path);
        if (kind === 'env') {
          const v = process.env[ref];
          if (v === undefined) {
            problems.push(`${where}: environment variable ${ref} is not set`);
            unresolved.add(where);
            return all;
          }
          return v;
        }
        const full = resolve(baseDir, ref);
        try {
          return readFileSync(full, 'utf8').replace(/\r?\n$/, '');
        } catch (e) {
          problems.push(`${where}: cannot read ${full}: ${(e as NodeJS.ErrnoException).code ?? e}`);
          unresolved.add(where);
          return all;
        }
      });
    }
    if (Array.isArray(node)) return node.map((v, i) => walk(v, [...path, i]));
    if (node && typeof node === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(node)) out[k] = walk(v, [...path, k]);
      return out;
    }
    return node;
  };
  return { value: walk(doc, []), unresolved };
}
