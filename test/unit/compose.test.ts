import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText, type Config } from '../../src/app/load-config.js';
import type { KeycloakConnectorConfig } from '../../src/config/connectors-oidc.js';
import { mapIdentity } from '../../src/connectors/oidc/identity-mapping.js';
import { accountKey, labelsOf } from '../../src/identity/accounts.js';
import type { Identity } from '../../src/model/identity.js';
import { createLogger } from '../../src/log.js';
import { parseScope } from '../../src/policy/scope.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { cleanPrefix, freePort, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';
import { basicAuth, decodeJwt, parseBearerChallenge, REGISTRY_BIN } from '../helpers/registry.js';

// The compose stack is three files written by hand that must agree with each other: compose wires
// the containers, berth.yaml configures Berth, realm.json configures Keycloak. Nothing here starts a
// container; what can be checked without Docker is checked against Berth's own loader, connector
// mapping and ACL.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const COMPOSE_FILE = join(ROOT, 'docker-compose.yml');
const BERTH_YAML = join(ROOT, 'config/compose/berth.yaml');
const REALM_JSON = join(ROOT, 'config/compose/realm.json');
const ENV_EXAMPLE = join(ROOT, '.env.example');

interface Service {
  image?: string;
  build?: string | { context: string; dockerfile?: string };
  command?: string[] | string;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] | string };
  networks?: Record<string, { aliases?: string[] } | null>;
}
interface ComposeFile {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}
interface ProtocolMapper {
  name: string;
  protocolMapper: string;
  config: Record<string, string>;
}
interface RealmClient {
  clientId: string;
  secret?: string;
  publicClient?: boolean;
  standardFlowEnabled?: boolean;
  redirectUris?: string[];
  protocolMappers?: ProtocolMapper[];
}
interface RealmGroup {
  name: string;
  path: string;
  realmRoles?: string[];
}
interface RealmUser {
  username: string;
  email?: string;
  emailVerified?: boolean;
  enabled?: boolean;
  credentials?: { type: string; value: string; temporary?: boolean }[];
  realmRoles?: string[];
  groups?: string[];
}
interface Realm {
  realm: string;
  roles?: { realm?: { name: string }[] };
  groups?: RealmGroup[];
  users?: RealmUser[];
  clients?: RealmClient[];
  clientScopes?: unknown;
}

/** .env syntax as compose reads it: KEY=VALUE lines, # comments. */
function parseEnvFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const eq = t.indexOf('=');
    if (eq <= 0) throw new Error(`.env.example: not KEY=VALUE: ${t}`);
    out.set(t.slice(0, eq), t.slice(eq + 1));
  }
  return out;
}

/** Compose's ${VAR}, ${VAR:?message} and ${VAR:-default}; throws on a variable .env.example lacks. */
function composeValue(value: string, env: Map<string, string>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([?-])([^}]*))?\}/g, (_all, name: string, op: string | undefined, arg: string | undefined) => {
    const v = env.get(name);
    if (v !== undefined && v !== '') return v;
    if (op === '-') return arg ?? '';
    throw new Error(`compose variable ${name} is not in .env.example`);
  });
}

/** Keycloak's ${VAR} placeholders in an imported realm, filled from the container's environment. */
function realmValue(value: string, containerEnv: Record<string, string>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_all, name: string) => {
    const v = containerEnv[name];
    if (v === undefined) throw new Error(`realm.json uses \${${name}} but the keycloak service does not set ${name}`);
    return v;
  });
}

function healthTest(s: Service): string {
  const t = s.healthcheck?.test;
  return Array.isArray(t) ? t.join(' ') : (t ?? '');
}

/** `source:target[:mode]` of one volume entry. */
function mount(entry: string): { source: string; target: string; readOnly: boolean } {
  const [source, target, mode] = entry.split(':');
  return { source: source!, target: target!, readOnly: mode === 'ro' };
}

let env: Map<string, string>;
let compose: ComposeFile;
let realm: Realm;
let config: Config;
let berthText: string;
let keycloakEnv: Record<string, string>;
let connector: KeycloakConnectorConfig;

