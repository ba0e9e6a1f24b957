import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import yaml from 'js-yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { cleanPrefix, freePort, redisUrl, uniqueKeyPrefix } from '../helpers/redis.js';
import { WebClient } from '../helpers/web-client.js';

// The edges of the web pages: what a copied command runs, what the sign-in page may be made to
// say, and what a link to /device may do to the person opening it. Real Berth, real Redis.

const PASSWORD = 'edge-Password-2718';
const REGISTRY_HOST = 'registry.example.test:5000';
const USERS = ['carol', 'frank$(touch x)', "o'brien `touch x`; touch x"];

let dir: string;
let prefix: string;
let berth: RunningServer;

const unescapeHtml = (s: string) => s.replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
const csrfOf = (page: string) => /name="csrf" value="([^"]+)"/.exec(page)![1]!;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-edges-'));
  prefix = uniqueKeyPrefix('edges');
  const port = await freePort();
  const hashed = await hash(PASSWORD, 4);
  const config = await loadConfigText(
    yaml.dump({
      server: { addr: `127.0.0.1:${port}`, publicURL: `http://127.0.0.1:${port}` },
      log: { level: 'silent' },
      store: { type: 'redis', redis: { url: await redisUrl(), keyPrefix: prefix } },
      secrets: { encryptionKey: 'edges-key-0123456789abcdef0123456789abcdef' },
      limits: { failuresPerAccount: 1000, failuresPerIP: 1000 },
      token: { issuer: 'edges', services: ['registry'], generatedKeyDir: 'keys' },
      web: { registryHost: REGISTRY_HOST },
      // Never contacted: only its callback's error redirect is exercised.
      connectors: [{ type: 'github', id: 'gh', name: 'GitHub', clientID: 'edges', clientSecret: 'unused', baseURL: 'http://127.0.0.1:9', apiURL: 'http://127.0.0.1:9/api' }],
      users: Object.fromEntries(USERS.map((u) => [u, { password: hashed }])),
    }),
    dir,
  );
  berth = await startServer(config, { log: createLogger('silent') });
});

afterAll(async () => {
  await berth?.close();
  await cleanPrefix(prefix);
  rmSync(dir, { recursive: true, force: true });
});

describe('the docker login command shown with a new token', () => {
  it.each(USERS)('runs as shown for user %j: docker gets the name and the token, nothing else runs', async (user) => {
    const web = new WebClient(berth.url);
    expect((await web.signInLocal(user, PASSWORD)).status).toBe(200);
    const created = await web.postForm('/tokens', { csrf: await web.csrf(), name: 'laptop' });
    const secret = /<pre id="pat-secret">([^<]+)<\/pre>/.exec(created.html)![1]!;
    const command = unescapeHtml(/<pre id="login-command">([^<]+)<\/pre>/.exec(created.html)![1]!);

    // A stand-in docker on PATH that records its arguments and stdin, in an empty directory.
    const work = mkdtempSync(join(dir, 'paste-'));
    const bin = join(work, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'docker'), `#!/bin/sh\nfor a in "$@"; do printf '%s\\0' "$a"; done > "$ARGS"\ncat > "$STDIN"\n`, { mode: 0o755 });
    const cwd = join(work, 'cwd');
    mkdirSync(cwd);
    const env = { PATH: `${bin}:/usr/bin:/bin`, HOME: work, ARGS: join(work, 'args'), STDIN: join(work, 'stdin') };
    execFileSync('bash', ['-n', '-c', command]);
    execFileSync('bash', ['-c', command], { cwd, env });
    expect(readFileSync(env.ARGS, 'utf8').split('\0').slice(0, -1)).toEqual(['login', REGISTRY_HOST, '-u', user, '--password-stdin']);
    expect(readFileSync(env.STDIN, 'utf8')).toBe(secret);
    expect(existsSync(join(cwd, 'x')), 'the pasted command ran something from the user name').toBe(false);
  });
});

