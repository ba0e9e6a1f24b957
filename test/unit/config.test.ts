import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash, verify } from '@node-rs/bcrypt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfigFile, loadConfigText, type Config } from '../../src/app/load-config.js';
import { parseScope } from '../../src/policy/scope.js';
import { generateKeyPair } from '../../src/tokens/keygen.js';

let dir: string;
let keyPath: string;
let certPath: string;
let otherCertPath: string;
let adminHash: string; // $2y$, as `htpasswd -nB` writes it

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-config-test-'));
  const a = await generateKeyPair('ES256');
  const b = await generateKeyPair('ES256');
  keyPath = join(dir, 'server.key');
  certPath = join(dir, 'server.pem');
  otherCertPath = join(dir, 'other.pem');
  writeFileSync(keyPath, a.keyPem, { mode: 0o600 });
  writeFileSync(certPath, a.certPem);
  writeFileSync(otherCertPath, b.certPem);
  // $2y$ is the same algorithm as $2b$; htpasswd and docker_auth's examples spell it $2y$.
  adminHash = (await hash('badmin', 5)).replace(/^\$2b\$/, '$2y$');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function dockerAuthConfig(): string {
  return `
server:
  addr: ":5001"

token:
  issuer: "Acme auth server"
  expiration: 900
  certificate: "${certPath}"
  key: "${keyPath}"

users:
  # htpasswd -nB admin
  "admin":
    password: "${adminHash}"
  "": {}  # anonymous access

acl:
  - match: {account: "admin"}
    actions: ["*"]
    comment: "Admin has full access to everything."
  - match: {account: "", name: "hello-world"}
    actions: ["pull"]
    comment: "Anonymous users can pull hello-world."
`;
}

