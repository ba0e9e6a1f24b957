import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { hash, verify } from '@node-rs/bcrypt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSigningKey } from '../../src/tokens/keys.js';
import { ensureBuilt } from '../helpers/build.js';

// The CLI is tested as shipped: the compiled dist/ (`npm test` runs `tsc -p .` first).
const ROOT = resolve(import.meta.dirname, '../..');
const MAIN = join(ROOT, 'dist/cli/main.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function berth(args: string[], opts: { input?: string; cwd?: string } = {}): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.BERTH_CONFIG;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd: opts.cwd ?? ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`berth ${args.join(' ')} did not finish in 20 s; stderr: ${stderr}`));
    }, 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

let dir: string;
let aliceHash: string;

beforeAll(async () => {
  ensureBuilt('cli');
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npx tsc -p .\` first`);
  dir = mkdtempSync(join(tmpdir(), 'berth-cli-test-'));
  aliceHash = await hash('alice-pw', 4);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('berth keygen', { timeout: 90_000 }, () => {
  for (const alg of ['ES256', 'RS256', 'EdDSA'] as const) {
    it(`--alg ${alg} writes a private key (mode 0600) and a certificate that load together`, async () => {
      const out = join(dir, `keys-${alg}`);
      const r = await berth(['keygen', '--out', out, '--alg', alg]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(join(out, 'key.pem'));
      expect(r.stdout).toContain(join(out, 'cert.pem'));
      expect(statSync(join(out, 'key.pem')).mode & 0o777).toBe(0o600);
      const key = await loadSigningKey(readFileSync(join(out, 'key.pem'), 'utf8'), readFileSync(join(out, 'cert.pem'), 'utf8'));
      expect(key.alg).toBe(alg);
      expect(key.x5c).toHaveLength(1);
      if (alg === 'EdDSA') expect(r.stderr).toMatch(/registry 2\.x cannot verify EdDSA/);
    });
  }

  it('overwriting (--force) an existing, world-readable key.pem leaves it mode 0600', async () => {
    const out = join(dir, 'keys-existing');
    mkdirSync(out);
    writeFileSync(join(out, 'key.pem'), 'old', { mode: 0o644 });
    chmodSync(join(out, 'key.pem'), 0o644);
    const r = await berth(['keygen', '--out', out, '--force']);
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(join(out, 'key.pem')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(out, 'key.pem'), 'utf8')).toContain('BEGIN PRIVATE KEY');
  });

  it('refuses to overwrite existing keys without --force (exit 1, both files untouched)', async () => {
    const out = join(dir, 'keys-kept');
    expect((await berth(['keygen', '--out', out])).code).toBe(0);
    const before = [readFileSync(join(out, 'key.pem'), 'utf8'), readFileSync(join(out, 'cert.pem'), 'utf8')];
    const again = await berth(['keygen', '--out', out]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/key\.pem and .*cert\.pem already exist; a registry that trusts the old certificate would refuse every token .* --force/);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect([readFileSync(join(out, 'key.pem'), 'utf8'), readFileSync(join(out, 'cert.pem'), 'utf8')]).toEqual(before);
    // Only the certificate left over is refused too: it is what the registry trusts.
    rmSync(join(out, 'key.pem'));
    const certOnly = await berth(['keygen', '--out', out]);
    expect(certOnly.code).toBe(1);
    expect(certOnly.stderr).toMatch(/cert\.pem already exists/);
    const forced = await berth(['keygen', '--out', out, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(readFileSync(join(out, 'cert.pem'), 'utf8')).not.toBe(before[1]);
  });

  it('--out on a file, under a file, or where nothing can be created: one line, exit 1, no stack, no spinning', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const cases: [string, RegExp][] = [
      [file, /a-file exists and is not a directory/],
      [join(file, 'keys'), /a-file exists and is not a directory/],
      // Node's recursive mkdir spins at 100 % CPU forever on this one.
      ['/proc/nope', /cannot create \/proc\/nope: ENOENT/],
      ['/proc/nope/deeper', /cannot create \/proc\/nope: ENOENT/],
      // A directory nobody may write in, even root.
      ['/sys/kernel', /cannot write keys into \/sys\/kernel: EACCES/],
    ];
    for (const [out, message] of cases) {
      const started = Date.now();
      const r = await berth(['keygen', '--out', out]);
      expect(r.code, out).toBe(1);
      expect(r.stderr, out).toMatch(message);
      expect(r.stderr.trim().split('\n'), out).toHaveLength(1);
      expect(Date.now() - started, out).toBeLessThan(15_000);
    }
    expect(readFileSync(file, 'utf8')).toBe('x');
  });

  it('defaults to ES256', async () => {
    const out = join(dir, 'keys-default');
    expect((await berth(['keygen', '--out', out])).code).toBe(0);
    expect((await loadSigningKey(readFileSync(join(out, 'key.pem'), 'utf8'))).alg).toBe('ES256');
  });

  it('refuses bad usage with exit 2', async () => {
    const noOut = await berth(['keygen']);
    expect(noOut.code).toBe(2);
    expect(noOut.stderr).toMatch(/keygen needs --out DIR/);
    const badAlg = await berth(['keygen', '--out', join(dir, 'x'), '--alg', 'HS256']);
    expect(badAlg.code).toBe(2);
    expect(badAlg.stderr).toMatch(/--alg must be ES256, RS256 or EdDSA/);
    expect(existsSync(join(dir, 'x', 'key.pem'))).toBe(false);
  });
});

describe('berth hash-password', { timeout: 90_000 }, () => {
  it('reads the password from stdin and prints a bcrypt hash that verifies', async () => {
    const r = await berth(['hash-password', '--cost', '4'], { input: 'correct horse\n' });
    expect(r.code, r.stderr).toBe(0);
    const printed = r.stdout.trim();
    expect(printed).toMatch(/^\$2[aby]\$04\$[./A-Za-z0-9]{53}$/);
    expect(await verify('correct horse', printed)).toBe(true);
    // The trailing newline from echo/stdin is not part of the password.
    expect(await verify('correct horse\n', printed)).toBe(false);
    expect(r.stdout).not.toContain('correct horse');
  });

  it('uses cost 10 by default and keeps inner spaces', async () => {
    const r = await berth(['hash-password'], { input: ' pass word ' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\$2[aby]\$10\$/);
    expect(await verify(' pass word ', r.stdout.trim())).toBe(true);
  });

  it('refuses an empty password and a bad cost with exit 2', async () => {
    const empty = await berth(['hash-password'], { input: '\n' });
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/empty password/);
    const cost = await berth(['hash-password', '--cost', '99'], { input: 'x' });
    expect(cost.code).toBe(2);
    expect(cost.stderr).toMatch(/--cost must be 4\.\.15/);
  });
});

describe('berth check-config', { timeout: 90_000 }, () => {
  it('exits 0 on a good file', async () => {
    const file = join(dir, 'good.yml');
    writeFileSync(file, `users:\n  alice: {password: "${aliceHash}"}\n  "": {}\nacl:\n  - match: {account: alice}\n    actions: ["*"]\n`);
    const r = await berth(['check-config', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${file}: ok`);
  });

  it('exits 1 and names every problem with its path', async () => {
    const file = join(dir, 'bad.yml');
    writeFileSync(
      file,
      `token:
  key: missing.key
users:
  bob: {}
  carol: {password: plaintext}
acl:
  - match: {account: a}
    actions: ["*"]
  - match: {account: b}
    actions: ["*"]
  - match: {account: c}
    actions: ["*"]
  - match: {account: d, team: x}
    actions: ["*"]
  - match: {account: e}
`,
    );
    const r = await berth(['check-config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^configuration error: 5 configuration problems:/);
    for (const expected of [`token.key: cannot read ${join(dir, 'missing.key')}: ENOENT`, 'users.bob: a password', 'users.carol.password: not a bcrypt hash', 'acl[3].match.team: unknown key', 'acl[4].actions: ']) {
      expect(r.stderr).toContain(expected);
    }
    expect(r.stderr).not.toContain('plaintext');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('exits 1 on a missing file and 2 without a file', async () => {
    const missing = await berth(['check-config', join(dir, 'nope.yml')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot read config file .*nope\.yml: ENOENT/);
    const none = await berth(['check-config']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/check-config needs a FILE/);
  });
});

describe('berth acl explain', { timeout: 90_000 }, () => {
  let config: string;
  beforeAll(() => {
    config = join(dir, 'acl.yml');
    writeFileSync(
      config,
      `users:
  alice: {password: "${aliceHash}", labels: {team: [web]}}
  "": {}
acl:
  - match: {account: admin}
    actions: ["*"]
    comment: admins do everything
  - match: {name: "secret/**"}
    actions: []
    comment: nobody touches secrets
  - match: {labels: {groups: ops}, type: registry, name: catalog}
    actions: ["*"]
    comment: ops list the catalog
  - match: {account: "/.+/", name: "\${labels:groups}/*"}
    actions: [pull, push]
    comment: groups own their namespace
  - match: {name: "\${labels:team}-mirror"}
    actions: [pull]
`,
    );
  });

  it('prints the deciding rule (index and comment) and the granted actions for each scope', async () => {
    const r = await berth(['acl', 'explain', '--config', config, '--account', 'alice', '--label', 'groups=web,ops', 'repository:web/app:pull,push,delete', 'registry:catalog:*', 'repository:secret/x:pull', 'repository:other/app:pull']);
    expect(r.code, r.stderr).toBe(0);
    const blocks = r.stdout.trim().split(/\n(?=\S)/);
    expect(blocks).toHaveLength(4);
    expect(blocks[0]).toMatch(/^repository:web\/app:pull,push,delete\n/);
    expect(blocks[0]).toMatch(/granted: pull,push\n/);
    expect(blocks[0]).toMatch(/acl\[3\].*\(groups own their namespace\)/);
    expect(blocks[1]).toMatch(/granted: \*/);
    expect(blocks[1]).toMatch(/acl\[2\].*\(ops list the catalog\)/);
    expect(blocks[2]).toMatch(/granted: \(nothing\)/);
    expect(blocks[2]).toMatch(/acl\[1\].*\(nobody touches secrets\)/);
    expect(blocks[2]).toMatch(/denies explicitly/);
    expect(blocks[3]).toMatch(/granted: \(nothing\)/);
    expect(blocks[3]).toMatch(/no rule matched/);
  });

  it("adds the user's configured labels to those given on the command line", async () => {
    const r = await berth(['acl', 'explain', '--config', config, '--account', 'alice', 'repository:web-mirror:pull']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/granted: pull/);
    expect(r.stdout).toMatch(/acl\[4\]/);
  });

  it('explains for the anonymous account ""', async () => {
    const r = await berth(['acl', 'explain', '--config', config, '--account', '', 'repository:web/app:pull']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/no rule matched/);
  });

  it('a bad scope is an error naming it (exit 1)', async () => {
    const r = await berth(['acl', 'explain', '--config', config, '--account', 'alice', 'nonsense']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/invalid scope "nonsense"/);
  });

  it('bad usage exits 2 with a message', async () => {
    const cases: [string[], RegExp][] = [
      [['acl'], /usage: berth acl explain/],
      [['acl', 'describe'], /usage: berth acl explain/],
      [['acl', 'explain', '--account', 'a', 'repository:a:pull'], /needs --config FILE/],
      [['acl', 'explain', '--config', config, 'repository:a:pull'], /needs --account/],
      [['acl', 'explain', '--config', config, '--account', 'a'], /at least one SCOPE/],
      [['acl', 'explain', '--config', config, '--account', 'a', '--label', 'novalue', 'repository:a:pull'], /--label wants key=value/],
      [['acl', 'explain', '--config', config, '--account', 'a', '--colour', 'repository:a:pull'], /Unknown option '--colour'/],
    ];
    for (const [args, message] of cases) {
      const r = await berth(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  });
});

describe('berth itself', { timeout: 90_000 }, () => {
  it('an unknown command exits 2 with the usage', async () => {
    const r = await berth(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown command frobnicate/);
    expect(r.stderr).toMatch(/usage: berth <command>/);
  });

  it('no command prints the usage and exits 2; help exits 0', async () => {
    const none = await berth([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toMatch(/usage: berth <command>/);
    const help = await berth(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/keygen --out DIR/);
  });

  it('prints the package version', async () => {
    const r = await berth(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
  });
});

describe('--help on every subcommand', { timeout: 120_000 }, () => {
  const commands: [string[], RegExp][] = [
    [['serve'], /^usage: berth serve /],
    [['keygen'], /^usage: berth keygen --out DIR/],
    [['hash-password'], /^usage: berth hash-password/],
    [['check-config'], /^usage: berth check-config/],
    [['acl'], /^usage: berth acl explain/],
    [['acl', 'explain'], /^usage: berth acl explain/],
    [['robot'], /^usage: berth robot <command>/],
    [['robot', 'create'], /^usage: berth robot <command>/],
    [['robot', 'secret'], /^usage: berth robot <command>/],
    [['oci-image'], /^usage: berth oci-image --out DIR/],
  ];
  for (const [cmd, usage] of commands) {
    for (const flag of ['--help', '-h']) {
      it(`berth ${cmd.join(' ')} ${flag} prints its usage and exits 0, doing nothing else`, async () => {
        const r = await berth([...cmd, flag], { input: 'a-password\n' });
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(usage);
        expect(r.stderr).toBe('');
        // robot secret made no secret, hash-password hashed nothing, check-config read no file.
        expect(r.stdout).not.toMatch(/berth_rbt_|\$2[aby]\$|cannot read/);
      });
    }
  }

  it('berth help CMD prints that command\'s usage', async () => {
    const r = await berth(['help', 'keygen']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: berth keygen --out DIR/);
  });

  it('a mistake still says where the usage is', async () => {
    const r = await berth(['serve', '--colour']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Unknown option '--colour'/);
    expect(r.stderr).toMatch(/berth serve --help shows the usage/);
  });

  it('robot secret takes no arguments; check-config one file', async () => {
    const secret = await berth(['robot', 'secret', 'extra']);
    expect(secret.code).toBe(2);
    expect(secret.stdout).not.toMatch(/berth_rbt_/);
    const two = await berth(['check-config', 'a.yml', 'b.yml']);
    expect(two.code).toBe(2);
    expect(two.stderr).toMatch(/check-config takes one FILE/);
  });
});

describe('check-config: actions, placeholders, addresses', { timeout: 90_000 }, () => {
  const check = async (yamlText: string) => {
    const file = join(dir, `check-${Math.random().toString(36).slice(2)}.yml`);
    writeFileSync(file, yamlText);
    return berth(['check-config', file]);
  };

  it('rejects an unknown ACL action and an unknown placeholder, with their YAML paths', async () => {
    const r = await check(`acl:
  - match: {account: alice}
    actions: [pull, pul]
  - match: {name: "\${label:groups}/**"}
    actions: [push]
  - match: {account: "/.+/", labels: {team: ["\${labels:team}", "\${acount}"]}}
    actions: ["*", delete]
  - match: {service: "\${service}", type: "\${type}", name: "\${name}-\${account}"}
    actions: []
`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('acl[0].actions: invalid action "pul"');
    expect(r.stderr).toContain('acl[1].match.name: unknown placeholder ${label:groups}');
    expect(r.stderr).toContain('acl[2].match.labels.team[1]: unknown placeholder ${acount}');
    expect(r.stderr).toMatch(/^configuration error: 3 configuration problems:/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('accepts every action and placeholder the ACL knows', async () => {
    const r = await check(`acl:
  - match: {type: registry, name: catalog}
    actions: ["*"]
  - match: {account: "\${account}", service: "\${service}", name: "\${labels:groups}/\${type}-\${name}"}
    actions: [pull, push, delete]
`);
    expect(r.code, r.stderr).toBe(0);
  });

  it('rejects a port out of range and addresses that are not addresses', async () => {
    for (const [addr, message] of [
      ['127.0.0.1:99999', 'server.addr: port 99999 is out of range (0..65535)'],
      ['1.2.3:80', 'server.addr: not an address: 1.2.3:80'],
      ['local host:80', 'server.addr: not an address: local host:80'],
      ['[1.2.3.4]:80', 'server.addr: not an address: [1.2.3.4]:80'],
      ['5001', 'server.addr: not an address: 5001'],
    ] as const) {
      const r = await check(`server: {addr: "${addr}"}\n`);
      expect(r.code, addr).toBe(1);
      expect(r.stderr, addr).toContain(message);
    }
    for (const addr of ['127.0.0.1:5001', ':5001', '[::1]:5001', '0.0.0.0:65535', 'localhost:5001', 'berth.internal:5001']) {
      const r = await check(`server: {addr: "${addr}"}\n`);
      expect(r.code, `${addr}: ${r.stderr}`).toBe(0);
    }
  });

  it('acl explain --ip with something that is not an IP address is an error (exit 2)', async () => {
    const file = join(dir, 'ip.yml');
    writeFileSync(file, 'acl:\n  - match: {ip: 10.0.0.0/8}\n    actions: [pull]\n');
    for (const ip of ['notanip', '10', '10.0.0', '']) {
      const r = await berth(['acl', 'explain', '--config', file, '--account', 'a', '--ip', ip, 'repository:a:pull']);
      expect(r.code, ip).toBe(2);
      expect(r.stderr, ip).toMatch(/is not an IP address/);
    }
    const ok = await berth(['acl', 'explain', '--config', file, '--account', 'a', '--ip', '10.1.2.3', 'repository:a:pull']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/granted: pull/);
  });
});

describe('berth serve: ordinary failures are one line', { timeout: 90_000 }, () => {
  it('a port in use: exit 1, one line naming the address, no stack trace', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const file = join(dir, 'busy.yml');
      writeFileSync(file, `server: {addr: "127.0.0.1:${port}"}\ntoken: {generatedKeyDir: busy-keys}\nusers: {"": {}}\nacl: [{match: {account: ""}, actions: [pull]}]\n`);
      const r = await berth(['serve', '--config', file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`berth: cannot listen on 127.0.0.1:${port}: the address is already in use (another berth, or another program?)\n`);
    } finally {
      blocker.close();
    }
  });

  it("the demo provider's port in use: exit 1, one line, and the half-started server does not keep the process alive", async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const idpPort = (blocker.address() as AddressInfo).port;
    try {
      const file = join(dir, 'demo-busy.yml');
      const demo = readFileSync(join(ROOT, 'config/demo.yaml'), 'utf8')
        .replaceAll('127.0.0.1:5001', '127.0.0.1:0')
        .replaceAll('http://127.0.0.1:5556', `http://127.0.0.1:${idpPort}`)
        .replace('generatedKeyDir: ../.berth/keys', 'generatedKeyDir: demo-busy-keys');
      writeFileSync(file, demo);
      const r = await berth(['serve', '--demo', '--config', file]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`berth: cannot listen on 127.0.0.1:${idpPort}: the address is already in use (another berth, or another program?)\n`);
    } finally {
      blocker.close();
    }
  });

  it('robot: a server that is not there, or not Berth, is one line and exit 1', async () => {
    const notBerth = createHttpServer((_req, res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<html>bad gateway</html>'));
    await new Promise<void>((r) => notBerth.listen(0, '127.0.0.1', r));
    const port = (notBerth.address() as AddressInfo).port;
    try {
      const html = await berth(['robot', 'list', '--server', `http://127.0.0.1:${port}`, '--token', 'x']);
      expect(html.code).toBe(1);
      expect(html.stderr).toMatch(/^berth: http:\/\/127\.0\.0\.1:\d+\/api\/v1\/robots answered 502 with something that is not JSON; is --server Berth's URL\?\n$/);
    } finally {
      await new Promise((r) => notBerth.close(r));
    }
    const gone = await berth(['robot', 'list', '--server', `http://127.0.0.1:${port}`, '--token', 'x']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^berth: cannot reach http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED.*\n$/);
  });

  it('an address that does not resolve, or one this machine does not have: one line, exit 1', async () => {
    for (const [addr, message] of [
      ['nosuchhost.invalid:5001', 'berth: cannot resolve nosuchhost.invalid: no such host\n'],
      ['192.0.2.1:5001', 'berth: cannot listen on 192.0.2.1:5001: this machine has no such address\n'],
    ] as const) {
      const file = join(dir, 'addr.yml');
      writeFileSync(file, `server: {addr: "${addr}"}\ntoken: {generatedKeyDir: addr-keys}\nacl: []\n`);
      const r = await berth(['serve', '--config', file]);
      expect(r.code, addr).toBe(1);
      expect(r.stderr, addr).toBe(message);
    }
  });

  it('a TLS certificate or key that is not one is a configuration error with its path, not an OpenSSL stack', async () => {
    const file = join(dir, 'tls.yml');
    writeFileSync(join(dir, 'not.pem'), 'not a pem\n');
    writeFileSync(file, `server: {addr: "127.0.0.1:0", certificate: not.pem, key: not.pem}\nacl: []\n`);
    for (const cmd of [['check-config', file], ['serve', '--config', file]]) {
      const r = await berth(cmd);
      expect(r.code, cmd[0]).toBe(1);
      expect(r.stderr, cmd[0]).toMatch(/^configuration error: server\.certificate, server\.key: not a usable certificate and private key pair \(.*PEM.*\)\n$/);
    }
  });

  it('a port out of range is a configuration error before anything starts', async () => {
    const file = join(dir, 'range.yml');
    writeFileSync(file, `server: {addr: "127.0.0.1:99999"}\nacl: []\n`);
    const r = await berth(['serve', '--config', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('configuration error: server.addr: port 99999 is out of range (0..65535)\n');
  });
});

describe('berth oci-image', { timeout: 90_000 }, () => {
  it('writes a one-layer OCI layout, reproducibly, and adds further tags to it', async () => {
    const out = join(dir, 'img');
    const r = await berth(['oci-image', '--out', out, '--tag', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/skopeo copy oci:.*img:1 docker:\/\//);
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8'));
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0].annotations['org.opencontainers.image.ref.name']).toBe('1');
    const manifest = JSON.parse(readFileSync(join(out, 'blobs/sha256', index.manifests[0].digest.slice(7)), 'utf8'));
    expect(manifest.layers).toHaveLength(1);
    // Same input, same digest: the tag points at the same manifest when written again elsewhere.
    const again = join(dir, 'img-again');
    expect((await berth(['oci-image', '--out', again, '--tag', '1'])).code).toBe(0);
    expect(JSON.parse(readFileSync(join(again, 'index.json'), 'utf8')).manifests[0].digest).toBe(index.manifests[0].digest);
    // A second tag with other content joins the same layout.
    const file = join(dir, 'payload.txt');
    writeFileSync(file, 'payload\n');
    expect((await berth(['oci-image', '--out', out, '--tag', '2', file])).code).toBe(0);
    const both = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8'));
    expect(both.manifests.map((m: { annotations: Record<string, string> }) => m.annotations['org.opencontainers.image.ref.name'])).toEqual(['1', '2']);
  });

  it('refuses bad tags, missing files and directories that are not layouts', async () => {
    const notLayout = join(dir, 'not-a-layout');
    mkdirSync(notLayout);
    writeFileSync(join(notLayout, 'precious'), 'x');
    const cases: [string[], number, RegExp][] = [
      [['oci-image'], 2, /oci-image needs --out DIR/],
      [['oci-image', '--out', join(dir, 'i1'), '--tag', 'a:b'], 2, /a tag is letters/],
      [['oci-image', '--out', join(dir, 'i2'), join(dir, 'missing.txt')], 1, /cannot read .*missing\.txt: ENOENT/],
      [['oci-image', '--out', notLayout], 1, /non-empty directory and not an OCI layout/],
      [['oci-image', '--out', join(notLayout, 'precious')], 1, /exists and is not a directory/],
      [['oci-image', '--out', '/proc/nope/img'], 1, /cannot create \/proc\/nope: ENOENT/],
    ];
    for (const [args, code, message] of cases) {
      const r = await berth(args);
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr, args.join(' ')).not.toMatch(/\n\s+at /);
    }
    expect(readFileSync(join(notLayout, 'precious'), 'utf8')).toBe('x');
  });
});