beforeAll(async () => {
  env = parseEnvFile(readFileSync(ENV_EXAMPLE, 'utf8'));
  compose = yaml.load(readFileSync(COMPOSE_FILE, 'utf8')) as ComposeFile;
  realm = JSON.parse(readFileSync(REALM_JSON, 'utf8')) as Realm;
  berthText = readFileSync(BERTH_YAML, 'utf8');
  const berthEnv = Object.fromEntries(Object.entries(compose.services.berth?.environment ?? {}).map(([k, v]) => [k, composeValue(String(v), env)]));
  // loadConfigText reads ${env:...} from process.env: give it exactly what the container gets.
  const saved = new Map(Object.keys(berthEnv).map((k) => [k, process.env[k]]));
  Object.assign(process.env, berthEnv);
  try {
    config = await loadConfigText(berthText, join(ROOT, 'config/compose'));
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  keycloakEnv = Object.fromEntries(Object.entries(compose.services.keycloak?.environment ?? {}).map(([k, v]) => [k, composeValue(String(v), env)]));
  const c = config.raw.connectors.find((x) => x.type === 'keycloak');
  if (!c || c.type !== 'keycloak') throw new Error('config/compose/berth.yaml has no keycloak connector');
  connector = c;
});

describe('docker-compose.yml', () => {
  it('has the four services built or pulled as intended', () => {
    const s = compose.services;
    expect(Object.keys(s).sort()).toEqual(['berth', 'keycloak', 'redis', 'registry']);
    const build = s.berth!.build;
    const context = typeof build === 'string' ? build : build?.context;
    expect(context).toBe('.');
    const dockerfile = readFileSync(join(ROOT, typeof build === 'object' && build.dockerfile ? build.dockerfile : 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM node:20-slim/m);
    expect(dockerfile).toMatch(/npm ci/);
    expect(dockerfile).toMatch(/npm run build/);
    expect(dockerfile).toContain('CMD ["node", "dist/cli/main.js", "serve", "--config", "/config/berth.yaml"]');
    expect(s.registry!.image).toBe('registry:2');
    expect(s.redis!.image).toBe('redis:7');
    expect(s.keycloak!.image).toMatch(/^quay\.io\/keycloak\/keycloak:\d+/);
  });

  it('mounts berth.yaml where the image looks for it and realm.json into Keycloak’s import folder', () => {
    const berthMounts = (compose.services.berth!.volumes ?? []).map(mount);
    expect(berthMounts).toContainEqual({ source: './config/compose/berth.yaml', target: '/config/berth.yaml', readOnly: true });
    const kc = compose.services.keycloak!;
    const realmMount = (kc.volumes ?? []).map(mount).find((m) => m.source === './config/compose/realm.json');
    expect(realmMount?.target).toMatch(/^\/opt\/keycloak\/data\/import\/[^/]+\.json$/);
    const cmd = Array.isArray(kc.command) ? kc.command : String(kc.command).split(/\s+/);
    expect(cmd).toEqual(expect.arrayContaining(['start-dev', '--import-realm']));
  });

  it('runs Redis with an append-only file on a named volume, password from the environment', () => {
    const r = compose.services.redis!;
    const cmd = Array.isArray(r.command) ? r.command.join(' ') : String(r.command);
    expect(cmd).toMatch(/--appendonly yes/);
    expect(cmd).toMatch(/--requirepass "\$\$REDIS_PASSWORD"/);
    const data = (r.volumes ?? []).map(mount).find((m) => m.target === '/data');
    expect(data, 'redis mounts /data').toBeDefined();
    expect(Object.keys(compose.volumes ?? {})).toContain(data!.source);
    expect(config.raw.store.type).toBe('redis');
    expect(config.raw.store.redis?.url).toBe('redis://redis:6379');
    expect(config.raw.store.redis?.password).toBe(env.get('REDIS_PASSWORD'));
  });

  it('gives every service a healthcheck and starts each after what it needs is healthy', () => {
    for (const [name, s] of Object.entries(compose.services)) expect(healthTest(s), `${name} healthcheck`).not.toBe('');
    expect(compose.services.berth!.depends_on).toEqual({ redis: { condition: 'service_healthy' }, keycloak: { condition: 'service_healthy' } });
    expect(compose.services.registry!.depends_on).toEqual({ berth: { condition: 'service_healthy' } });
    expect(healthTest(compose.services.berth!)).toContain(`:${config.server.port}/readyz`);
  });

  it('takes every secret from .env.example, none written into compose or the configs', () => {
    const composeText = readFileSync(COMPOSE_FILE, 'utf8');
    const realmText = readFileSync(REALM_JSON, 'utf8');
    for (const [name, value] of env) {
      // The admin user name is not a secret (and "admin" occurs in role names).
      if (name === 'KEYCLOAK_ADMIN_USER') continue;
      for (const [file, text] of [['docker-compose.yml', composeText], ['berth.yaml', berthText], ['realm.json', realmText]] as const) {
        expect(text.includes(value), `${file} contains the value of ${name}`).toBe(false);
      }
      expect(value, `${name} is marked as a demo value`).toMatch(/demo/i);
      expect(composeText).toContain(`\${${name}:?`);
    }
    // Every ${env:X} in berth.yaml reaches the container.
    for (const m of berthText.matchAll(/\$\{env:([^}]+)\}/g)) expect(Object.keys(compose.services.berth!.environment ?? {})).toContain(m[1]);
  });

  it('points the registry at Berth: realm, service, issuer and the generated certificate', () => {
    const reg = compose.services.registry!;
    const e = reg.environment ?? {};
    expect(e.REGISTRY_AUTH).toBe('token');
    expect(e.REGISTRY_AUTH_TOKEN_ISSUER).toBe(config.token.issuer);
    expect(config.token.services && [...config.token.services]).toContain(e.REGISTRY_AUTH_TOKEN_SERVICE);
    expect(e.REGISTRY_AUTH_TOKEN_REALM).toBe(`${config.server.publicURL}${config.token.path}`);
    // The bundle is cert.pem in a named volume that Berth mounts at its generatedKeyDir.
    const bundle = e.REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE!;
    expect(posix.basename(bundle)).toBe('cert.pem');
    const regMount = (reg.volumes ?? []).map(mount).find((m) => m.target === posix.dirname(bundle));
    expect(regMount, 'registry mounts the folder holding the bundle').toBeDefined();
    expect(regMount!.readOnly).toBe(true);
    expect(Object.keys(compose.volumes ?? {})).toContain(regMount!.source);
    const berthMount = (compose.services.berth!.volumes ?? []).map(mount).find((m) => m.source === regMount!.source);
    expect(berthMount?.target).toBe(config.token.generatedKeyDir);
    expect(config.token.signingKey).toBeNull();
    expect(config.token.generatedKeyAlg).not.toBe('EdDSA'); // registry 2.x cannot verify EdDSA
  });

  it('publishes Berth on the port of its publicURL and listens on all container interfaces', () => {
    const url = new URL(config.server.publicURL!);
    expect(compose.services.berth!.ports).toContain(`127.0.0.1:${url.port}:${config.server.port}`);
    expect(config.server.host).toBeUndefined();
    expect(compose.services.registry!.ports).toContain(`127.0.0.1:${config.raw.web.registryHost.split(':')[1]}:5000`);
  });
});

describe('config/compose/berth.yaml ↔ realm.json', () => {
  it('reaches Keycloak under one name from the browser and from the berth container', () => {
    const issuer = new URL(connector.issuer);
    expect(issuer.pathname).toBe(`/realms/${realm.realm}`);
    expect(issuer.hostname.endsWith('.localhost')).toBe(true);
    const kc = compose.services.keycloak!;
    expect(kc.networks?.default?.aliases).toContain(issuer.hostname);
    expect(kc.ports).toContain(`127.0.0.1:${issuer.port}:8080`);
    expect(keycloakEnv.KC_HOSTNAME).toBe(issuer.origin);
  });

  it('has a confidential client whose id, secret and redirect URI are Berth’s', () => {
    const client = realm.clients?.find((c) => c.clientId === connector.clientID);
    expect(client, `client ${connector.clientID} in realm.json`).toBeDefined();
    expect(client!.publicClient).toBe(false);
    expect(client!.standardFlowEnabled).toBe(true);
    expect(realmValue(client!.secret ?? '', keycloakEnv)).toBe(connector.clientSecret);
    expect(connector.redirectURL).toBe(`${config.server.publicURL}/callback/${connector.id}`);
    expect(client!.redirectUris).toContain(connector.redirectURL);
  });

  it('sends groups as full paths in the ID token and userinfo, and realm roles', () => {
    const mappers = realm.clients?.find((c) => c.clientId === connector.clientID)?.protocolMappers ?? [];
    const groups = mappers.find((m) => m.protocolMapper === 'oidc-group-membership-mapper');
    expect(groups?.config).toMatchObject({ 'full.path': 'true', 'claim.name': connector.groupsClaim, 'id.token.claim': 'true', 'userinfo.token.claim': 'true' });
    expect(connector.stripGroupSlash).toBe(true);
    const roles = mappers.find((m) => m.protocolMapper === 'oidc-usermodel-realm-role-mapper');
    expect(roles?.config).toMatchObject({ 'claim.name': 'realm_access.roles', multivalued: 'true', 'id.token.claim': 'true' });
    // A realm that lists clientScopes replaces Keycloak's built-in ones (profile, email, offline_access).
    expect(realm.clientScopes).toBeUndefined();
  });

  it('lets Berth ask for offline access, and the demo users have it', () => {
    expect(connector.scopes).toContain('offline_access');
    expect(realm.roles?.realm?.map((r) => r.name)).toContain('offline_access');
    for (const u of realm.users ?? []) expect(u.realmRoles, u.username).toContain('offline_access');
  });

  it('gives every demo user a password from the Keycloak container environment and existing groups', () => {
    const users = realm.users ?? [];
    expect(users.length).toBeGreaterThanOrEqual(3);
    const paths = new Set((realm.groups ?? []).map((g) => g.path));
    for (const u of users) {
      expect(u.enabled, u.username).toBe(true);
      expect(u.emailVerified, u.username).toBe(true);
      const pw = u.credentials?.find((c) => c.type === 'password');
      expect(pw?.temporary, u.username).toBe(false);
      expect(pw?.value, u.username).toMatch(/^\$\{[A-Z0-9_]+\}$/);
      expect(realmValue(pw!.value, keycloakEnv)).toBe(env.get(pw!.value.slice(2, -1)));
      for (const g of u.groups ?? []) expect(paths.has(g), `${u.username}: group ${g}`).toBe(true);
    }
  });
});

/**
 * The identity Berth's keycloak connector makes of a demo user's ID token, with the claims built the
 * way realm.json's mappers build them: group full paths, and realm roles including the groups' roles.
 */
function identityOf(u: RealmUser): Identity {
  const roles = new Set(u.realmRoles ?? []);
  for (const path of u.groups ?? []) for (const r of (realm.groups ?? []).find((g) => g.path === path)?.realmRoles ?? []) roles.add(r);
  const claims = { sub: `id-${u.username}`, preferred_username: u.username, email: u.email, email_verified: u.emailVerified, groups: u.groups ?? [], realm_access: { roles: [...roles] } };
  const mapped = mapIdentity(connector, claims, claims);
  return { connector: connector.id, subject: claims.sub, username: mapped.username, groups: mapped.groups, claims: mapped.claims, ...(mapped.email ? { email: mapped.email } : {}) };
}

describe('the demo users against the ACL', () => {
  function granted(u: RealmUser, scope: string): string[] {
    const identity = identityOf(u);
    return config.acl.decideOne({ account: identity.username, labels: labelsOf(identity), service: 'registry', ip: null }, parseScope(scope)).granted;
  }
  const teamsOf = (u: RealmUser) => (u.groups ?? []).map((g) => g.replace(/^\//, '')).filter((g) => g !== 'platform');

  it('has a platform user who may do everything anywhere', () => {
    const platform = (realm.users ?? []).filter((u) => u.groups?.includes('/platform'));
    expect(platform.length).toBeGreaterThan(0);
    for (const u of platform) expect(granted(u, 'repository:anything/at/all:pull,push,delete')).toEqual(['pull', 'push', 'delete']);
  });

  it('lets team members push to their own namespace only, and pull everywhere', () => {
    const members = (realm.users ?? []).filter((u) => teamsOf(u).length > 0 && !u.groups?.includes('/platform'));
    const teams = new Set(members.flatMap(teamsOf));
    expect(teams.size).toBeGreaterThanOrEqual(2);
    for (const u of members) {
      for (const team of teams) {
        const expected = teamsOf(u).includes(team) ? ['pull', 'push'] : ['pull'];
        expect(granted(u, `repository:${team}/app:pull,push,delete`), `${u.username} on ${team}/app`).toEqual(expected);
      }
    }
  });

  it('does not turn Keycloak’s built-in roles into namespaces', () => {
    const member = (realm.users ?? []).find((u) => teamsOf(u).length > 0 && !u.groups?.includes('/platform'))!;
    expect(granted(member, 'repository:offline_access/app:pull,push')).toEqual([]);
    expect(granted(member, `repository:default-roles-${realm.realm}/app:pull,push`)).toEqual([]);
  });
});

describe('docker-compose config', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'berth-compose-'));
  });
  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  });

  function dockerCompose(args: string[]) {
    const bin = ['/usr/bin/docker-compose', '/usr/local/bin/docker-compose'].find((p) => existsSync(p));
    if (!bin) throw new Error('docker-compose is not installed: apt-get install docker-compose (CI installs it in .ci/run)');
    // A clean environment: variables exported in the developer's shell must not stand in for .env.
    return spawnSync(bin, args, { cwd: ROOT, env: { PATH: '/usr/bin:/bin', HOME: work }, encoding: 'utf8', timeout: 60_000 });
  }

  it('accepts docker-compose.yml with the values from .env.example', () => {
    const r = dockerCompose(['--env-file', ENV_EXAMPLE, '-f', COMPOSE_FILE, 'config', '-q']);
    expect(r.status, r.stderr).toBe(0);
    // And resolves the registry settings to what the checks above compared against berth.yaml.
    const full = dockerCompose(['--env-file', ENV_EXAMPLE, '-f', COMPOSE_FILE, 'config']);
    expect(full.status, full.stderr).toBe(0);
    const resolved = yaml.load(full.stdout) as ComposeFile;
    expect(resolved.services.registry?.environment?.REGISTRY_AUTH_TOKEN_ISSUER).toBe(config.token.issuer);
    expect(resolved.services.keycloak?.environment?.BERTH_OIDC_CLIENT_SECRET).toBe(connector.clientSecret);
  }, 90_000);

  it('refuses to start without the secrets, naming where they go', () => {
    const empty = join(work, 'empty.env');
    writeFileSync(empty, '');
    const r = dockerCompose(['--env-file', empty, '-f', COMPOSE_FILE, 'config', '-q']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('cp .env.example .env');
  }, 90_000);
});

