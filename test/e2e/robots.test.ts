import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { hash } from '@node-rs/bcrypt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { mintSecret } from '../../src/tokens/secret-format.js';
import { sha256Hex } from '../../src/util/secret.js';
import { buildOciImage, type OciImage } from '../helpers/oci-image.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { copy, describeResult } from '../helpers/skopeo.js';
import { basic, WebClient } from '../helpers/web-client.js';

const run = promisify(execFile);
const CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;

let dir: string;
let berth: RunningServer;
let registry: RunningRegistry;
let image: OciImage;
let adminPat: string;
let devPat: string;
const declaredSecret = mintSecret('berth_rbt_');

const token = (user: string, pw: string, scope = 'repository:apps/web:pull') => fetch(`${berth.url}/auth?service=registry&scope=${encodeURIComponent(scope)}`, { headers: { authorization: basic(user, pw) } });
const api = (path: string, pat: string, method = 'GET', body?: unknown) =>
  fetch(`${berth.url}/api/v1/robots${path}`, { method, headers: { authorization: `Bearer ${pat}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
const push = (user: string, secret: string, repo: string) => copy(`oci:${image.dir}`, `docker://${registry.host}/${repo}:1`, { username: user, password: secret });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-robots-'));
  const pw = await hash('pw', 4);
  const config = await loadConfigText(
    `
token: { issuer: robots, services: [registry], generatedKeyDir: keys }
admin: { groups: [platform] }
users:
  root: { password: "${pw}", labels: { groups: [platform] } }
  dev: { password: "${pw}", labels: { groups: [dev] } }
robots:
  - { name: "robot:declared", repositories: ["apps/**"], actions: [pull], secretSHA256: "${sha256Hex(declaredSecret)}" }
acl:
  - { match: { account: "robot:*" }, actions: [push, pull], comment: robots are capped by their own restriction }
  - { match: { account: root }, actions: ["*"] }
`,
    dir,
  );
  berth = await startServer(config, { port: 0, host: '127.0.0.1', log: createLogger('silent') });
  registry = await startRegistry({ realm: `${berth.url}/auth`, service: 'registry', issuer: 'robots', rootCertBundlePath: berth.certificatePath! });
  image = buildOciImage();
  const root = new WebClient(berth.url);
  await root.signInLocal('root', 'pw');
  adminPat = await root.createPat('admin');
  const dev = new WebClient(berth.url);
  await dev.signInLocal('dev', 'pw');
  devPat = await dev.createPat('dev');
}, 60_000);

afterAll(async () => {
  await registry?.stop();
  await berth?.close();
  rmSync(image.dir, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

describe('robot accounts', () => {
  it('are created by admins only, push within their restriction, and nothing outside it', async () => {
    const refused = await api('', devPat, 'POST', { name: 'deploy', repositories: ['apps/web'], actions: ['pull', 'push'] });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { errors: { message: string }[] }).errors[0]!.message).toContain('administrators');

    const res = await api('', adminPat, 'POST', { name: 'deploy', description: 'deploys web', repositories: ['apps/web'], actions: ['pull', 'push'] });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { name: string; secret: string };
    expect(created.name).toBe('robot:deploy');
    expect(created.secret).toMatch(/^berth_rbt_/);

    const ok = await push('robot:deploy', created.secret, 'apps/web');
    expect(ok.code, describeResult(ok)).toBe(0);
    const outside = await push('robot:deploy', created.secret, 'apps/other');
    expect(outside.code).not.toBe(0);

    const list = (await (await api('', adminPat)).json()) as { robots: { name: string; lastUsedAt: string | null }[] };
    expect(list.robots.find((r) => r.name === 'robot:deploy')!.lastUsedAt).not.toBeNull();
  });

  it('rotation kills the old secret; disable refuses; enable restores', async () => {
    const { secret: first } = (await (await api('', adminPat, 'POST', { name: 'rot', repositories: ['apps/web'], actions: ['pull'] })).json()) as { secret: string };
    expect((await token('robot:rot', first)).status).toBe(200);
    const rotated = (await (await api('/robot:rot/rotate', adminPat, 'POST')).json()) as { secret: string };
    const old = await token('robot:rot', first);
    expect(old.status).toBe(401);
    expect((await token('robot:rot', rotated.secret)).status).toBe(200);

    expect((await api('/robot:rot/disable', adminPat, 'POST')).status).toBe(200);
    const disabled = await token('robot:rot', rotated.secret);
    expect(disabled.status).toBe(401);
    expect(JSON.stringify(await disabled.json())).toContain('disabled');
    expect((await api('/robot:rot/enable', adminPat, 'POST')).status).toBe(200);
    expect((await token('robot:rot', rotated.secret)).status).toBe(200);

    expect((await api('/robot:rot', adminPat, 'DELETE')).status).toBe(204);
    expect((await token('robot:rot', rotated.secret)).status).toBe(401);
  });

  it('honours expiry', async () => {
    const { secret } = await berth.robots.create({ name: 'brief', owner: 'test', restriction: { repositories: ['apps/web'], actions: ['pull'] }, expiresAt: Date.now() + 1000 });
    expect((await token('robot:brief', secret)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    const late = await token('robot:brief', secret);
    expect(late.status).toBe(401);
    expect(JSON.stringify(await late.json())).toContain('expired');
  });

  it('declared in config: usable, capped, and not changeable through the API', async () => {
    const r = await token('robot:declared', declaredSecret, 'repository:apps/x:pull,push');
    expect(r.status).toBe(200);
    const access = JSON.parse(Buffer.from(((await r.json()) as { token: string }).token.split('.')[1]!, 'base64url').toString()).access;
    expect(access).toEqual([{ type: 'repository', name: 'apps/x', actions: ['pull'] }]);
    expect((await api('/robot:declared/rotate', adminPat, 'POST')).status).toBe(409);
    expect((await token('robot:other', declaredSecret)).status).toBe(401);
  });

  it('are managed from the admin page, with CSRF-checked forms', async () => {
    const root = new WebClient(berth.url);
    await root.signInLocal('root', 'pw');
    const page = await root.get('/robots');
    expect(page.res.status).toBe(200);
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.html)![1]!;
    const created = await root.postForm('/robots', { csrf, name: 'from-page', repositories: 'apps/page', actions: 'pull' });
    expect(created.res.status).toBe(201);
    const secret = /<pre id="robot-secret">([^<]+)<\/pre>/.exec(created.html)![1]!;
    expect((await token('robot:from-page', secret, 'repository:apps/page:pull')).status).toBe(200);
    expect((await root.postForm('/robots/robot:from-page/disable', { name: 'x' })).res.status).toBe(403);
    expect((await root.postForm('/robots/robot:from-page/disable', { csrf })).res.status).toBe(200);
    expect((await token('robot:from-page', secret, 'repository:apps/page:pull')).status).toBe(401);

    const dev = new WebClient(berth.url);
    await dev.signInLocal('dev', 'pw');
    expect((await dev.get('/robots')).res.status).toBe(403);
  });

  it('are managed from the CLI', async () => {
    const env = { ...process.env, BERTH_URL: berth.url, BERTH_TOKEN: adminPat };
    const created = await run(process.execPath, [CLI, 'robot', 'create', 'cli-bot', '--repo', 'apps/cli', '--action', 'pull'], { env });
    expect(created.stdout).toContain('created robot:cli-bot');
    const secret = /secret \(shown once\): (\S+)/.exec(created.stdout)![1]!;
    expect((await token('robot:cli-bot', secret, 'repository:apps/cli:pull')).status).toBe(200);
    const listed = await run(process.execPath, [CLI, 'robot', 'list'], { env });
    expect(listed.stdout).toMatch(/robot:cli-bot\tpull on apps\/cli\tenabled/);
    await run(process.execPath, [CLI, 'robot', 'disable', 'cli-bot'], { env });
    expect((await token('robot:cli-bot', secret, 'repository:apps/cli:pull')).status).toBe(401);
    const denied = await run(process.execPath, [CLI, 'robot', 'list'], { env: { ...env, BERTH_TOKEN: devPat } }).catch((e: { code: number; stderr: string }) => e);
    expect((denied as { code: number }).code).toBe(2);
    expect((denied as { stderr: string }).stderr).toContain('403');
  });
});