/** The problems a config text is refused with (fails the test when it is accepted). */
async function problemsOf(text: string, baseDir = dir): Promise<string[]> {
  try {
    await loadConfigText(text, baseDir);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  expect.fail('config was accepted');
}

const subject = (account: string) => ({ account, labels: {}, service: 'registry', ip: null });

describe("docker_auth's own config", () => {
  let config: Config;
  beforeAll(async () => {
    config = await loadConfigText(dockerAuthConfig(), dir);
  });

  it('reads server.addr ":5001" as every interface, port 5001', () => {
    expect(config.server.port).toBe(5001);
    expect(config.server.host).toBeUndefined();
  });

  it('reads the token section and loads the key with its certificate', () => {
    expect(config.token.issuer).toBe('Acme auth server');
    expect(config.token.ttlSeconds).toBe(900);
    expect(config.token.signingKey).not.toBeNull();
    expect(config.token.signingKey!.alg).toBe('ES256');
    expect(config.token.signingKey!.x5c).toHaveLength(1);
    expect(config.token.services).toBeNull();
  });

  it('keeps the $2y$ hash of admin (and it verifies) and the anonymous user without one', async () => {
    expect(config.users.get('admin')!.hash).toBe(adminHash);
    expect(await verify('badmin', config.users.get('admin')!.hash!)).toBe(true);
    expect(config.users.has('')).toBe(true);
    expect(config.users.get('')!.hash).toBeNull();
  });

  it('builds the ACL: admin gets everything, anonymous pulls hello-world only', () => {
    expect(config.acl.decideOne(subject('admin'), parseScope('repository:x/y:pull,push')).granted).toEqual(['pull', 'push']);
    expect(config.acl.decideOne(subject(''), parseScope('repository:hello-world:pull,push')).granted).toEqual(['pull']);
    expect(config.acl.decideOne(subject(''), parseScope('repository:other:pull')).rule).toBe(-1);
  });

  it('loads the same text from a file', async () => {
    const path = join(dir, 'auth_config.yml');
    writeFileSync(path, dockerAuthConfig());
    const fromFile = await loadConfigFile(path);
    expect(fromFile.baseDir).toBe(dir);
    expect(fromFile.token.signingKey!.libtrustKid).toBe(config.token.signingKey!.libtrustKid);
  });

  it('resolves relative key paths against the config file directory', async () => {
    const text = dockerAuthConfig().replace(`"${certPath}"`, '"server.pem"').replace(`"${keyPath}"`, '"server.key"');
    const c = await loadConfigText(text, dir);
    expect(c.token.signingKey!.libtrustKid).toBe(config.token.signingKey!.libtrustKid);
  });

  it('accepts $2a$ and $2b$ hashes too', async () => {
    for (const prefix of ['$2a$', '$2b$']) {
      const c = await loadConfigText(dockerAuthConfig().replace(adminHash, adminHash.replace('$2y$', prefix)), dir);
      expect(c.users.get('admin')!.hash!.startsWith(prefix)).toBe(true);
    }
  });
});

describe('configuration errors name the YAML path', () => {
  it('an unknown match key', async () => {
    const problems = await problemsOf(`
acl:
  - match: {account: a}
    actions: ["*"]
  - match: {account: b}
    actions: ["*"]
  - match: {account: c}
    actions: ["*"]
  - match: {account: d, team: x}
    actions: ["*"]
`);
    expect(problems).toEqual(['acl[3].match.team: unknown key']);
  });

  it('an unknown top-level key and an unknown token key', async () => {
    const problems = await problemsOf(`
tokn: {}
token:
  issuer: x
  expirationn: 5
`);
    expect(problems).toContain('tokn: unknown key');
    expect(problems).toContain('token.expirationn: unknown key');
  });

  it('a rule without actions', async () => {
    const problems = await problemsOf(`
acl:
  - match: {account: admin}
    comment: forgot the actions
`);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^acl\[0\]\.actions: /);
  });

  it('an invalid action', async () => {
    expect(await problemsOf('acl: [{match: {}, actions: ["PULL"]}]')).toEqual(['acl[0].actions: invalid action "PULL"']);
  });

  it('an invalid pattern or ip in a rule', async () => {
    const problems = await problemsOf('acl: [{match: {name: "/(x/"}, actions: ["pull"]}, {match: {ip: "10.0.0.0/40"}, actions: ["pull"]}]');
    expect(problems.some((p) => p.startsWith('acl[0].match.name: invalid pattern'))).toBe(true);
    expect(problems.some((p) => p.startsWith('acl[1].match.ip: not an IP address or CIDR range'))).toBe(true);
  });

  it('a user without a password', async () => {
    const problems = await problemsOf('users: {bob: {labels: {groups: [dev]}}}');
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^users\.bob: a password \(bcrypt hash\) is required/);
  });

  it('a user with an empty password', async () => {
    expect((await problemsOf('users: {bob: {password: ""}}'))[0]).toMatch(/^users\.bob: a password/);
  });

  it('a password that is not a bcrypt hash', async () => {
    const problems = await problemsOf('users: {bob: {password: "hunter2"}}');
    expect(problems).toEqual(['users.bob.password: not a bcrypt hash (make one with: berth hash-password)']);
    // The rejected value itself is not echoed: it may be a real password.
    expect(problems.join('\n')).not.toContain('hunter2');
  });

  it('a user name that is not an identifier is quoted in the path', async () => {
    expect((await problemsOf('users: {"dev ops": {password: nope}}'))[0]).toMatch(/^users\["dev ops"\]\.password: not a bcrypt hash/);
  });

  it('an unreadable key file', async () => {
    const problems = await problemsOf(`token: {certificate: "${certPath}", key: "${join(dir, 'missing.key')}"}`);
    expect(problems).toEqual([`token.key: cannot read ${join(dir, 'missing.key')}: ENOENT`]);
  });

  it('an unreadable certificate file', async () => {
    const problems = await problemsOf(`token: {certificate: "nope/cert.pem", key: "${keyPath}"}`);
    expect(problems).toEqual([`token.certificate: cannot read ${join(dir, 'nope/cert.pem')}: ENOENT`]);
  });

  it('a key file without read permission', async () => {
    if (process.getuid?.() === 0) {
      // root reads any file; a directory given as the key is unreadable for everyone.
      const problems = await problemsOf(`token: {key: "${dir}"}`);
      expect(problems).toEqual([`token.key: cannot read ${dir}: EISDIR`]);
      return;
    }
    const locked = join(dir, 'locked.key');
    writeFileSync(locked, 'x', { mode: 0o000 });
    chmodSync(locked, 0o000);
    expect(await problemsOf(`token: {key: "${locked}"}`)).toEqual([`token.key: cannot read ${locked}: EACCES`]);
  });

  it('a key file that is not a key', async () => {
    expect(await problemsOf(`token: {key: "${certPath}"}`)).toEqual(['token.key: not a PEM private key']);
  });

  it('a key that does not match the certificate', async () => {
    const problems = await problemsOf(`token: {certificate: "${otherCertPath}", key: "${keyPath}"}`);
    expect(problems).toEqual(['token.key: the certificate does not match the private key']);
  });

  it('a certificate without a key', async () => {
    expect(await problemsOf(`token: {certificate: "${certPath}"}`)).toEqual(['token.key: required when token.certificate is set']);
  });

  it('a missing ${env:NAME} variable', async () => {
    delete process.env.BERTH_TEST_SURELY_UNSET;
    expect(await problemsOf('token: {issuer: "${env:BERTH_TEST_SURELY_UNSET}"}')).toEqual(['token.issuer: environment variable BERTH_TEST_SURELY_UNSET is not set']);
  });

  it('a missing variable is reported once, without follow-on errors about the value', async () => {
    delete process.env.BERTH_TEST_SURELY_UNSET;
    const problems = await problemsOf('users: {bob: {password: "${env:BERTH_TEST_SURELY_UNSET}"}}\ntoken: {key: "${env:BERTH_TEST_SURELY_UNSET}"}');
    expect(problems.sort()).toEqual(['token.key: environment variable BERTH_TEST_SURELY_UNSET is not set', 'users.bob.password: environment variable BERTH_TEST_SURELY_UNSET is not set']);
  });

  it('an unreadable ${file:PATH}', async () => {
    const problems = await problemsOf(`users: {bob: {password: "\${file:${join(dir, 'no-such-secret')}}"}}`);
    expect(problems[0]).toBe(`users.bob.password: cannot read ${join(dir, 'no-such-secret')}: ENOENT`);
  });

  it('a YAML syntax error', async () => {
    const problems = await problemsOf('acl: [\n  - match: {');
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^YAML: /);
  });

  it('a bad server.addr and a bad duration', async () => {
    const problems = await problemsOf('server: {addr: "localhost"}\ntoken: {expiration: "15 minutes"}');
    expect(problems).toContain('server.addr: not an address: localhost (expected host:port or :port)');
    expect(problems.some((p) => p.startsWith('token.expiration: '))).toBe(true);
  });

  it('several problems in different sections are all reported together', async () => {
    const problems = await problemsOf(`
token:
  issuer: "\${env:BERTH_TEST_SURELY_UNSET}"
  key: "${join(dir, 'missing.key')}"
users:
  alice: {}
  bob: {password: plain}
acl:
  - match: {account: a}
    actions: ["*"]
  - match: {team: x}
    actions: ["*"]
  - match: {account: c}
`);
    expect(problems).toEqual(
      expect.arrayContaining([
        'token.issuer: environment variable BERTH_TEST_SURELY_UNSET is not set',
        `token.key: cannot read ${join(dir, 'missing.key')}: ENOENT`,
        expect.stringMatching(/^users\.alice: a password/),
        expect.stringMatching(/^users\.bob\.password: not a bcrypt hash/),
        'acl[1].match.team: unknown key',
        expect.stringMatching(/^acl\[2\]\.actions: /),
      ]),
    );
    expect(problems).toHaveLength(6);
  });

  it('the error message lists every problem', async () => {
    try {
      await loadConfigText('users: {alice: {}, bob: {}}', dir);
      expect.fail('accepted');
    } catch (e) {
      expect((e as Error).message).toMatch(/^2 configuration problems:/);
      expect((e as Error).message).toContain('users.alice');
      expect((e as Error).message).toContain('users.bob');
    }
  });

  it('an unreadable config file', async () => {
    await expect(loadConfigFile(join(dir, 'nope.yml'))).rejects.toThrow(/cannot read config file .*nope\.yml: ENOENT/);
  });
});

