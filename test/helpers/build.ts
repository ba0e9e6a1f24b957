import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Tests that run the compiled CLI or helper as a child process call this so that running one test
 * file alone (without `npm test`, which compiles first) does not test stale JavaScript.
 */
export function ensureBuilt(srcSubdir = 'credential-helper', entry = 'main.js'): string {
  const srcDir = join(ROOT, 'src', srcSubdir);
  const distDir = join(ROOT, 'dist', srcSubdir);
  const out = join(distDir, entry);
  const newestSource = Math.max(...readdirSync(srcDir).map((f) => statSync(join(srcDir, f)).mtimeMs));
  const built = existsSync(out) ? Math.min(...readdirSync(distDir).filter((f) => f.endsWith('.js')).map((f) => statSync(join(distDir, f)).mtimeMs)) : 0;
  if (built >= newestSource) return out;
  try {
    execFileSync('npx', ['tsc', '-p', '.'], { cwd: ROOT, stdio: 'pipe' });
  } catch {
    // Type errors elsewhere in the tree still emit JavaScript; only a missing entry is fatal.
  }
  if (!existsSync(out)) throw new Error(`dist/${srcSubdir}/${entry} missing after npx tsc -p .`);
  return out;
}
