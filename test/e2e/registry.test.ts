import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import { Redis } from 'ioredis';
import yaml from 'js-yaml';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { buildOciImage, type OciImage } from '../helpers/oci-image.js';
import { cleanPrefix, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';
import { basicAuth, decodeJwt, parseBearerChallenge, registryFetchWithToken, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { copy, describeResult, inspect, listTags, type Creds } from '../helpers/skopeo.js';

const SERVICE = 'registry-e2e';
const ISSUER = 'berth-e2e';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

const pw = () => randomBytes(12).toString('base64url');
const users = {
  admin: { username: 'admin', password: pw() },
  cataloger: { username: 'cataloger', password: pw() },
  puller: { username: 'puller', password: pw() },
  alice: { username: 'alice', password: pw() },
};

let workDir: string;
let keyPrefix: string;
let berth: RunningServer;
let registry: RunningRegistry;
let seed: OciImage;
const tempDirs: string[] = [];

function tempDir(label: string): string {
  const d = mkdtempSync(join(tmpdir(), `berth-e2e-${label}-`));
  tempDirs.push(d);
  return d;
}

function image(): OciImage {
  const img = buildOciImage();
  tempDirs.push(img.dir);
  return img;
}

const realm = () => `${berth.url}/auth`;
const ref = (repo: string) => `docker://${registry.host}/${repo}`;

async function berthConfig(): Promise<string> {
  const hashes = Object.fromEntries(await Promise.all(Object.values(users).map(async (u) => [u.username, await hash(u.password, 4)] as const)));
  return yaml.dump({
    server: { addr: '127.0.0.1:0' },
    log: { level: 'warn' },
    store: { type: 'redis', redis: { url: await redisUrl(), keyPrefix } },
    secrets: { encryptionKey: 'registry-e2e-encryption-key-0123456789abcdef' },
    token: { issuer: ISSUER, expiration: 300, services: [SERVICE], generatedKeyDir: join(workDir, 'keys') },
    users: {
      admin: { password: hashes.admin },
      cataloger: { password: hashes.cataloger },
      puller: { password: hashes.puller },
      alice: { password: hashes.alice, labels: { team: ['alpha'] } },
      '': {},
    },
    acl: [
      { match: { account: 'admin' }, actions: ['*'], comment: 'admin does everything' },
      { match: { account: 'cataloger', type: 'registry', name: 'catalog' }, actions: ['*'] },
      { match: { account: 'puller', type: 'repository' }, actions: ['pull'] },
      { match: { account: '', name: 'hello-world' }, actions: ['pull'], comment: 'anonymous pulls hello-world' },
      { match: { type: 'repository', name: '${labels:team}/**' }, actions: ['push', 'pull'], comment: 'each team owns its namespace' },
    ],
  });
}

async function tokenGet(params: Record<string, string | string[]>, authorization?: string): Promise<Response> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) q.append(k, x);
  return fetch(`${realm()}?${q}`, authorization ? { headers: { Authorization: authorization } } : {});
}

async function tokenPost(form: Record<string, string>): Promise<Response> {
  return fetch(realm(), { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
}

function getManifest(repo: string, reference: string, token: string): Promise<Response> {
  return fetch(`${registry.url}/v2/${repo}/manifests/${reference}`, { headers: { Authorization: `Bearer ${token}`, Accept: OCI_MANIFEST } });
}

async function expectCopyOk(src: string, dst: string, creds: Creds): Promise<void> {
  const r = await copy(src, dst, creds);
  expect(r.code, describeResult(r)).toBe(0);
}

function pulledLayer(dir: string, digest: string): Buffer {
  return readFileSync(join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)));
}

