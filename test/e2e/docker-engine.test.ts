import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { launchBrowser } from '../helpers/browser.js';
import { ensureBuilt } from '../helpers/build.js';
import { DockerClient, describeRun, loadIntoDaemon, startDockerd, type RunningDaemon } from '../helpers/dockerd.js';
import { buildOciImage } from '../helpers/oci-image.js';
import { registryFetchWithToken, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { copy, describeResult } from '../helpers/skopeo.js';
import { SSO_SERVICE, startSsoStack, type SsoStack } from '../helpers/sso-stack.js';
import { startTokenRecorder, summarize, type TokenRecorder } from '../helpers/token-recorder.js';
import { WebClient } from '../helpers/web-client.js';
import { promptWatcher, signInAtProvider } from '../helpers/device-prompt.js';

// The real Docker Engine (Debian's docker.io: dockerd and the docker CLI 20.10) against Berth and the
// real registry: `docker login` with a PAT, push, pull, refusal, revocation, logout. A recorder in
// front of Berth's /auth notes every token request docker makes (the README quotes the counts).

const ISSUER = 'berth-docker-test';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

let work: string;
let helperJs: string;
let stack: SsoStack;
let recorder: TokenRecorder;
let registry: RunningRegistry;
let dockerd: RunningDaemon;

beforeAll(async () => {
  helperJs = ensureBuilt('credential-helper');
  work = mkdtempSync(join(tmpdir(), 'berth-docker-e2e-'));
  stack = await startSsoStack(work, ISSUER);
  recorder = await startTokenRecorder(stack.berth.url);
  // A registry whose realm is the recorder, so that every token request docker makes is seen.
  registry = await startRegistry({ realm: recorder.realm, service: SSO_SERVICE, issuer: ISSUER, rootCertBundlePath: stack.berth.certificatePath! });
  dockerd = await startDockerd();
}, 120_000);

afterAll(async () => {
  await dockerd?.stop();
  await registry?.stop();
  await recorder?.close();
  await stack?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

beforeEach((ctx) => {
  ctx.onTestFailed(() => {
    console.error(`--- dockerd log (tail) ---\n${dockerd?.log().slice(-8000)}\n--- token requests ---\n${JSON.stringify(recorder?.calls, null, 1)}`);
  });
});

async function alicePat(name: string): Promise<{ web: WebClient; pat: string; id: string }> {
  const web = new WebClient(stack.berth.url);
  await web.signInOidc('corp', 'alice', 'alice-pw');
  const pat = await web.createPat(name);
  const id = (await stack.berth.pats.lookup(pat))!.id;
  return { web, pat, id };
}

describe('docker login with a PAT, then push, pull, revoke, logout', { timeout: 120_000 }, () => {
  let docker: DockerClient;
  let web: WebClient;
  let pat: string;
  let patId: string;
  const figures: Record<string, string> = {};
  const repoA = () => `${registry.host}/team-a/app`;

  beforeAll(async () => {
    docker = new DockerClient(dockerd, work);
    ({ web, pat, id: patId } = await alicePat('docker laptop'));
    const img = buildOciImage();
    const loaded = await loadIntoDaemon(dockerd, img.dir, `${repoA()}:v1`);
    rmSync(img.dir, { recursive: true, force: true });
    expect(loaded.code, describeResult(loaded)).toBe(0);
  });

  afterAll(() => {
    console.log(`docker ${JSON.stringify(figures, null, 1)}`);
  });

  it('refuses a mistyped PAT, and a PAT under another username, storing nothing', async () => {
    recorder.clear();
    const typo = await docker.run(['login', '--username', 'alice', '--password-stdin', registry.host], { input: `${pat.slice(0, -1)}${pat.endsWith('A') ? 'B' : 'A'}\n` });
    expect(typo.code, describeRun('docker login', typo)).not.toBe(0);
    figures.mistypedLogin = `${summarize(recorder.calls)} | ${typo.stderr.trim()}`;
    expect(typo.stderr).toContain('unauthorized: malformed personal access token (checksum mismatch): check for a copy/paste error');
    expect(recorder.calls).toMatchObject([{ method: 'GET', grant: 'basic', username: 'alice', offline: true, status: 401 }]);

    recorder.clear();
    const other = await docker.run(['login', '--username', 'bob', '--password-stdin', registry.host], { input: `${pat}\n` });
    expect(other.code, describeRun('docker login', other)).not.toBe(0);
    figures.otherUserLogin = `${summarize(recorder.calls)} | ${other.stderr.trim()}`;
    expect(other.stderr).toContain("unauthorized: this personal access token belongs to another user: log in with its owner's username");
    expect(recorder.calls).toMatchObject([{ method: 'GET', grant: 'basic', username: 'bob', status: 401 }]);
    expect(docker.readConfig().auths?.[registry.host]).toBeUndefined();
    expect(existsSync(docker.configPath) ? readFileSync(docker.configPath, 'utf8') : '').not.toContain(pat);
  });

  it('logs in with a PAT and stores the identity token Berth returned, not the PAT', async () => {
    recorder.clear();
    const r = await docker.run(['login', '--username', 'alice', '--password-stdin', registry.host], { input: `${pat}\n` });
    expect(r.code, describeRun('docker login', r)).toBe(0);
    expect(r.stdout).toContain('Login Succeeded');
    figures.login = summarize(recorder.calls);
    // One GET with the PAT as Basic, asking for a refresh token; no scope (login only checks).
    expect(recorder.calls).toMatchObject([{ method: 'GET', grant: 'basic', username: 'alice', clientId: 'docker', offline: true, scopes: [], status: 200 }]);

    const entry = docker.readConfig().auths?.[registry.host];
    expect(entry?.identitytoken).toMatch(/^berth_rt_/);
    expect(Buffer.from(entry?.auth ?? '', 'base64').toString('utf8')).toBe('alice:');
    expect(readFileSync(docker.configPath, 'utf8')).not.toContain(pat);
  });

  it('pushes to the team namespace with the identity token (refresh-token grants only)', async () => {
    recorder.clear();
    const r = await docker.run(['push', `${repoA()}:v1`]);
    expect(r.code, describeRun('docker push', r)).toBe(0);
    figures.push = summarize(recorder.calls);
    // The PAT never travels again: one refresh-token grant for the whole push.
    expect(recorder.calls).toMatchObject([{ method: 'POST', grant: 'refresh_token', clientId: 'docker', scopes: ['repository:team-a/app:push,pull'], status: 200 }]);
    const digest = /v1: digest: (sha256:[0-9a-f]{64})/.exec(r.stdout)?.[1];
    expect(digest, r.stdout).toBeTruthy();
    const stored = await registryFetchWithToken(registry.url, '/v2/team-a/app/manifests/v1', { username: 'alice', password: pat }, { method: 'HEAD', headers: { Accept: DOCKER_MANIFEST } });
    expect(stored.response.status).toBe(200);
    expect(stored.response.headers.get('docker-content-digest')).toBe(digest);
  });

  it("refuses a push into another team's namespace with docker's 'denied' message", async () => {
    const tag = await docker.run(['tag', `${repoA()}:v1`, `${registry.host}/team-b/app:v1`]);
    expect(tag.code, describeRun('docker tag', tag)).toBe(0);
    recorder.clear();
    const r = await docker.run(['push', `${registry.host}/team-b/app:v1`]);
    figures.foreignPush = `${summarize(recorder.calls)} ${JSON.stringify(recorder.calls.map((c) => c.scopes))} | ${r.stderr.trim()}`;
    expect(r.code, describeRun('docker push', r)).not.toBe(0);
    expect(r.stderr).toContain('denied: requested access to the resource is denied');
  });

  it('pulls the image back after docker rmi', async () => {
    for (const ref of [`${repoA()}:v1`, `${registry.host}/team-b/app:v1`]) {
      const rmi = await docker.run(['rmi', ref]);
      expect(rmi.code, describeRun('docker rmi', rmi)).toBe(0);
    }
    expect((await docker.run(['image', 'inspect', `${repoA()}:v1`])).code).not.toBe(0);
    recorder.clear();
    const r = await docker.run(['pull', `${repoA()}:v1`]);
    expect(r.code, describeRun('docker pull', r)).toBe(0);
    figures.pull = summarize(recorder.calls);
    expect(recorder.calls).toMatchObject([{ method: 'POST', grant: 'refresh_token', clientId: 'docker', scopes: ['repository:team-a/app:pull'], status: 200 }]);
    expect(r.stdout).toContain(`Downloaded newer image for ${repoA()}:v1`);
    expect((await docker.run(['image', 'inspect', `${repoA()}:v1`])).code).toBe(0);
  });

  it('a PAT revoked on the tokens page stops the very next pull (its identity token dies with it)', async () => {
    const rmi = await docker.run(['rmi', `${repoA()}:v1`]);
    expect(rmi.code, describeRun('docker rmi', rmi)).toBe(0);
    const revoked = await web.postForm(`/tokens/${patId}/revoke`, { csrf: await web.csrf() });
    expect(revoked.res.status).toBe(200);
    expect(revoked.html).toContain('Token revoked.');
    const revokedAt = Date.now();
    recorder.clear();
    const r = await docker.run(['pull', `${repoA()}:v1`]);
    figures.pullAfterRevoke = `refused ${recorder.calls[0] ? recorder.calls[0].at - revokedAt : '?'} ms after the revocation, ${summarize(recorder.calls)} | ${r.stderr.trim()}`;
    expect(r.code, describeRun('docker pull', r)).not.toBe(0);
    // The identity token docker holds was derived from the PAT and died with it.
    expect(recorder.calls).toMatchObject([{ method: 'POST', grant: 'refresh_token', status: 401 }]);
    expect(r.stderr).toContain('unauthorized: invalid or expired refresh token');
    // Revocation is synchronous: the first request after it is refused. The bound leaves room for
    // starting the docker CLI on a loaded machine (measured: about 0.3 s).
    expect(recorder.calls[0]!.at - revokedAt).toBeLessThan(1000 * 3);
  });

  it('docker logout forgets the registry without asking Berth', async () => {
    recorder.clear();
    const r = await docker.run(['logout', registry.host]);
    expect(r.code, describeRun('docker logout', r)).toBe(0);
    expect(r.stdout).toContain(`Removing login credentials for ${registry.host}`);
    expect(docker.readConfig().auths?.[registry.host]).toBeUndefined();
    expect(recorder.calls).toEqual([]);
    const pull = await docker.run(['pull', `${repoA()}:v1`]);
    figures.pullAfterLogout = `${summarize(recorder.calls)} | ${pull.stderr.trim()}`;
    expect(pull.code).not.toBe(0);
    // No credentials left: the daemon asks anonymously and this Berth has no anonymous user.
    expect(recorder.calls).toMatchObject([{ method: 'GET', grant: 'anonymous', status: 401 }]);
  });
});



describe('docker with docker-credential-berth in credHelpers', { timeout: 120_000 }, () => {
  let docker: DockerClient;
  let browser: Browser;
  const repo = () => `${registry.host}/team-a/helper`;
  const credentialsFile = () => join(docker.home, '.config', 'berth', 'credentials.json');

  beforeAll(async () => {
    docker = new DockerClient(dockerd, work, { BERTH_URL: stack.berth.url });
    // What `npm i -g` puts on PATH; docker finds it as docker-credential-berth.
    docker.addHelper('berth', `#!/bin/sh\nexec '${process.execPath}' '${helperJs}' "$@"\n`);
    docker.writeConfig({ credHelpers: { [registry.host]: 'berth' } });
    const img = buildOciImage();
    const { pat } = await alicePat('seed');
    const pushed = await copy(`oci:${img.dir}`, `docker://${repo()}:v1`, { username: 'alice', password: pat });
    rmSync(img.dir, { recursive: true, force: true });
    expect(pushed.code, describeResult(pushed)).toBe(0);
    browser = await launchBrowser();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
  });

  it('a plain docker pull starts the device sign-in, chromium approves it, the pull completes; a push needs no prompt; logout revokes the PAT', async () => {
    const watch = promptWatcher();
    recorder.clear();
    const pull = docker.run(['pull', `${repo()}:v1`], { onStderr: watch.onStderr });
    const { url, code } = await Promise.race([watch.prompt, pull.then((r) => Promise.reject(new Error(describeRun('docker pull (before any prompt)', r))))]);

    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(url);
    await signInAtProvider(page, stack.berth.url, 'alice', 'alice-pw');
    // The link only fills in the code; the person sends the form (CSRF-checked) to look it up.
    await expect(page.getByLabel('Code').inputValue()).resolves.toBe(code);
    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.locator('#confirm-code').textContent()).resolves.toBe(code);
    await page.getByRole('button', { name: 'Approve' }).click();
    await expect(page.getByRole('heading', { name: 'Device approved' }).isVisible()).resolves.toBe(true);
    await context.close();

    const pulled = await pull;
    expect(pulled.code, describeRun('docker pull', pulled)).toBe(0);
    expect(pulled.stdout).toContain(`Downloaded newer image for ${repo()}:v1`);
    expect(pulled.stderr).toContain('Signed in to');
    // docker hands the helper's PAT to the daemon, which asks once with it as Basic (no refresh token: not a login).
    expect(recorder.calls, summarize(recorder.calls)).toMatchObject([{ method: 'GET', grant: 'basic', username: 'alice', offline: false, scopes: ['repository:team-a/helper:pull'], status: 200 }]);

    const stored = (JSON.parse(readFileSync(credentialsFile(), 'utf8')) as { credentials: Record<string, { username: string; secret: string; tokenId: string; source: string }> }).credentials[registry.host]!;
    expect(stored).toMatchObject({ username: 'alice', source: 'device' });
    // docker keeps nothing itself: config.json still only names the helper.
    expect(docker.readConfig()).toEqual({ credHelpers: { [registry.host]: 'berth' } });

    const tag = await docker.run(['tag', `${repo()}:v1`, `${repo()}:v2`]);
    expect(tag.code, describeRun('docker tag', tag)).toBe(0);
    recorder.clear();
    const push = await docker.run(['push', `${repo()}:v2`]);
    expect(push.code, describeRun('docker push', push)).toBe(0);
    expect(push.stderr).not.toContain('enter the code');
    expect(recorder.calls, summarize(recorder.calls)).toMatchObject([{ method: 'GET', grant: 'basic', username: 'alice', scopes: ['repository:team-a/helper:push,pull'], status: 200 }]);

    expect(await stack.berth.pats.lookup(stored.secret)).not.toBeNull();
    const logout = await docker.run(['logout', registry.host]);
    expect(logout.code, describeRun('docker logout', logout)).toBe(0);
    expect(await stack.berth.pats.lookup(stored.secret)).toBeNull();
    expect(existsSync(credentialsFile()) ? readFileSync(credentialsFile(), 'utf8') : '').not.toContain(stored.secret);
  });
});
