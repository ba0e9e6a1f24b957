import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import yaml from 'js-yaml';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { mintSecret } from '../../src/tokens/secret-format.js';
import { sha256Hex } from '../../src/util/secret.js';
import { ensureBuilt } from '../helpers/build.js';
import { startClusterIssuer, type ClusterIssuer } from '../helpers/cluster-issuer.js';
import { buildOciImage, type OciImage } from '../helpers/oci-image.js';
import { cleanPrefix, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';
import { basicAuth, decodeJwt, startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { copy, describeResult, inspect, type Creds } from '../helpers/skopeo.js';
import { WebClient } from '../helpers/web-client.js';
import { runBin } from '../helpers/run-bin.js';

const SERVICE = 'registry-k8s';
const ISSUER = 'berth-k8s-test';
const AUDIENCE = 'https://berth.example.test';
const V1 = 'credentialprovider.kubelet.k8s.io/v1';
const nodeSecret = mintSecret('berth_rbt_');

let workDir: string;
let keyPrefix: string;
let clusterA: ClusterIssuer; // issuer reachable: keys through discovery
let clusterB: ClusterIssuer; // issuer not reachable: keys from a JWKS file
let stranger: ClusterIssuer; // a cluster Berth knows nothing about
let jwksPath: string;
let berth: RunningServer;
let registry: RunningRegistry;
let img: OciImage;
let plugin: string;
let cli: string;
let adminPat: string;

const ref = (repo: string) => `docker://${registry.host}/${repo}:1`;

const run = runBin;

const pluginArgs = (extra: string[] = []) => ['--registry', registry.host, '--user', 'oidc', ...extra];

function request(image: string, token?: string, apiVersion = V1): string {
  return JSON.stringify({ apiVersion, kind: 'CredentialProviderRequest', image, ...(token ? { serviceAccountToken: token, serviceAccountAnnotations: {} } : {}) });
}

interface Response {
  kind: string;
  apiVersion: string;
  cacheKeyType: string;
  cacheDuration: string;
  auth: Record<string, { username: string; password: string }>;
}

async function credentialsFor(token: string | undefined, args = pluginArgs(), image = `${registry.host}/team-a/app:1`): Promise<{ creds: Creds; response: Response }> {
  const r = await run(plugin, args, request(image, token));
  expect(r.code, r.stderr).toBe(0);
  expect(r.stderr).toBe('');
  const response = JSON.parse(r.stdout) as Response;
  const a = response.auth[registry.host]!;
  return { creds: { username: a.username, password: a.password }, response };
}

/** A clean plugin failure: non-zero exit, a message on stderr, nothing at all on stdout. */
async function pluginRefuses(stdin: string, args = pluginArgs()): Promise<string> {
  const r = await run(plugin, args, stdin);
  expect(r.code).not.toBe(0);
  expect(r.stdout).toBe('');
  expect(r.stderr).toMatch(/^berth-kubelet-credential-provider: /);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  return r.stderr;
}

async function tokenEndpoint(user: string, password: string, scope: string): Promise<{ status: number; body: { token?: string; expires_in?: number; errors?: { message: string }[] } }> {
  const res = await fetch(`${berth.url}/auth?service=${SERVICE}&scope=${encodeURIComponent(scope)}`, { headers: { authorization: basicAuth(user, password) } });
  return { status: res.status, body: (await res.json()) as never };
}

describe('Kubernetes: service-account tokens, the kubelet credential provider and pull secrets', { timeout: 120_000 }, () => {
  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'berth-k8s-'));
    keyPrefix = uniqueKeyPrefix('k8s');
    [clusterA, clusterB, stranger] = await Promise.all([startClusterIssuer(), startClusterIssuer(), startClusterIssuer()]);
    jwksPath = join(workDir, 'cluster-b-jwks.json');
    clusterB.writeJwks(jwksPath);
    plugin = ensureBuilt('kubelet-credential-provider');
    cli = ensureBuilt('cli');
    const pw = await hash('pw', 4);
    const config = yaml.dump({
      server: { addr: '127.0.0.1:0' },
      log: { level: 'silent' },
      store: { type: 'redis', redis: { url: await redisUrl(), keyPrefix } },
      secrets: { encryptionKey: randomBytes(32).toString('hex') },
      limits: { failuresPerAccount: 1000, failuresPerIP: 1000 },
      token: { issuer: ISSUER, expiration: 900, services: [SERVICE], generatedKeyDir: join(workDir, 'keys') },
      admin: { groups: ['platform'] },
      users: { root: { password: pw, labels: { groups: ['platform'] } } },
      robots: [{ name: 'robot:node-pull', repositories: ['team-a/**'], actions: ['pull'], secretSHA256: sha256Hex(nodeSecret) }],
      federation: [
        {
          id: 'cluster-a',
          issuer: clusterA.issuer,
          audience: AUDIENCE,
          claims: { 'kubernetes.io.namespace': ['team-a', 'team-b'], sub: 'system:serviceaccount:*' },
          account: 'k8s-a:${kubernetes.io.namespace}/${kubernetes.io.serviceaccount.name}',
          labels: { pod: '${kubernetes.io.pod.name}' },
          maxTokenTTL: '5m',
          allowInsecureIssuer: true,
        },
        {
          id: 'cluster-b',
          issuer: clusterB.issuer,
          audience: AUDIENCE,
          claims: { 'kubernetes.io.namespace': 'team-b' },
          account: 'k8s-b:${kubernetes.io.namespace}/${kubernetes.io.serviceaccount.name}',
          maxTokenTTL: '5m',
          allowInsecureIssuer: true,
          jwksFile: 'cluster-b-jwks.json',
        },
      ],
      acl: [
        { match: { account: 'root' }, actions: ['*'] },
        { match: { account: 'robot:*' }, actions: ['pull'], comment: 'robots are capped by their own restriction' },
        { match: { account: 'k8s-a:team-a/*', type: 'repository', name: 'team-a/**' }, actions: ['pull'] },
        { match: { account: 'k8s-a:team-b/*', type: 'repository', name: 'team-b/**' }, actions: ['pull'] },
        { match: { account: 'k8s-b:team-b/*', type: 'repository', name: 'team-b/**' }, actions: ['pull'] },
      ],
    });
    berth = await startServer(await loadConfigText(config, workDir), { port: 0 });
    registry = await startRegistry({ realm: `${berth.url}/auth`, service: SERVICE, issuer: ISSUER, rootCertBundlePath: berth.certificatePath! });
    img = buildOciImage();
    for (const repo of ['team-a/app', 'team-b/app']) {
      const push = await copy(`oci:${img.dir}`, ref(repo), { username: 'root', password: 'pw' });
      expect(push.code, describeResult(push)).toBe(0);
    }
    const root = new WebClient(berth.url);
    await root.signInLocal('root', 'pw');
    adminPat = await root.createPat('pull-secrets');
  }, 120_000);

  afterAll(async () => {
    await registry?.stop();
    await berth?.close();
    await Promise.all([clusterA?.close(), clusterB?.close(), stranger?.close()]);
    if (keyPrefix) await cleanPrefix(keyPrefix);
    if (img) rmSync(img.dir, { recursive: true, force: true });
    rmSync(workDir, { recursive: true, force: true });
  });

  beforeEach((ctx) => {
    ctx.onTestFailed(() => console.error(`--- registry log ---\n${registry?.log().slice(-5000)}`));
  });

  it('a pod in namespace team-a pulls its images with the credentials the plugin answers, and is refused team-b\'s', async () => {
    const token = await clusterA.mint({ namespace: 'team-a', serviceAccount: 'web' }, AUDIENCE, { lifetime: 600 });
    const { creds, response } = await credentialsFor(token);
    expect(response).toMatchObject({ kind: 'CredentialProviderResponse', apiVersion: V1, cacheKeyType: 'Image' });
    expect(Object.keys(response.auth)).toEqual([registry.host]);
    expect(creds).toEqual({ username: 'oidc', password: token });
    // Cached no longer than the token lives (600 s, minus the plugin's 30 s margin), nor its 10 min default.
    const seconds = Number(/^(\d+)s$/.exec(response.cacheDuration)![1]);
    expect(seconds).toBeGreaterThan(500);
    expect(seconds).toBeLessThanOrEqual(570);

    const own = await inspect(ref('team-a/app'), creds);
    expect(own.code, describeResult(own)).toBe(0);
    expect((JSON.parse(own.stdout) as { Digest: string }).Digest).toBe(img.manifestDigest);
    const other = await inspect(ref('team-b/app'), creds);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/unauthorized|denied|authentication required/i);

    // The registry token names the pod's identity, and lives no longer than the policy's 5 minutes.
    const t = await tokenEndpoint('oidc', token, 'repository:team-a/app:pull');
    expect(t.status).toBe(200);
    expect(decodeJwt(t.body.token!).payload.sub).toBe('k8s-a:team-a/web');
    expect(t.body.expires_in).toBe(300);
    expect(clusterA.requests.discovery).toBe(1);
  });

  it('namespace team-b pulls its own images and is refused team-a\'s; a v1beta1 kubelet gets a v1beta1 answer', async () => {
    const token = await clusterA.mint({ namespace: 'team-b' }, AUDIENCE);
    const r = await run(plugin, pluginArgs(), request(`${registry.host}/team-b/app:1`, token, 'credentialprovider.kubelet.k8s.io/v1beta1'));
    expect(r.code, r.stderr).toBe(0);
    const response = JSON.parse(r.stdout) as Response;
    expect(response.apiVersion).toBe('credentialprovider.kubelet.k8s.io/v1beta1');
    const a = response.auth[registry.host]!;
    const own = await inspect(ref('team-b/app'), a);
    expect(own.code, describeResult(own)).toBe(0);
    const other = await inspect(ref('team-a/app'), a);
    expect(other.code).not.toBe(0);
  });

  it('a cluster whose keys come from a JWKS file: pulls work without contacting the issuer; a rotated key works once the file is rewritten', async () => {
    const token = await clusterB.mint({ namespace: 'team-b', serviceAccount: 'api' }, AUDIENCE);
    const { creds } = await credentialsFor(token, pluginArgs(['--user', 'cluster-b']), `${registry.host}/team-b/app:1`);
    expect(creds!.username).toBe('cluster-b');
    const own = await inspect(ref('team-b/app'), creds);
    expect(own.code, describeResult(own)).toBe(0);
    expect((await inspect(ref('team-a/app'), creds)).code).not.toBe(0);
    expect(clusterB.requests).toEqual({ discovery: 0, jwks: 0 });

    await clusterB.rotate({ dropOld: true });
    const rotated = await clusterB.mint({ namespace: 'team-b', serviceAccount: 'api' }, AUDIENCE);
    const before = await tokenEndpoint('cluster-b', rotated, 'repository:team-b/app:pull');
    expect(before.status).toBe(401);
    expect(before.body.errors![0]!.message).toMatch(/no key with the ID token's kid/);
    clusterB.writeJwks(jwksPath);
    await new Promise((r) => setTimeout(r, 1500)); // the file is stat()ed at most once a second
    const after = await tokenEndpoint('cluster-b', rotated, 'repository:team-b/app:pull');
    expect(after.status, JSON.stringify(after.body)).toBe(200);
    expect(decodeJwt(after.body.token!).payload.sub).toBe('k8s-b:team-b/api');
    // The old key is gone from the file: tokens it signed no longer verify.
    expect((await tokenEndpoint('cluster-b', token, 'repository:team-b/app:pull')).status).toBe(401);
    // A namespace cluster-b's policy does not admit.
    const a = await clusterB.mint({ namespace: 'team-a' }, AUDIENCE);
    const refused = await tokenEndpoint('cluster-b', a, 'repository:team-a/app:pull');
    expect(refused.status).toBe(401);
    expect(refused.body.errors![0]!.message).toContain('kubernetes.io.namespace is "team-a"');
  });

  it('wrong audience, expired, unknown cluster: the plugin refuses cleanly when told what to expect, and Berth refuses regardless', async () => {
    const wrongAud = await clusterA.mint({ namespace: 'team-a' }, 'https://kubernetes.default.svc');
    const expired = await clusterA.mint({ namespace: 'team-a' }, AUDIENCE, { iatOffset: -4000, lifetime: 3600 });
    const unknown = await stranger.mint({ namespace: 'team-a' }, AUDIENCE);
    const strict = pluginArgs(['--audience', AUDIENCE, '--issuer', clusterA.issuer, '--issuer', clusterB.issuer]);
    const img1 = `${registry.host}/team-a/app:1`;
    expect(await pluginRefuses(request(img1, wrongAud), strict)).toMatch(/not for audience/);
    expect(await pluginRefuses(request(img1, expired), strict)).toMatch(/expired/);
    expect(await pluginRefuses(request(img1, unknown), strict)).toMatch(/not configured for/);
    // An expired token is refused even by a plugin told nothing.
    expect(await pluginRefuses(request(img1, expired))).toMatch(/expired/);
    for (const t of [wrongAud, expired, unknown]) expect(await pluginRefuses(request(img1, t), strict)).not.toContain(t.split('.')[2]);

    // A lenient plugin passes the token on; Berth is what decides.
    for (const [token, why] of [
      [wrongAud, /aud is "https:\/\/kubernetes.default.svc"/],
      [unknown, /is not configured for federation/],
    ] as const) {
      const { creds } = await credentialsFor(token);
      const pull = await inspect(ref('team-a/app'), creds);
      expect(pull.code).not.toBe(0);
      expect(pull.stderr).toMatch(/unauthorized|authentication required/i);
      const t = await tokenEndpoint('oidc', token, 'repository:team-a/app:pull');
      expect(t.status).toBe(401);
      expect(t.body.errors![0]!.message).toMatch(why);
    }
    const late = await tokenEndpoint('oidc', expired, 'repository:team-a/app:pull');
    expect(late.status).toBe(401);
    expect(late.body.errors![0]!.message).toMatch(/expired/);
  });

  it('no service-account token: refused when none is configured as fallback, else the node robot secret read from a file', async () => {
    expect(await pluginRefuses(request(`${registry.host}/team-a/app:1`))).toMatch(/no serviceAccountToken.*serviceAccountTokenAudience/);
    const secretFile = join(workDir, 'node-robot');
    writeFileSync(secretFile, `${nodeSecret}\n`, { mode: 0o600 });
    const { creds, response } = await credentialsFor(undefined, pluginArgs(['--robot-user', 'robot:node-pull', '--robot-secret-file', secretFile, '--max-cache', '5m']));
    expect(response.cacheKeyType).toBe('Registry');
    expect(response.cacheDuration).toBe('300s');
    expect(creds).toEqual({ username: 'robot:node-pull', password: nodeSecret });
    const pull = await inspect(ref('team-a/app'), creds);
    expect(pull.code, describeResult(pull)).toBe(0);
    expect((await inspect(ref('team-b/app'), creds)).code).not.toBe(0);
    // With a token present the token wins: the pod's own identity, not the node's.
    const token = await clusterA.mint({ namespace: 'team-b' }, AUDIENCE);
    const withToken = await credentialsFor(token, pluginArgs(['--robot-user', 'robot:node-pull', '--robot-secret-file', secretFile]));
    expect(withToken.creds!.password).toBe(token);
    // A missing file is a clean failure that does not leak the path's contents.
    expect(await pluginRefuses(request(`${registry.host}/team-a/app:1`), pluginArgs(['--robot-user', 'robot:x', '--robot-secret-file', join(workDir, 'absent')]))).toMatch(/ENOENT/);
  });

  it('berth pull-secret prints a dockerconfigjson Secret that skopeo pulls with; the next run rotates the previous one out', async () => {
    const args = ['pull-secret', '--server', berth.url, '--robot', 'team-a-pull', '--registry', registry.host, '--namespace', 'team-a', '--create', '--repo', 'team-a/**', '--output', 'json'];
    const readSecret = async (): Promise<{ creds: Creds; doc: Record<string, unknown> }> => {
      const r = await run(cli, args, '', { BERTH_TOKEN: adminPat });
      expect(r.code, r.stderr).toBe(0);
      const doc = JSON.parse(r.stdout) as { kind: string; type: string; metadata: { name: string; namespace: string }; data: Record<string, string> };
      expect(doc).toMatchObject({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/dockerconfigjson', metadata: { name: 'berth-pull-team-a-pull', namespace: 'team-a' } });
      const config = JSON.parse(Buffer.from(doc.data['.dockerconfigjson']!, 'base64').toString('utf8')) as { auths: Record<string, { username: string; password: string; auth: string }> };
      const entry = config.auths[registry.host]!;
      expect(Buffer.from(entry.auth, 'base64').toString('utf8')).toBe(`${entry.username}:${entry.password}`);
      return { creds: { username: entry.username, password: entry.password }, doc: doc as unknown as Record<string, unknown> };
    };
    const first = await readSecret();
    expect(first.creds!.username).toBe('robot:team-a-pull');
    const pull = await inspect(ref('team-a/app'), first.creds);
    expect(pull.code, describeResult(pull)).toBe(0);
    expect((await inspect(ref('team-b/app'), first.creds)).code).not.toBe(0);

    const second = await readSecret(); // the robot exists now: rotated, not re-created
    expect(second.creds!.password).not.toBe(first.creds!.password);
    expect((await inspect(ref('team-a/app'), second.creds)).code).toBe(0);
    const old = await inspect(ref('team-a/app'), first.creds);
    expect(old.code).not.toBe(0);

    // The YAML form is what `kubectl apply -f -` reads.
    const y = await run(cli, args.filter((a) => a !== '--output' && a !== 'json'), '', { BERTH_TOKEN: adminPat });
    expect(y.code, y.stderr).toBe(0);
    expect(yaml.load(y.stdout)).toMatchObject({ kind: 'Secret', type: 'kubernetes.io/dockerconfigjson' });
    // Without a PAT: a usage error, no Secret.
    const noPat = await run(cli, args, '');
    expect(noPat.code).toBe(2);
    expect(noPat.stdout).toBe('');
  });
});
