import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { loadSettings } from '../../src/credential-helper/settings.js';
import { DEMO_USERS } from '../../src/demo/run-demo.js';
import { ROOT } from '../helpers/build.js';

// Small truths the README and docs state: checked here so that they cannot drift.

const docs = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f))];
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The README's first screen: everything before the table of contents. */
const firstScreen = readme.slice(0, readme.indexOf('## Contents'));

describe('documentation', () => {
  it.each(docs)('every ```json block in %s is valid JSON', (file) => {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const blocks = [...text.matchAll(/^([ \t]*)```json\n([\s\S]*?)^\1```/gm)].map((m) => m[2]!);
    for (const block of blocks) expect(() => JSON.parse(block), `${file}:\n${block}`).not.toThrow();
  });

  it('the credential-helper docs do have JSON examples (the check above is not vacuous)', () => {
    expect(readFileSync(join(ROOT, 'docs/credential-helper.md'), 'utf8')).toMatch(/```json\n/);
  });

  it("the helper.json example in docs/credential-helper.md is one the helper accepts", () => {
    const text = readFileSync(join(ROOT, 'docs/credential-helper.md'), 'utf8');
    const example = [...text.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('"registries"'));
    expect(example).toBeDefined();
    const home = mkdtempSync(join(tmpdir(), 'berth-docs-helper-'));
    try {
      mkdirSync(join(home, 'berth'));
      writeFileSync(join(home, 'berth', 'helper.json'), example!);
      const settings = loadSettings({ XDG_CONFIG_HOME: home, HOME: home });
      expect(settings.registries.size).toBeGreaterThan(0);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('.env is ignored by git (the README tells people to keep secrets there)', () => {
    // check-ignore exits 1 when the path is not ignored, which makes execFileSync throw.
    expect(execFileSync('git', ['check-ignore', '--no-index', '.env'], { cwd: ROOT, encoding: 'utf8' }).trim()).toBe('.env');
  });

  it("the README's first screen lists the demo's people, passwords and groups, and the static admin", () => {
    for (const u of DEMO_USERS) {
      expect(firstScreen).toContain(`\`${u.username}\`/\`${u.password}\``);
      for (const g of u.groups) expect(firstScreen).toMatch(new RegExp(`\`${u.username}\`/\`${u.password}\`[^\\n]*\\(group \`${g}\``));
    }
    const demo = yaml.load(readFileSync(join(ROOT, 'config/demo.yaml'), 'utf8')) as { users: Record<string, unknown>; admin: { accounts: string[] } };
    for (const name of Object.keys(demo.users).filter(Boolean)) expect(firstScreen).toContain(`\`${name}\`/\``);
    expect(demo.admin.accounts).toEqual(['admin']);
    expect(firstScreen).toMatch(/`admin`[^.]*robot accounts/);
  });

  it("the README lists the compose stack's people and groups", () => {
    const realm = JSON.parse(readFileSync(join(ROOT, 'config/compose/realm.json'), 'utf8')) as { users: { username: string; groups: string[] }[] };
    expect(realm.users.length).toBeGreaterThan(0);
    for (const u of realm.users) {
      const group = u.groups[0]!.replace(/^\//, '');
      expect(readme).toMatch(new RegExp(`\`${u.username}\` \\(group \`${group}\`\\)`));
    }
  });
});
