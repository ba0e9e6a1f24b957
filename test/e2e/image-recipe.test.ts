import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../helpers/build.js';
import { freePort } from '../helpers/redis.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { copy } from '../helpers/skopeo.js';
import { WebClient } from '../helpers/web-client.js';

// The README's first screen, for real: `berth serve --demo` (config/demo.yaml with free ports),
// registry 2.8 trusting its generated key, bob's PAT from the web page, an image made by
// `berth oci-image` (no docker), pushed and pulled with skopeo; bob may not push outside team-a;
// the demo's static admin manages robot accounts.

let work: string;
let cli: string;
let berth: ChildProcess | undefined;
let berthURL: string;
let registry: RunningRegistry | undefined;
let bobPat: string;

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function layoutTag(dir: string, tag: string): string {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const m = index.manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!m) throw new Error(`no tag ${tag} in ${dir}`);
  return m.digest;
}

beforeAll(async () => {
  cli = ensureBuilt('cli');
  work = mkdtempSync(join(tmpdir(), 'berth-recipe-'));
  const [port, idpPort] = [await freePort(), await freePort()];
  const demo = readFileSync(join(ROOT, 'config/demo.yaml'), 'utf8')
    .replaceAll('127.0.0.1:5001', `127.0.0.1:${port}`)
    .replaceAll('http://127.0.0.1:5556', `http://127.0.0.1:${idpPort}`)
    .replace('generatedKeyDir: ../.berth/keys', 'generatedKeyDir: keys');
  expect(demo).toContain(`127.0.0.1:${idpPort}`);
  writeFileSync(join(work, 'demo.yaml'), demo);
  const child = spawn(process.execPath, [cli, 'serve', '--demo', '--config', join(work, 'demo.yaml')], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  berth = child;
  let out = '';
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`berth serve --demo did not start in 30 s: ${out}`)), 30_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (/berth listening on/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`berth serve --demo exited (${code}): ${out}`)));
  });
  berthURL = `http://127.0.0.1:${port}`;
  registry = await startRegistry({ realm: `${berthURL}/auth`, service: 'registry', issuer: 'berth-demo', rootCertBundlePath: join(work, 'keys', 'cert.pem') });
  const web = new WebClient(berthURL);
  await web.signInOidc('demo', 'bob', 'bob');
  bobPat = await web.createPat('laptop');
}, 120_000);

