import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * mkdir -p, one level at a time, throwing one-line messages. Node's own recursive mkdir loops
 * forever on some paths (`/proc/nope`: ENOENT for a directory whose parent exists), and its
 * errors do not say which component is in the way.
 */
export function makeDir(dir: string, mode = 0o777): void {
  const missing: string[] = [];
  for (let d = resolve(dir); ; ) {
    let isDir: boolean;
    try {
      isDir = statSync(d).isDirectory();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // ENOTDIR: some ancestor is a file; going up finds it and names it.
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || dirname(d) === d) throw new Error(`cannot use ${d}: ${code ?? (e as Error).message}`);
      missing.push(d);
      d = dirname(d);
      continue;
    }
    if (!isDir) throw new Error(`${d} exists and is not a directory`);
    break;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, { mode });
    } catch (e) {
      throw new Error(`cannot create ${d}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
}
