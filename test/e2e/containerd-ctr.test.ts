import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import yaml from 'js-yaml';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { CTR, describeRun, runCommand, startContainerd, type RunningDaemon } from '../helpers/dockerd.js';
import { buildOciImage } from '../helpers/oci-image.js';
import { basicAuth, registryFetchWithToken, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { copy, describeResult } from '../helpers/skopeo.js';
import { startTokenRecorder, summarize, type TokenRecorder } from '../helpers/token-recorder.js';
import { WebClient } from '../helpers/web-client.js';

// containerd's own client (ctr 1.6, Debian's containerd package) against Berth and the real registry.
// containerd asks with POST grant_type=password first and falls back to GET on a 401, so one wrong
// password reaches Berth twice: it must count once against the lockout.

const SERVICE = 'registry';
const ISSUER = 'berth-ctr-test';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const FAILURES_PER_ACCOUNT = 3;

const pw = () => randomBytes(12).toString('base64url');
const alice = { username: 'alice', password: pw() };
const carol = { username: 'carol', password: pw() };

let work: string;
let berth: RunningServer;
let recorder: TokenRecorder;
let registry: RunningRegistry;
let containerd: RunningDaemon;
let pat: string;

const ref = (repo: string) => `${registry.host}/${repo}`;

/** ctr with nothing inherited; the native snapshotter unpacks without mounts. */
function ctr(args: string[]) {
  return runCommand(CTR, ['--address', containerd.socket, ...args], { PATH: '/usr/bin:/bin', HOME: work, CONTAINERD_SNAPSHOTTER: 'native' });
}

async function berthConfig(): Promise<string> {
  return yaml.dump({
    server: { addr: '127.0.0.1:0' },
    log: { level: 'warn' },
    token: { issuer: ISSUER, services: [SERVICE], generatedKeyDir: join(work, 'keys') },
    users: {
      alice: { password: await hash(alice.password, 4), labels: { team: ['alpha'] } },
      carol: { password: await hash(carol.password, 4), labels: { team: ['gamma'] } },
    },
    limits: { failuresPerAccount: FAILURES_PER_ACCOUNT, window: '10m', lockout: '10m' },
    acl: [{ match: { type: 'repository', name: '${labels:team}/**' }, actions: ['push', 'pull'], comment: 'each team owns its namespace' }],
  });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'berth-ctr-e2e-'));
  berth = await startServer(await loadConfigText(await berthConfig(), work), { port: 0, log: createLogger('silent') });
  recorder = await startTokenRecorder(berth.url);
  registry = await startRegistry({ realm: recorder.realm, service: SERVICE, issuer: ISSUER, rootCertBundlePath: berth.certificatePath! });
  containerd = await startContainerd();
  const web = new WebClient(berth.url);
  const signedIn = await web.signInLocal(alice.username, alice.password);
  expect(signedIn.status).toBeLessThan(400);
  pat = await web.createPat('containerd laptop');
  const img = buildOciImage();
  const seeded = await copy(`oci:${img.dir}`, `docker://${ref('alpha/app')}:v1`, alice);
  rmSync(img.dir, { recursive: true, force: true });
  expect(seeded.code, describeResult(seeded)).toBe(0);
}, 120_000);