afterAll(async () => {
  await registry?.stop();
  if (berth && berth.exitCode === null) {
    const exited = new Promise((r) => berth!.once('exit', r));
    berth.kill('SIGTERM');
    await exited;
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("the README's walk-through: npm start to a pushed image with only Node.js, skopeo and docker-registry", { timeout: 180_000 }, () => {
  it('berth oci-image writes an image bob pushes to team-a/ with his PAT and pulls back unchanged', async () => {
    const made = await run(['oci-image', '--out', join(work, 'img'), '--tag', '1']);
    expect(made.code, made.stderr).toBe(0);
    const digest = layoutTag(join(work, 'img'), '1');
    const bob = { username: 'bob', password: bobPat };

    const push = await copy(`oci:${join(work, 'img')}:1`, `docker://${registry!.host}/team-a/app:1`, bob);
    expect(push.code, push.stderr).toBe(0);
    const pull = await copy(`docker://${registry!.host}/team-a/app:1`, `oci:${join(work, 'pulled')}:1`, bob);
    expect(pull.code, pull.stderr).toBe(0);
    expect(layoutTag(join(work, 'pulled'), '1')).toBe(digest);

    // The content is the hello.txt the README promises.
    const manifest = JSON.parse(readFileSync(join(work, 'pulled', 'blobs', 'sha256', digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
    expect(manifest.layers).toHaveLength(1);
    const tar = gunzipSync(readFileSync(join(work, 'pulled', 'blobs', 'sha256', manifest.layers[0]!.digest.slice(7))));
    expect(tar.subarray(0, 9).toString()).toBe('hello.txt');
    expect(tar.toString('latin1')).toContain('hello from berth\n');
  });

  it('bob may not push outside team-a (platform/app, app), as the README says', async () => {
    if (!registry) throw new Error('no registry');
    const made = await run(['oci-image', '--out', join(work, 'img2'), '--tag', '1']);
    expect(made.code, made.stderr).toBe(0);
    for (const repo of ['platform/app', 'app', 'team-b/app']) {
      const push = await copy(`oci:${join(work, 'img2')}:1`, `docker://${registry.host}/${repo}:1`, { username: 'bob', password: bobPat });
      expect(push.code, repo).not.toBe(0);
      expect(push.stderr, repo).toMatch(/denied|unauthorized|authentication required/i);
    }
  });

  it("the README's own commands, run as written (ports and /tmp paths swapped for the test's)", async () => {
    if (!registry) throw new Error('no registry');
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const walk = readme.slice(readme.indexOf('From `npm start` to a pushed image'));
    const block = /```sh\n([\s\S]*?)\n```/.exec(walk)![1]!;

    // The registry configuration it writes trusts what config/demo.yaml makes Berth sign with.
    const registryYaml = /<<EOF\n([\s\S]*?)\nEOF/.exec(block)![1]!.replaceAll('$PWD', ROOT.replace(/\/$/, ''));
    const token = (yaml.load(registryYaml) as { auth: { token: Record<string, string> } }).auth.token;
    const demo = yaml.load(readFileSync(join(ROOT, 'config/demo.yaml'), 'utf8')) as { server: { addr: string }; token: { issuer: string; services: string[]; generatedKeyDir: string } };
    expect(token.realm).toBe(`http://${demo.server.addr}/auth`);
    expect(token.issuer).toBe(demo.token.issuer);
    expect(demo.token.services).toContain(token.service);
    expect(token.rootcertbundle).toBe(join(ROOT, 'config', demo.token.generatedKeyDir, 'cert.pem'));
    expect(block).toMatch(/^PAT='berth_pat_/m);

    const commands = block.split('\n').filter((l) => /^(node dist\/cli\/main\.js|skopeo) /.test(l));
    expect(commands.length).toBeGreaterThanOrEqual(4);
    const home = join(work, 'readme-home');
    for (const d of ['', 'run', 'config']) mkdirSync(join(home, d), { recursive: true });
    for (const line of commands) {
      const command = line.replaceAll('127.0.0.1:5000', registry.host).replaceAll('/tmp/img', join(work, 'readme-img')).replaceAll('/tmp/pulled', join(work, 'readme-pulled'));
      const r = spawnSync('bash', ['-c', command], { cwd: ROOT, encoding: 'utf8', timeout: 90_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PAT: bobPat, HOME: home, XDG_RUNTIME_DIR: join(home, 'run'), XDG_CONFIG_HOME: join(home, 'config') } });
      if (/# refused/.test(line)) {
        expect(r.status, line).not.toBe(0);
        expect(r.stderr, line).toMatch(/denied|unauthorized|authentication required/i);
      }
      else expect(r.status, `${line}\n${r.stderr}`).toBe(0);
    }
    expect(layoutTag(join(work, 'readme-pulled'), '1')).toBe(layoutTag(join(work, 'readme-img'), '1'));
  });

  it("the demo's static admin manages robot accounts; bob may not", async () => {
    const admin = new WebClient(berthURL);
    const signedIn = await admin.signInLocal('admin', 'demo');
    expect(signedIn.status, signedIn.html.slice(0, 300)).toBeLessThan(400);
    const adminPat = await admin.createPat('robots');
    const created = await run(['robot', 'create', 'demo-ci', '--repo', 'team-a/**', '--action', 'pull', '--server', berthURL, '--token', adminPat]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/created robot:demo-ci/);
    const refused = await run(['robot', 'list', '--server', berthURL, '--token', bobPat]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/403/);
  });
});
