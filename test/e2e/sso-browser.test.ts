import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import type { DevProvider } from '../../src/demo/dev-provider.js';
import { launchBrowser } from '../helpers/browser.js';
import { buildOciImage } from '../helpers/oci-image.js';
import { startSsoStack, type SsoStack } from '../helpers/sso-stack.js';
import type { RunningRegistry } from '../helpers/registry.js';
import { copy, describeResult } from '../helpers/skopeo.js';

// The whole person-facing flow with real parts: chromium signs in at a real OpenID provider, creates
// a PAT on Berth's page, skopeo pushes and pulls through the real registry with it, and revoking it
// on the page ends its use.

let dir: string;
let provider: DevProvider;
let berth: RunningServer;
let registry: RunningRegistry;
let browser: Browser;
let stack: SsoStack;

const SERVICE = 'registry';

async function tokenStatus(user: string, password: string, scope: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${berth.url}/auth?service=${SERVICE}&scope=${encodeURIComponent(scope)}`, {
    headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function grantedActions(body: Record<string, unknown>): string[] {
  const token = String(body.token);
  const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { access: { actions: string[] }[] };
  return payload.access.flatMap((a) => a.actions);
}

async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.goto(`${berth.url}/`);
  await page.getByRole('link', { name: 'Sign in with Corp SSO' }).click();
  await page.getByLabel(/user/i).fill(username);
  await page.getByLabel(/password/i).fill(password);
  await Promise.all([page.waitForURL(`${berth.url}/tokens`), page.getByRole('button', { name: /sign in|log in|continue/i }).click()]);
}

async function createPat(page: Page, name: string): Promise<string> {
  await page.getByLabel('Name').fill(name);
  await page.getByRole('button', { name: 'Create token' }).click();
  const secret = (await page.locator('#pat-secret').textContent())!.trim();
  expect(secret).toMatch(/^berth_pat_[0-9A-Za-z]{38}$/);
  return secret;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-sso-'));
  stack = await startSsoStack(dir, 'berth-sso-test', 'continuousAccess: { ttl: 1s, grace: 1s }');
  ({ provider, berth, registry } = stack);
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('browser sign-in → PAT → docker registry', () => {
  it('signs in, creates a PAT, pushes and pulls with skopeo, revokes it in the page', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await signIn(page, 'alice', 'alice-pw');
    await expect(page.locator('body')).toBeTruthy();
    expect(await page.textContent('main')).toContain('team-a');
    const pat = await createPat(page, 'laptop');
    expect(await page.textContent('#login-command')).toContain(`docker login 127.0.0.1:5000 -u alice --password-stdin`);

    const image = buildOciImage();
    const creds = { username: 'alice', password: pat };
    const push = await copy(`oci:${image.dir}`, `docker://${registry.host}/team-a/app:v1`, creds);
    expect(push.code, describeResult(push)).toBe(0);
    const back = mkdtempSync(join(dir, 'pull-'));
    const pull = await copy(`docker://${registry.host}/team-a/app:v1`, `oci:${back}:v1`, creds);
    expect(pull.code, describeResult(pull)).toBe(0);
    const foreign = await copy(`oci:${image.dir}`, `docker://${registry.host}/team-b/app:v1`, creds);
    expect(foreign.code).not.toBe(0);

    // The list shows the token with its last use, then revoke it from the page.
    await page.goto(`${berth.url}/tokens`);
    const row = page.locator('tr', { hasText: 'laptop' });
    await expect(row.textContent()).resolves.toContain('from');
    await row.getByRole('button', { name: /revoke/i }).click();
    expect(await page.textContent('main')).toContain('Token revoked');
    const after = await tokenStatus('alice', pat, 'repository:team-a/app:pull');
    expect(after.status).toBe(401);
    expect(JSON.stringify(after.body)).toMatch(/revoked|unknown|expired/);
    const again = await copy(`docker://${registry.host}/team-a/app:v1`, `oci:${mkdtempSync(join(dir, 'pull-'))}:v1`, creds);
    expect(again.code).not.toBe(0);
    await context.close();
    rmSync(image.dir, { recursive: true, force: true });
  });

  it('continuous access: losing a group at the provider removes access after the TTL; disabling ends it', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await signIn(page, 'bob', 'bob-pw');
    const pat = await createPat(page, 'ci-test');
    await context.close();

    let r = await tokenStatus('bob', pat, 'repository:team-b/svc:push,pull');
    expect(r.status).toBe(200);
    expect(grantedActions(r.body).sort()).toEqual(['pull', 'push']);

    provider.setGroups('bob', []);
    await new Promise((res) => setTimeout(res, 1200));
    r = await tokenStatus('bob', pat, 'repository:team-b/svc:push,pull');
    expect(r.status).toBe(200);
    expect(grantedActions(r.body)).toEqual(['pull']);

    provider.setGroups('bob', ['team-b']);
    await new Promise((res) => setTimeout(res, 1200));
    r = await tokenStatus('bob', pat, 'repository:team-b/svc:push,pull');
    expect(grantedActions(r.body).sort()).toEqual(['pull', 'push']);

    provider.setDisabled('bob', true);
    await new Promise((res) => setTimeout(res, 1200));
    r = await tokenStatus('bob', pat, 'repository:team-b/svc:pull');
    expect(r.status).toBe(401);
    expect(JSON.stringify(r.body)).toMatch(/revoked|disabled/);
  });

  it('refuses bad PATs and other users\' PATs with clear messages', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await signIn(page, 'alice', 'alice-pw');
    const pat = await createPat(page, 'second');
    await context.close();

    const flipped = pat.slice(0, 15) + (pat[15] === 'a' ? 'b' : 'a') + pat.slice(16);
    let r = await tokenStatus('alice', flipped, 'repository:team-a/app:pull');
    expect(r.status).toBe(401);
    expect(JSON.stringify(r.body)).toContain('checksum');

    r = await tokenStatus('bob', pat, 'repository:team-a/app:pull');
    expect(r.status).toBe(401);
    expect(JSON.stringify(r.body)).toContain('another user');
  });

  it('refuses form posts without the CSRF token and foreign returnTo targets', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await signIn(page, 'alice', 'alice-pw');
    const cookies = await context.cookies();
    const cookieHeader = cookies.map((c) => `${c.name}=${c.value}`).join('; ');
    const res = await fetch(`${berth.url}/tokens`, { method: 'POST', headers: { cookie: cookieHeader, 'content-type': 'application/x-www-form-urlencoded' }, body: 'name=evil', redirect: 'manual' });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('security token');

    const api = await fetch(`${berth.url}/api/v1/tokens`, { method: 'POST', headers: { cookie: cookieHeader, 'content-type': 'application/json' }, body: '{"name":"evil"}' });
    expect(api.status).toBe(403);
    expect((await api.json()).errors[0].code).toBe('CSRF');

    // A forged or replayed callback is refused with a page that says so.
    const forged = await fetch(`${berth.url}/callback/corp?state=forged&code=abc`, { headers: { cookie: cookieHeader } });
    expect(forged.status).toBe(400);
    expect(await forged.text()).toContain('invalid, was already used');

    // A returnTo pointing elsewhere is replaced by Berth's own page.
    const fresh = await browser.newContext();
    const p2 = await fresh.newPage();
    await p2.goto(`${berth.url}/login/corp?returnTo=${encodeURIComponent('//evil.example/x')}`);
    await p2.getByLabel(/user/i).fill('alice');
    await p2.getByLabel(/password/i).fill('alice-pw');
    await Promise.all([p2.waitForURL(/\/tokens$/), p2.getByRole('button', { name: /sign in|log in|continue/i }).click()]);
    expect(new URL(p2.url()).origin).toBe(berth.url);
    await fresh.close();
    await context.close();
  });
});