describe('the compose wiring with the real registry binary and Berth', () => {
  // Berth runs from berth.yaml with only what a test machine must change: its Redis (the local one,
  // own key prefix), its port and the key folder. The registry runs with the compose environment,
  // its certificate path pointing where the shared volume would put Berth's cert.pem.
  let dir: string;
  let prefix: string;
  let berth: RunningServer;
  let registry: ChildProcess | undefined;
  let registryUrl: string;
  let registryLog = '';

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-compose-e2e-'));
    prefix = uniqueKeyPrefix('compose');
    const doc = yaml.load(berthText, { schema: yaml.CORE_SCHEMA }) as Record<string, Record<string, unknown>>;
    doc.server!.addr = `127.0.0.1:${await freePort()}`;
    doc.token!.generatedKeyDir = join(dir, 'keys');
    doc.store!.redis = { url: await redisUrl(), keyPrefix: prefix };
    const saved = process.env.BERTH_ENCRYPTION_KEY;
    const saved2 = process.env.BERTH_OIDC_CLIENT_SECRET;
    process.env.BERTH_ENCRYPTION_KEY = env.get('BERTH_ENCRYPTION_KEY');
    process.env.BERTH_OIDC_CLIENT_SECRET = env.get('BERTH_OIDC_CLIENT_SECRET');
    let local: Config;
    try {
      local = await loadConfigText(yaml.dump(doc), dir);
    } finally {
      if (saved === undefined) delete process.env.BERTH_ENCRYPTION_KEY;
      else process.env.BERTH_ENCRYPTION_KEY = saved;
      if (saved2 === undefined) delete process.env.BERTH_OIDC_CLIENT_SECRET;
      else process.env.BERTH_OIDC_CLIENT_SECRET = saved2;
    }
    berth = await startServer(local, { log: createLogger('silent') });

    const regEnv = Object.fromEntries(Object.entries(compose.services.registry!.environment ?? {}).map(([k, v]) => [k, composeValue(String(v), env)]));
    const port = await freePort();
    registryUrl = `http://127.0.0.1:${port}`;
    // registry:2's own built-in config file; the compose environment is layered on top of it.
    const configPath = join(dir, 'registry.yml');
    writeFileSync(
      configPath,
      yaml.dump({
        version: 0.1,
        log: { fields: { service: 'registry' } },
        storage: { cache: { blobdescriptor: 'inmemory' }, filesystem: { rootdirectory: '/var/lib/registry' } },
        http: { addr: ':5000', headers: { 'X-Content-Type-Options': ['nosniff'] } },
        health: { storagedriver: { enabled: true, interval: '10s', threshold: 3 } },
      }),
    );
    registry = spawn(REGISTRY_BIN, ['serve', configPath], {
      env: {
        PATH: '/usr/bin:/bin',
        ...regEnv,
        REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE: berth.certificatePath!,
        REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: join(dir, 'storage'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    registry.stdout!.on('data', (c: Buffer) => (registryLog += c.toString()));
    registry.stderr!.on('data', (c: Buffer) => (registryLog += c.toString()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (registry.exitCode !== null) throw new Error(`registry exited (${registry.exitCode}):\n${registryLog}`);
      const ok = await fetch(`${registryUrl}/v2/`).then(
        (r) => r.arrayBuffer().then(() => r.status === 401),
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`registry did not answer:\n${registryLog}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 60_000);

  afterAll(async () => {
    if (registry && registry.exitCode === null) {
      const r = registry;
      await new Promise<void>((resolve) => {
        const kill = setTimeout(() => r.kill('SIGKILL'), 5000);
        r.once('exit', () => {
          clearTimeout(kill);
          resolve();
        });
        r.kill('SIGTERM');
      });
    }
    await berth?.close();
    if (prefix) await cleanPrefix(prefix);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the registry takes the compose settings and sends clients to Berth', async () => {
    const res = await fetch(`${registryUrl}/v2/team-a/app/tags/list`);
    await res.arrayBuffer();
    expect(res.status).toBe(401);
    const challenge = parseBearerChallenge(res.headers.get('www-authenticate'));
    expect(challenge.realm).toBe(`${config.server.publicURL}${config.token.path}`);
    expect(challenge.service).toBe([...config.token.services!][0]);
    expect(challenge.scope).toBe('repository:team-a/app:pull');
  });

  it('accepts a token Berth issues to a demo user’s PAT, and refuses one for another repository', async () => {
    const alice = (realm.users ?? []).find((u) => u.groups?.includes('/team-a') && !u.groups.includes('/platform'));
    expect(alice).toBeDefined();
    const identity = identityOf(alice!);
    await berth.accounts.recordLogin(identity);
    const { secret } = await berth.pats.create({ owner: accountKey(identity), username: identity.username, name: 'compose test' });
    const tokenFor = async (scope: string) => {
      const r = await fetch(`${berth.url}${config.token.path}?service=registry&scope=${encodeURIComponent(scope)}`, { headers: { authorization: basicAuth(identity.username, secret) } });
      expect(r.status).toBe(200);
      return String(((await r.json()) as { token: string }).token);
    };
    const token = await tokenFor('repository:team-a/app:pull,push');
    expect(decodeJwt(token).payload.iss).toBe(config.token.issuer);
    const ok = await fetch(`${registryUrl}/v2/team-a/app/tags/list`, { headers: { authorization: `Bearer ${token}` } });
    const body = await ok.text();
    // Authorized: the repository simply does not exist yet.
    expect(ok.status, `${body}\n${registryLog.slice(-2000)}`).toBe(404);
    expect(body).toContain('NAME_UNKNOWN');
    const other = await fetch(`${registryUrl}/v2/team-b/app/tags/list`, { headers: { authorization: `Bearer ${token}` } });
    await other.arrayBuffer();
    expect(other.status).toBe(401);
  });
});
