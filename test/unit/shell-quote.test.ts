import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { shellQuote } from '../../src/util/shell-quote.js';

// Commands shown for copy-paste: every value must come out of the shell as itself, and nothing in
// it may run. Checked by running real shells on the quoted words.

const dir = mkdtempSync(join(tmpdir(), 'berth-quote-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOSTILE = [
  'frank$(touch x)',
  'frank`touch x`',
  "o'brien",
  "'; touch x; echo '",
  'two words',
  'tab\there',
  'new\nline; touch x',
  'semi;touch x',
  'pipe|touch x',
  'amp&&touch x',
  '$HOME',
  '${IFS}touch${IFS}x',
  '*',
  '~root',
  '!!',
  '{a,b}',
  'back\\slash',
  '"double"',
  '',
  '-u',
  'alice',
  'alice@example.com',
  'robot:deploy-web',
  'registry.example.com:5000',
];

const shells = ['sh', 'bash', ...(existsSync('/usr/bin/zsh') || existsSync('/bin/zsh') ? ['zsh'] : [])];

describe('shellQuote', () => {
  it('leaves plain words bare and single-quotes the rest', () => {
    expect(shellQuote('alice')).toBe('alice');
    expect(shellQuote('alice@example.com')).toBe('alice@example.com');
    expect(shellQuote('robot:deploy-web')).toBe('robot:deploy-web');
    expect(shellQuote('frank$(touch x)')).toBe("'frank$(touch x)'");
    expect(shellQuote("o'brien")).toBe("'o'\\''brien'");
    expect(shellQuote('')).toBe("''");
  });

  it.each(shells)('%s reads every quoted value back unchanged and runs nothing inside it', (shell) => {
    for (const value of HOSTILE) {
      const line = `printf '%s' ${shellQuote(value)}`;
      execFileSync(shell, ['-n', '-c', line]);
      const out = execFileSync(shell, ['-c', line], { cwd: dir, encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: dir } });
      expect(out, `${shell}: ${JSON.stringify(value)}`).toBe(value);
      expect(existsSync(join(dir, 'x')), `${shell} ran a command inside ${JSON.stringify(value)}`).toBe(false);
    }
  });

  it('the unquoted form would have run the command (the test can fail)', () => {
    execFileSync('sh', ['-c', `printf '%s' frank$(touch x)`], { cwd: dir });
    expect(existsSync(join(dir, 'x'))).toBe(true);
    rmSync(join(dir, 'x'));
  });
});