describe('Berth as the token service of a real registry (skopeo)', { timeout: 60_000 }, () => {
  beforeAll(async () => {
    workDir = tempDir('work');
    keyPrefix = uniqueKeyPrefix('e2e-registry');
    const config = await loadConfigText(await berthConfig(), workDir);
    berth = await startServer(config, { port: 0 });
    expect(berth.certificatePath).toBeTruthy();
    registry = await startRegistry({ realm: realm(), service: SERVICE, issuer: ISSUER, rootCertBundlePath: berth.certificatePath! });
    seed = image();
    try {
      await expectCopyOk(`oci:${seed.dir}`, `${ref('hello-world')}:latest`, users.admin);
      await expectCopyOk(`oci:${seed.dir}`, `${ref('private/base')}:latest`, users.admin);
    } catch (e) {
      console.error(`--- registry log (last 20000 chars) ---\n${registry.log().slice(-20_000)}`);
      throw e;
    }
  });

  afterAll(async () => {
    await registry?.stop();
    await berth?.close();
    if (keyPrefix) await cleanPrefix(keyPrefix);
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });

  beforeEach((ctx) => {
    ctx.onTestFailed(() => {
      console.error(`--- registry log (last 20000 chars) ---\n${registry?.log().slice(-20_000)}`);
    });
  });

  it('pushes with skopeo, inspects the same digest, lists the tag and pulls identical layer bytes', async () => {
    const img = image();
    await expectCopyOk(`oci:${img.dir}`, `${ref('team/app')}:v1`, users.admin);

    const insp = await inspect(`${ref('team/app')}:v1`, users.admin);
    expect(insp.code, describeResult(insp)).toBe(0);
    const info = JSON.parse(insp.stdout) as { Digest: string; Layers: string[] };
    expect(info.Digest).toBe(img.manifestDigest);
    expect(info.Layers).toEqual([img.layerDigest]);

    const tags = await listTags(ref('team/app'), users.admin);
    expect(tags.code, describeResult(tags)).toBe(0);
    expect((JSON.parse(tags.stdout) as { Tags: string[] }).Tags).toEqual(['v1']);

    // The registry stored the blob under its digest: the push really went through it.
    const hex = img.layerDigest.slice(7);
    const stored = join(registry.dataDir, 'storage', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    expect(existsSync(stored)).toBe(true);

    const out = tempDir('pull');
    await expectCopyOk(`${ref('team/app')}:v1`, `oci:${out}:v1`, users.admin);
    expect(pulledLayer(out, img.layerDigest).equals(img.layerBytes)).toBe(true);
  });

  it('a second skopeo command within the reuse window gets the same token from the fast path, and the registry accepts it', async () => {
    // Measured with skopeo 1.9: `inspect` asks twice for the same token (the second is already a
    // repeat), a push or a pull of a one-layer image once. A second command with the same
    // credentials from the same address repeats all of its token requests.
    const counts = async () => {
      const text = await (await fetch(`${berth.url}/metrics`)).text();
      const sum = (re: RegExp) => [...text.matchAll(re)].reduce((n, x) => n + Number(x[1]), 0);
      return { asked: sum(/^berth_token_requests_total\{[^}]*\} (\d+)$/gm), reused: sum(/^berth_token_reused_total\{[^}]*\} (\d+)$/gm) };
    };
    const before = await counts();
    const first = await inspect(`${ref('private/base')}:latest`, users.admin);
    expect(first.code, describeResult(first)).toBe(0);
    const between = await counts();
    const second = await inspect(`${ref('private/base')}:latest`, users.admin);
    expect(second.code, describeResult(second)).toBe(0);
    expect(JSON.parse(second.stdout).Digest).toBe(JSON.parse(first.stdout).Digest);
    const after = await counts();
    const askedBySecond = after.asked - between.asked;
    expect(askedBySecond).toBeGreaterThan(0);
    expect(askedBySecond).toBe(between.asked - before.asked);
    expect(after.reused - between.reused).toBe(askedBySecond);
  });

  it('catalog: only an account granted registry:catalog:* reads /v2/_catalog', async () => {
    const granted = await registryFetchWithToken(registry.url, '/v2/_catalog', users.cataloger);
    expect(granted.challenge.scope).toBe('registry:catalog:*');
    expect(granted.challenge.service).toBe(SERVICE);
    expect(granted.challenge.realm).toBe(realm());
    expect(granted.tokenStatus).toBe(200);
    expect(granted.response.status).toBe(200);
    const catalog = (await granted.response.json()) as { repositories: string[] };
    expect(catalog.repositories).toEqual(expect.arrayContaining(['hello-world', 'private/base']));

    const denied = await registryFetchWithToken(registry.url, '/v2/_catalog', users.puller);
    expect(denied.tokenStatus).toBe(200); // a token is issued, carrying nothing
    expect(decodeJwt(denied.token!).payload.access).toEqual([{ type: 'registry', name: 'catalog', actions: [] }]);
    expect(denied.response.status).toBe(401);
    const body = (await denied.response.json()) as { errors: { code: string }[] };
    expect(body.errors[0]!.code).toBe('UNAUTHORIZED');
  });

  it('a pull-only account cannot push but can pull', async () => {
    const img = image();
    const push = await copy(`oci:${img.dir}`, `${ref('hello-world')}:by-puller`, users.puller);
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/unauthorized|authentication required|denied/i);
    const tags = await listTags(ref('hello-world'), users.admin);
    expect((JSON.parse(tags.stdout) as { Tags: string[] }).Tags).not.toContain('by-puller');

    const out = tempDir('puller');
    await expectCopyOk(`${ref('private/base')}:latest`, `oci:${out}:latest`, users.puller);
    expect(pulledLayer(out, seed.layerDigest).equals(seed.layerBytes)).toBe(true);
  });

  it('a wrong password is refused by Berth with a Basic challenge, and skopeo fails', async () => {
    for (const creds of [{ username: 'admin', password: 'wrong-password' }, { username: 'nobody', password: 'whatever' }]) {
      const res = await tokenGet({ service: SERVICE, scope: 'repository:hello-world:pull' }, basicAuth(creds.username, creds.password));
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
      const body = (await res.json()) as { errors: { code: string; message: string }[] };
      expect(body.errors[0]!.code).toBe('UNAUTHORIZED');
      expect(body.errors[0]!.message).toBeTruthy();
    }
    const r = await inspect(`${ref('hello-world')}:latest`, { username: 'admin', password: 'wrong-password' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/unauthorized|401|authentication/i);
  });

  it('anonymous pulls hello-world but cannot push there or pull other repositories', async () => {
    const insp = await inspect(`${ref('hello-world')}:latest`, null);
    expect(insp.code, describeResult(insp)).toBe(0);
    expect((JSON.parse(insp.stdout) as { Digest: string }).Digest).toBe(seed.manifestDigest);

    const out = tempDir('anon');
    await expectCopyOk(`${ref('hello-world')}:latest`, `oci:${out}:latest`, null);
    expect(pulledLayer(out, seed.layerDigest).equals(seed.layerBytes)).toBe(true);

    const img = image();
    const push = await copy(`oci:${img.dir}`, `${ref('hello-world')}:anonymous`, null);
    expect(push.code).not.toBe(0);
    const other = await inspect(`${ref('private/base')}:latest`, null);
    expect(other.code).not.toBe(0);
  });

  it('partial grant: asking pull,push with only pull allowed yields a pull-only token', async () => {
    const res = await tokenGet({ service: SERVICE, scope: 'repository:hello-world:pull,push' }, basicAuth(users.puller.username, users.puller.password));
    expect(res.status).toBe(200);
    const { token } = (await res.json()) as { token: string };
    const { payload } = decodeJwt(token);
    expect(payload.access).toEqual([{ type: 'repository', name: 'hello-world', actions: ['pull'] }]);
    expect(payload.sub).toBe('puller');

    expect((await getManifest('hello-world', 'latest', token)).status).toBe(200);
    const upload = await fetch(`${registry.url}/v2/hello-world/blobs/uploads/`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
    expect(upload.status).toBe(401);
  });

  it('per-team namespaces from labels: alice (team alpha) pushes alpha/app but not beta/app', async () => {
    const img = image();
    await expectCopyOk(`oci:${img.dir}`, `${ref('alpha/app')}:v1`, users.alice);
    const insp = await inspect(`${ref('alpha/app')}:v1`, users.alice);
    expect(insp.code, describeResult(insp)).toBe(0);
    expect((JSON.parse(insp.stdout) as { Digest: string }).Digest).toBe(img.manifestDigest);

    const refused = await copy(`oci:${img.dir}`, `${ref('beta/app')}:v1`, users.alice);
    expect(refused.code).not.toBe(0);
    const catalog = await registryFetchWithToken(registry.url, '/v2/_catalog', users.cataloger);
    const repos = ((await catalog.response.json()) as { repositories: string[] }).repositories;
    expect(repos).toContain('alpha/app');
    expect(repos).not.toContain('beta/app');
  });

  it('names carrying host:port inside a scope are kept whole', async () => {
    const res = await tokenGet(
      { service: SERVICE, scope: ['repository:127.0.0.1:5000/x/y:pull', `repository:${registry.host}/team/app:pull,push`] },
      basicAuth(users.admin.username, users.admin.password),
    );
    expect(res.status).toBe(200);
    const { payload } = decodeJwt(((await res.json()) as { token: string }).token);
    expect(payload.access).toEqual([
      { type: 'repository', name: '127.0.0.1:5000/x/y', actions: ['pull'] },
      { type: 'repository', name: `${registry.host}/team/app`, actions: ['pull', 'push'] },
    ]);
  });

  it('refresh token round trip: offline_token=true, then grant_type=refresh_token gives a token the registry accepts', async () => {
    const first = await tokenGet(
      { service: SERVICE, scope: 'repository:hello-world:pull', offline_token: 'true', client_id: 'berth-e2e' },
      basicAuth(users.admin.username, users.admin.password),
    );
    expect(first.status).toBe(200);
    const { refresh_token: refreshToken } = (await first.json()) as { refresh_token?: string };
    expect(refreshToken).toMatch(/^berth_rt_[A-Za-z0-9]+$/);

    // Stored in Redis under our prefix, and only as a hash.
    const redis = new Redis(await redisUrl());
    try {
      const keys = await redis.keys(`${keyPrefix}*`);
      expect(keys.some((k) => k.startsWith(`${keyPrefix}rt:`))).toBe(true);
      expect(keys.some((k) => k.includes(refreshToken!))).toBe(false);
    } finally {
      redis.disconnect();
    }

    const res = await tokenPost({ grant_type: 'refresh_token', client_id: 'x', service: SERVICE, scope: 'repository:hello-world:pull', refresh_token: refreshToken! });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string; token_type: string; scope: string };
    expect(body.token_type).toBe('Bearer');
    expect(body.scope).toBe('repository:hello-world:pull');
    const manifest = await getManifest('hello-world', 'latest', body.access_token);
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get('docker-content-digest')).toBe(seed.manifestDigest);

    const forged = await tokenPost({ grant_type: 'refresh_token', client_id: 'x', service: SERVICE, scope: 'repository:hello-world:pull', refresh_token: `${refreshToken!.slice(0, -4)}AAAA` });
    expect(forged.status).toBe(401);
    expect(((await forged.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('UNAUTHORIZED');
  });

  it('POST grant_type=password as containerd sends it yields a token the registry accepts', async () => {
    const res = await tokenPost({
      grant_type: 'password',
      username: users.admin.username,
      password: users.admin.password,
      client_id: 'containerd-client',
      service: SERVICE,
      scope: 'repository:private/base:pull',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as { access_token: string; token_type: string; scope: string; expires_in: number; refresh_token?: string };
    expect(body.token_type).toBe('Bearer');
    expect(body.scope).toBe('repository:private/base:pull');
    expect(body.expires_in).toBe(300);
    expect(body.refresh_token).toBeUndefined();
    const manifest = await getManifest('private/base', 'latest', body.access_token);
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get('docker-content-digest')).toBe(seed.manifestDigest);

    const wrong = await tokenPost({ grant_type: 'password', username: 'admin', password: 'nope', client_id: 'containerd-client', service: SERVICE, scope: 'repository:private/base:pull' });
    expect(wrong.status).toBe(401);
  });

  it('the registry challenge names Berth as realm and its service', async () => {
    const res = await fetch(`${registry.url}/v2/private/base/manifests/latest`);
    expect(res.status).toBe(401);
    const c = parseBearerChallenge(res.headers.get('www-authenticate'));
    expect(c).toMatchObject({ realm: realm(), service: SERVICE, scope: 'repository:private/base:pull' });
  });
});