describe('interpolation and values', () => {
  it('${env:X} is replaced, ACL placeholders are left untouched', async () => {
    process.env.BERTH_TEST_ISSUER = 'issuer-from-env';
    process.env.BERTH_TEST_HASH = adminHash;
    try {
      const c = await loadConfigText(
        `
token: {issuer: "\${env:BERTH_TEST_ISSUER}"}
users:
  alice: {password: "\${env:BERTH_TEST_HASH}"}
acl:
  - match: {account: "/.+/", name: "\${account}/*", labels: {groups: "\${labels:groups}"}}
    actions: ["*"]
`,
        dir,
      );
      expect(c.token.issuer).toBe('issuer-from-env');
      expect(c.users.get('alice')!.hash).toBe(adminHash);
      expect(c.raw.acl[0]!.match.name).toBe('${account}/*');
      expect(c.raw.acl[0]!.match.labels!.groups).toBe('${labels:groups}');
      const s = { account: 'alice', labels: { groups: ['x'] }, service: 'r', ip: null };
      expect(c.acl.decideOne(s, parseScope('repository:alice/app:push')).granted).toEqual(['push']);
      expect(c.acl.decideOne(s, parseScope('repository:bob/app:push')).granted).toEqual([]);
    } finally {
      delete process.env.BERTH_TEST_ISSUER;
      delete process.env.BERTH_TEST_HASH;
    }
  });

  it('${file:PATH} reads a secret file (relative to the config) without its final newline', async () => {
    writeFileSync(join(dir, 'admin.hash'), `${adminHash}\n`);
    const c = await loadConfigText('users: {admin: {password: "${file:admin.hash}"}}', dir);
    expect(c.users.get('admin')!.hash).toBe(adminHash);
  });

  it('passwordFile reads a hash from a file', async () => {
    writeFileSync(join(dir, 'pw'), `${adminHash}\n`);
    const c = await loadConfigText('users: {admin: {passwordFile: pw}}', dir);
    expect(c.users.get('admin')!.hash).toBe(adminHash);
  });

  it('durations: seconds, 15m, 12h, 30d', async () => {
    const cases: [string, number][] = [
      ['900', 900],
      ['"900"', 900],
      ['"15m"', 900],
      ['"12h"', 43_200],
      ['"30d"', 2_592_000],
      ['"45s"', 45],
    ];
    for (const [text, seconds] of cases) {
      const c = await loadConfigText(`token: {expiration: ${text}, refreshTTL: ${text}}`, dir);
      expect(c.token.ttlSeconds).toBe(seconds);
      expect(c.token.refreshTTLSeconds).toBe(seconds);
    }
  });

  it('defaults: empty config', async () => {
    const c = await loadConfigText('', dir);
    expect(c.server.port).toBe(5001);
    expect(c.token.ttlSeconds).toBe(900);
    expect(c.token.path).toBe('/auth');
    expect(c.token.signingKey).toBeNull();
    expect(c.users.size).toBe(0);
    expect(c.acl.rules).toHaveLength(0);
  });

  it('label values become lists and services a set', async () => {
    const c = await loadConfigText(`users: {bob: {password: "${adminHash}", labels: {groups: dev, tier: [a, b]}}}\ntoken: {services: [registry, other]}`, dir);
    expect(c.users.get('bob')!.labels).toEqual({ groups: ['dev'], tier: ['a', 'b'] });
    expect([...c.token.services!]).toEqual(['registry', 'other']);
  });

  it('an explicit host and an IPv6 host in server.addr', async () => {
    expect((await loadConfigText('server: {addr: "127.0.0.1:8080"}', dir)).server).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect((await loadConfigText('server: {addr: "[::1]:8080"}', dir)).server).toMatchObject({ host: '::1', port: 8080 });
  });
});
