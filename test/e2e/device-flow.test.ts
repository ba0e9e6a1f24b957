import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { ensureBuilt } from '../helpers/build.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import { launchBrowser } from '../helpers/browser.js';
import { buildOciImage } from '../helpers/oci-image.js';
import { startSsoStack, type SsoStack } from '../helpers/sso-stack.js';
import type { RunningRegistry } from '../helpers/registry.js';
import { promptWatcher, signInAtProvider } from '../helpers/device-prompt.js';

// docker-credential-berth end to end: skopeo, configured to ask the helper for the registry's
// credentials, triggers a device sign-in; chromium signs in at a real OpenID provider, approves the
// code the helper printed, and the push goes through with the PAT the helper received.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HELPER = join(ROOT, 'dist/credential-helper/main.js');


let work: string;
let binDir: string;
let berth: RunningServer;
let registry: RunningRegistry;
let browser: Browser;
let stack: SsoStack;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface UserEnv {
  HOME: string;
  XDG_CONFIG_HOME: string;
  credentialsDir: string;
  authFile: string;
}

/** A person's machine: own HOME and XDG dirs, a containers auth file that sends the registry to the helper. */
function userEnv(): UserEnv {
  const home = mkdtempSync(join(work, 'home-'));
  for (const d of ['config', 'run', 'tmp']) mkdirSync(join(home, d), { mode: 0o700 });
  const authFile = join(home, 'auth.json');
  writeFileSync(authFile, JSON.stringify({ credHelpers: { [registry.host]: 'berth' } }));
  return { HOME: home, XDG_CONFIG_HOME: join(home, 'config'), credentialsDir: join(home, 'config', 'berth'), authFile };
}

function run(cmd: string, args: string[], u: UserEnv, onStderr: (all: string) => void = () => {}, input?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: { PATH: `${binDir}:/usr/bin:/bin`, HOME: u.HOME, XDG_CONFIG_HOME: u.XDG_CONFIG_HOME, XDG_RUNTIME_DIR: join(u.HOME, 'run'), TMPDIR: join(u.HOME, 'tmp'), BERTH_URL: berth.url },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      onStderr(stderr);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 85_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

function skopeo(u: UserEnv, args: string[], onStderr?: (all: string) => void): Promise<Run> {
  const policy = join(u.HOME, 'policy.json');
  writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  return run('skopeo', ['--policy', policy, '--command-timeout', '80s', ...args], u, onStderr);
}



/** Fails the waiting test with the process's output if it ends before printing a prompt. */
async function promptOrExit(watch: Promise<{ url: string; code: string }>, proc: Promise<Run>): Promise<{ url: string; code: string }> {
  return Promise.race([watch, proc.then((r) => Promise.reject(new Error(`exited ${r.code} before showing a code\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)))]);
}

beforeAll(async () => {
  ensureBuilt('credential-helper');
  work = mkdtempSync(join(tmpdir(), 'berth-device-e2e-'));
  binDir = join(work, 'bin');
  mkdirSync(binDir);
  // What `npm i -g` would put on PATH: docker and skopeo find helpers as docker-credential-NAME.
  writeFileSync(join(binDir, 'docker-credential-berth'), `#!/bin/sh\nexec '${process.execPath}' '${HELPER}' "$@"\n`, { mode: 0o755 });

  stack = await startSsoStack(work, 'berth-device-test');
  ({ berth, registry } = stack);
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await stack?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('docker-credential-berth with skopeo and a browser', () => {
  it('skopeo triggers a device sign-in, the person approves it in the browser, and the push succeeds', async () => {
    const u = userEnv();
    const image = buildOciImage();
    const watch = promptWatcher();
    const push = skopeo(u, ['copy', '--preserve-digests', '--retry-times', '0', '--authfile', u.authFile, '--dest-tls-verify=false', `oci:${image.dir}`, `docker://${registry.host}/team-a/app:v1`], watch.onStderr);

    const { url, code } = await promptOrExit(watch.prompt, push);
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(url);
    // Not signed in yet: the sign-in page, which comes back to this code afterwards.
    expect(new URL(page.url()).searchParams.get('returnTo')).toBe(`/device?user_code=${code}`);
    // …and says why the person is there.
    await expect(page.getByText('Please sign in to open that page.').isVisible()).resolves.toBe(true);
    await signInAtProvider(page, berth.url, 'alice', 'alice-pw');
    expect(page.url()).toBe(`${berth.url}/device?user_code=${code}`);
    // The link only fills in the code; the person sends the form (CSRF-checked) to look it up.
    await expect(page.getByLabel('Code').inputValue()).resolves.toBe(code);
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.locator('#confirm-code').textContent()).resolves.toBe(code);
    expect(await page.textContent('main')).toContain('credential helper (device)');
    await page.getByRole('button', { name: 'Approve' }).click();
    await expect(page.getByRole('heading', { name: 'Device approved' }).isVisible()).resolves.toBe(true);
    await context.close();

    const result = await push;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain('Signed in to');

    // The PAT is filed for the registry, readable by the user only.
    const file = join(u.credentialsDir, 'credentials.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(u.credentialsDir).mode & 0o777).toBe(0o700);
    const entry = (JSON.parse(readFileSync(file, 'utf8')) as { credentials: Record<string, { username: string; secret: string; source: string; tokenId: string }> }).credentials[registry.host]!;
    expect(entry).toMatchObject({ username: 'alice', source: 'device' });
    expect(entry.secret).toMatch(/^berth_pat_/);
    const pats = await berth.pats.list((await berth.pats.lookup(entry.secret))!.owner);
    expect(pats.find((p) => p.id === entry.tokenId)?.name).toBe('credential helper (device)');

    // Later commands use the stored token without asking anyone.
    const back = mkdtempSync(join(work, 'pull-'));
    const pull = await skopeo(u, ['copy', '--retry-times', '0', '--authfile', u.authFile, '--src-tls-verify=false', `docker://${registry.host}/team-a/app:v1`, `oci:${back}:v1`]);
    expect(pull.code, pull.stderr).toBe(0);
    expect(pull.stderr).not.toContain('enter the code');
    const index = JSON.parse(readFileSync(join(back, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(index.manifests[0]!.digest).toBe(image.manifestDigest);
    // The token carries alice's access, no more.
    const foreign = await skopeo(u, ['copy', '--retry-times', '0', '--authfile', u.authFile, '--dest-tls-verify=false', `oci:${image.dir}`, `docker://${registry.host}/team-b/app:v1`]);
    expect(foreign.code).not.toBe(0);
  });

  it('a code typed into the form and denied ends the helper with "denied" and no token', async () => {
    const u = userEnv();
    const watch = promptWatcher();
    const get = run('docker-credential-berth', ['get'], u, watch.onStderr, `${registry.host}\n`);
    const { code } = await promptOrExit(watch.prompt, get);

    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${berth.url}/device`);
    await signInAtProvider(page, berth.url, 'bob', 'bob-pw');
    expect(page.url()).toBe(`${berth.url}/device`);
    await page.getByLabel('Code').fill(code.toLowerCase().replace('-', ' '));
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.locator('#confirm-code').textContent()).resolves.toBe(code);
    await page.getByRole('button', { name: 'Deny' }).click();
    await expect(page.getByRole('heading', { name: 'Device denied' }).isVisible()).resolves.toBe(true);
    await context.close();

    const result = await get;
    expect(result).toMatchObject({ code: 1, stdout: 'the sign-in was denied in the browser\n' });
    expect(existsSync(join(u.credentialsDir, 'credentials.json'))).toBe(false);
  });
});