afterAll(async () => {
  await containerd?.stop();
  await registry?.stop();
  await recorder?.close();
  await berth?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

beforeEach((ctx) => {
  ctx.onTestFailed(() => {
    console.error(`--- containerd log (tail) ---\n${containerd?.log().slice(-8000)}\n--- token requests ---\n${JSON.stringify(recorder?.calls, null, 1)}`);
  });
});

describe('containerd (ctr) against Berth and the registry', { timeout: 90_000 }, () => {
  const figures: Record<string, string> = {};
  afterAll(() => console.log(`ctr ${JSON.stringify(figures, null, 1)}`));

  it('pulls with --user USER:PAT, asking with POST grant_type=password', async () => {
    recorder.clear();
    const r = await ctr(['images', 'pull', '--plain-http', '--user', `alice:${pat}`, `${ref('alpha/app')}:v1`]);
    expect(r.code, describeRun('ctr pull', r)).toBe(0);
    figures.pull = summarize(recorder.calls);
    // Measured with containerd 1.6: the resolve and the fetch each authorize, both with the password grant.
    const asked = { method: 'POST', grant: 'password', username: 'alice', clientId: 'containerd-client', offline: false, scopes: ['repository:alpha/app:pull'], status: 200 };
    expect(recorder.calls, figures.pull).toMatchObject([asked, asked]);
    const ls = await ctr(['images', 'ls', '-q']);
    expect(ls.stdout.split('\n')).toContain(`${ref('alpha/app')}:v1`);
  });

  it("pushes to the team namespace and is refused in another team's", async () => {
    const tag = await ctr(['images', 'tag', `${ref('alpha/app')}:v1`, `${ref('alpha/app')}:v2`]);
    expect(tag.code, describeRun('ctr tag', tag)).toBe(0);
    recorder.clear();
    const r = await ctr(['images', 'push', '--plain-http', '--user', `alice:${pat}`, `${ref('alpha/app')}:v2`]);
    expect(r.code, describeRun('ctr push', r)).toBe(0);
    figures.push = summarize(recorder.calls);
    expect(recorder.calls, figures.push).toMatchObject([{ method: 'POST', grant: 'password', username: 'alice', clientId: 'containerd-client', scopes: ['repository:alpha/app:pull', 'repository:alpha/app:pull,push'], status: 200 }]);
    const stored = await registryFetchWithToken(registry.url, '/v2/alpha/app/manifests/v2', alice, { method: 'HEAD', headers: { Accept: `${OCI_MANIFEST}, ${DOCKER_MANIFEST}` } });
    expect(stored.response.status).toBe(200);

    const foreignTag = await ctr(['images', 'tag', `${ref('alpha/app')}:v1`, `${ref('gamma/app')}:v1`]);
    expect(foreignTag.code, describeRun('ctr tag', foreignTag)).toBe(0);
    recorder.clear();
    const foreign = await ctr(['images', 'push', '--plain-http', '--user', `alice:${pat}`, `${ref('gamma/app')}:v1`]);
    figures.foreignPush = `${summarize(recorder.calls)} | ${foreign.stderr.trim()}`;
    expect(foreign.code).not.toBe(0);
    // Berth grants nothing on gamma/ (a 200 with no actions, as the spec wants); the registry refuses.
    expect(foreign.stderr).toContain('insufficient_scope: authorization failed');
    expect(recorder.calls.every((c) => c.grant === 'password' && c.status === 200)).toBe(true);
  });

  it('refresh-token grants work (--refresh)', async () => {
    const res = await fetch(`${berth.url}/auth?service=${SERVICE}&offline_token=true&client_id=test`, { headers: { Authorization: basicAuth('alice', pat) } });
    expect(res.status).toBe(200);
    const { refresh_token: refreshToken } = (await res.json()) as { refresh_token?: string };
    expect(refreshToken).toMatch(/^berth_rt_/);
    const rm = await ctr(['images', 'rm', `${ref('alpha/app')}:v1`]);
    expect(rm.code, describeRun('ctr rm', rm)).toBe(0);
    recorder.clear();
    const r = await ctr(['images', 'pull', '--plain-http', '--refresh', refreshToken!, `${ref('alpha/app')}:v1`]);
    expect(r.code, describeRun('ctr pull --refresh', r)).toBe(0);
    figures.refreshPull = summarize(recorder.calls);
    expect(recorder.calls, figures.refreshPull).toMatchObject([{ method: 'POST', grant: 'refresh_token', username: '', clientId: 'containerd-client', scopes: ['repository:alpha/app:pull'], status: 200 }]);
  });

  it('a wrong password (POST, then GET) counts once against the lockout', async () => {
    recorder.clear();
    const r = await ctr(['images', 'pull', '--plain-http', '--user', `carol:${pw()}`, `${ref('gamma/app')}:v1`]);
    figures.wrongPassword = summarize(recorder.calls);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('failed to fetch oauth token: unexpected status: 401 Unauthorized');
    // Two refusals reach Berth for one wrong password: the POST and containerd's GET fallback.
    expect(recorder.calls, figures.wrongPassword).toMatchObject([
      { method: 'POST', grant: 'password', username: 'carol', status: 401 },
      { method: 'GET', grant: 'basic', username: 'carol', status: 401 },
    ]);

    // With a limit of 3 failures: had ctr's attempt counted twice, the next wrong password would be
    // the 3rd and the one after that locked out (429) already.
    const tokenGet = (password: string) => fetch(`${berth.url}/auth?service=${SERVICE}&scope=repository:gamma/app:pull`, { headers: { Authorization: basicAuth('carol', password) } });
    expect((await tokenGet(pw())).status).toBe(401); // 2nd failure
    expect((await tokenGet(pw())).status).toBe(401); // 3rd failure: starts the lockout
    const locked = await tokenGet(carol.password);
    expect(locked.status).toBe(429);
    expect(((await locked.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('TOOMANYREQUESTS');
  });
});