describe('messages on the sign-in page', () => {
  it('shows a fixed message for a known code and a generic one for anything else, never the text given', async () => {
    const page = async (error: string) => (await fetch(`${berth.url}/?error=${encodeURIComponent(error)}`)).text();
    const known = await page('session_expired');
    expect(known).toContain('Your session has ended. Please sign in again.');
    const bait = 'Your account is locked. Call +1 555 0100 to unlock it';
    const forged = await page(bait);
    expect(forged).not.toContain('Call +1 555');
    expect(forged).not.toContain('555');
    expect(forged).toContain('The sign-in did not complete. Please try again.');
    // Prototype keys are not codes either.
    for (const code of ['constructor', '__proto__', 'toString']) expect(await page(code)).toContain('The sign-in did not complete. Please try again.');
    // The provider's error redirect: the code picks the text, error_description is not shown.
    const cb = async (q: string) => (await fetch(`${berth.url}/callback/gh?${q}`)).text();
    const denied = await cb(`error=access_denied&error_description=${encodeURIComponent(bait)}`);
    expect(denied).toContain('GitHub did not complete the sign-in: the sign-in was denied or cancelled. Please try again.');
    expect(denied).not.toContain('555');
    const odd = await cb(`error=${encodeURIComponent(bait)}`);
    expect(odd).toContain('GitHub did not complete the sign-in. Please try again.');
    expect(odd).not.toContain('555');
    // Without ?error= there is no message at all.
    expect(await (await fetch(`${berth.url}/`)).text()).not.toContain('role="alert"');
  });
});

describe('links to /device', () => {
  async function deviceCode(): Promise<string> {
    const res = await fetch(`${berth.url}/device/code`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'client_id=edges-test' });
    expect(res.status).toBe(200);
    return ((await res.json()) as { user_code: string }).user_code;
  }

  it('a GET only fills in the code: wrong codes sent by other sites cannot lock the person out', async () => {
    const web = new WebClient(berth.url);
    expect((await web.signInLocal('carol', PASSWORD)).status).toBe(200);
    // Cross-site navigations (links, redirects, <img> tags) with wrong codes: each just shows the form.
    for (let i = 0; i < 25; i++) {
      const res = await web.fetch(`/device?user_code=ZZZZ-ZZZ${'BCDFGHJKLMNPQRSTVWXZ'[i % 20]}`);
      expect(res.status).toBe(200);
      const html = await res.text();
      expect(html).toContain('Enter the code');
      expect(html).not.toContain('role="alert"');
    }
    // A real code in the link is filled in, but nothing is looked up or shown until the form is sent.
    const code = await deviceCode();
    const link = await (await web.fetch(`/device?user_code=${code.toLowerCase()}`)).text();
    expect(link).toContain(`value="${code}"`);
    expect(link).not.toContain('confirm-code');
    expect(link).not.toContain('edges-test');
    // Not a code: nothing is filled in, and nothing is echoed.
    const junk = await (await web.fetch(`/device?user_code=${encodeURIComponent('"><b>call us</b>')}`)).text();
    expect(junk).not.toContain('call us');
    // Sending the form (CSRF-checked) looks the code up: still allowed after all those links.
    const confirm = await web.postForm('/device', { csrf: csrfOf(link), user_code: code });
    expect(confirm.res.status).toBe(200);
    expect(confirm.html).toContain(`<p class="user-code" id="confirm-code">${code}</p>`);
  });

  it('wrong codes sent with the form count, and block the session after ten', async () => {
    const web = new WebClient(berth.url);
    expect((await web.signInLocal('carol', PASSWORD)).status).toBe(200);
    const entry = await (await web.fetch('/device')).text();
    for (let i = 0; i < 10; i++) expect((await web.postForm('/device', { csrf: csrfOf(entry), user_code: 'ZZZZ-ZZZZ' })).res.status).toBe(400);
    const code = await deviceCode();
    const blocked = await web.postForm('/device', { csrf: csrfOf(entry), user_code: code });
    expect(blocked.res.status).toBe(429);
    expect(blocked.html).toContain('Too many wrong codes');
    // Without the CSRF token a POST is refused and not counted as a code at all.
    expect((await web.postForm('/device', { user_code: 'ZZZZ-ZZZZ' })).res.status).toBe(403);
  });
});
