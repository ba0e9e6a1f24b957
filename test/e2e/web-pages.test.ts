import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hash } from '@node-rs/bcrypt';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../helpers/browser.js';
import { startSsoStack, type SsoStack } from '../helpers/sso-stack.js';

// Issue 13, items 2, 3, 5 and 6, in chromium against the real stack (oidc-provider, Berth, registry):
// redirect-after-post, sign-out that really signs out, what the ACL grants in words, and the pages.

let dir: string;
let stack: SsoStack;
let browser: Browser;
let base: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-pages-'));
  const carol = await hash('carol-pw', 4);
  stack = await startSsoStack(dir, 'berth-pages-test', `users:\n  carol:\n    password: "${carol}"\n    labels: { groups: [ops] }\nadmin: { accounts: [carol] }`);
  base = stack.berth.url;
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function fresh(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  return { context, page: await context.newPage() };
}

/** Through the provider's login form (it must be shown: a silent sign-in fails here). */
async function signInSso(page: Page, username: string): Promise<void> {
  await page.goto(`${base}/`);
  await page.getByRole('link', { name: 'Sign in with Corp SSO' }).click();
  await page.getByLabel(/user/i).fill(username);
  await page.getByLabel(/password/i).fill(`${username}-pw`);
  await Promise.all([page.waitForURL(`${base}/tokens`), page.getByRole('button', { name: /sign in/i }).click()]);
}

async function createPat(page: Page, name: string, restrict?: string): Promise<string> {
  await page.getByRole('textbox', { name: 'Name', exact: true }).fill(name);
  if (restrict) {
    await page.getByLabel(/Repositories/).fill(restrict);
    await page.getByLabel('pull', { exact: true }).check();
  }
  await page.getByRole('button', { name: 'Create token' }).click();
  return (await page.locator('#pat-secret').textContent())!.trim();
}

async function tokenStatus(user: string, pat: string): Promise<number> {
  const res = await fetch(`${base}/auth?service=registry&scope=${encodeURIComponent('repository:team-a/app:pull')}`, { headers: { authorization: `Basic ${Buffer.from(`${user}:${pat}`).toString('base64')}` } });
  return res.status;
}

/** Width of a PNG from its IHDR chunk. */
const pngWidth = (png: Buffer) => png.readUInt32BE(16);

describe('item 2: tokens are created and revoked with redirect-after-post', () => {
  it('shows a new secret once at /tokens; a reload neither repeats the POST nor shows it again', async () => {
    const { context, page } = await fresh();
    await signInSso(page, 'alice');
    const secret = await createPat(page, 'once');
    expect(secret).toMatch(/^berth_pat_/);
    expect(page.url()).toBe(`${base}/tokens`);
    expect(page.url()).not.toContain(secret);
    await page.reload();
    expect(await page.locator('#pat-secret').count()).toBe(0);
    expect(await page.locator('tr[data-token-id]').count()).toBe(1);

    await page.locator('tr', { hasText: 'once' }).getByRole('button', { name: /revoke/i }).click();
    expect(page.url()).toBe(`${base}/tokens`);
    expect(await page.textContent('main')).toContain('Token revoked');
    await page.reload();
    expect(await page.textContent('main')).not.toContain('Token revoked');
    expect(await tokenStatus('alice', secret)).toBe(401);
    await context.close();
  });

  it('asks before "Revoke all", and revokes nothing until confirmed', async () => {
    const { context, page } = await fresh();
    await signInSso(page, 'bob');
    const a = await createPat(page, 'bob-one');
    await createPat(page, 'bob-two');
    await page.getByRole('link', { name: /revoke all/i }).click();
    expect(new URL(page.url()).pathname).toBe('/tokens/revoke-all');
    expect(await page.textContent('main')).toMatch(/revokes all 2 of your tokens/);
    expect(await tokenStatus('bob', a)).toBe(200);
    // A bare POST (no confirmation) asks again.
    const csrf = await page.locator('input[name=csrf]').first().inputValue();
    const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    const bare = await fetch(`${base}/tokens/revoke-all`, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: `csrf=${encodeURIComponent(csrf)}`, redirect: 'manual' });
    expect(bare.status).toBe(200);
    expect(await tokenStatus('bob', a)).toBe(200);
    await page.getByRole('button', { name: 'Yes, revoke all 2 tokens' }).click();
    expect(page.url()).toBe(`${base}/tokens`);
    expect(await page.textContent('main')).toContain('Revoked 2 tokens');
    expect(await tokenStatus('bob', a)).toBe(401);
    await context.close();
  });
});

describe('item 3: signing out signs out', () => {
  it('ends the provider session too (RP-initiated logout): the next sign-in asks again, and another person can sign in', async () => {
    const { context, page } = await fresh();
    await signInSso(page, 'alice');
    // The provider's end-session page, then back to Berth.
    await Promise.all([page.waitForURL(`${stack.provider.issuer}/**`), page.getByRole('button', { name: 'Sign out' }).click()]);
    await Promise.all([page.waitForURL(`${base}/signed-out`), page.getByRole('button', { name: 'Yes, sign me out' }).click()]);
    expect(await page.getByRole('status').textContent()).toContain('You have been signed out');
    await page.getByRole('link', { name: 'Sign in with Corp SSO' }).click();
    await expect(page.getByLabel(/user/i).isVisible()).resolves.toBe(true);
    await page.getByLabel(/user/i).fill('bob');
    await page.getByLabel(/password/i).fill('bob-pw');
    await Promise.all([page.waitForURL(`${base}/tokens`), page.getByRole('button', { name: /sign in/i }).click()]);
    expect(await page.textContent('header')).toContain('bob');
    await context.close();
  });

  it('asks for a password again (prompt=login) even when the provider session survived', async () => {
    const { context, page } = await fresh();
    await signInSso(page, 'alice');
    await Promise.all([page.waitForURL(`${stack.provider.issuer}/**`), page.getByRole('button', { name: 'Sign out' }).click()]);
    // Declining at the provider keeps its session: only prompt=login stands between alice and a silent sign-in.
    await Promise.all([page.waitForURL(`${base}/signed-out`), page.getByRole('button', { name: /stay signed in/i }).click()]);
    await page.getByRole('link', { name: 'Sign in with Corp SSO' }).click();
    expect(new URL(page.url()).origin).toBe(stack.provider.issuer);
    await expect(page.getByLabel(/user/i).isVisible()).resolves.toBe(true);
    await context.close();
  });
});

describe('item 5: the tokens page says what the groups grant', () => {
  it('in plain words, from the same rules the token endpoint decides with', async () => {
    const { context, page } = await fresh();
    await signInSso(page, 'alice');
    expect(await page.locator('#access-summary').textContent()).toBe('You may push and pull team-a/**; pull everything.');
    await context.close();
  });
});

describe('item 6: pages', () => {
  it('the tokens table fits a 375 px screen, Revoke buttons inside the card', async () => {
    const context = await browser.newContext({ viewport: { width: 375, height: 800 } });
    const page = await context.newPage();
    await signInSso(page, 'alice');
    await createPat(page, 'a-rather-long-token-name-for-the-build-server', 'team-a/some/deeply/nested/repository/** team-a/another/one/**');
    await createPat(page, 'phone');
    await page.goto(`${base}/tokens`);
    const shot = await page.screenshot({ fullPage: true });
    expect(pngWidth(shot)).toBe(375);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    const card = (await page.locator('#token-list').boundingBox())!;
    for (const button of await page.locator('#token-list button').all()) {
      const b = (await button.boundingBox())!;
      expect(b.x).toBeGreaterThanOrEqual(card.x);
      expect(b.x + b.width).toBeLessThanOrEqual(card.x + card.width);
    }
    await context.close();
  });

  it('/robots for a non-admin is an HTML page', async () => {
    const { context, page } = await fresh();
    await signInSso(page, 'alice');
    const res = (await page.goto(`${base}/robots`))!;
    expect(res.status()).toBe(403);
    expect(res.headers()['content-type']).toMatch(/^text\/html/);
    expect(await page.getByRole('alert').textContent()).toContain('administrators');
    await context.close();
  });

  it('a refused token form keeps what was typed and shows the error beside the field', async () => {
    const { context, page } = await fresh();
    await signInSso(page, 'alice');
    const before = await page.locator('tr[data-token-id]').count();
    await page.getByRole('textbox', { name: 'Name', exact: true }).fill('kept name');
    await page.getByLabel(/Repositories/).fill('/.*x/');
    await page.getByLabel('push', { exact: true }).check();
    await page.getByRole('button', { name: 'Create token' }).click();
    expect(await page.getByRole('textbox', { name: 'Name', exact: true }).inputValue()).toBe('kept name');
    expect(await page.getByLabel(/Repositories/).inputValue()).toBe('/.*x/');
    expect(await page.getByLabel('push', { exact: true }).isChecked()).toBe(true);
    expect(await page.locator('#repositories').getAttribute('aria-describedby')).toBe('repositories-error');
    expect(await page.locator('#repositories-error').textContent()).toContain('regular expression');
    expect(await page.locator('tr[data-token-id]').count()).toBe(before);

    await context.close();

    // The local sign-in form keeps the username and says what went wrong beside the password.
    const signedOut = await fresh();
    const other = signedOut.page;
    await other.goto(`${base}/`);
    await other.getByLabel('Username').fill('carol');
    await other.getByLabel('Password').fill('wrong');
    await other.getByRole('button', { name: 'Sign in', exact: true }).click();
    expect(await other.getByLabel('Username').inputValue()).toBe('carol');
    expect(await other.locator('#password-error').textContent()).toContain('Invalid username or password');
    await signedOut.context.close();
  });

  it('a refused robot form keeps what was typed and shows the error beside the field', async () => {
    const { context, page } = await fresh();
    await page.goto(`${base}/`);
    await page.getByLabel('Username').fill('carol');
    await page.getByLabel('Password').fill('carol-pw');
    await Promise.all([page.waitForURL(`${base}/tokens`), page.getByRole('button', { name: 'Sign in', exact: true }).click()]);
    await page.goto(`${base}/robots`);
    await page.locator('#rname').fill('deploy-web');
    await page.locator('#rdesc').fill('the web deploy');
    await page.locator('#rrepos').fill('/(a+)+z/');
    await page.getByLabel('push', { exact: true }).check();
    await page.getByRole('button', { name: 'Create robot' }).click();
    expect(await page.locator('#rname').inputValue()).toBe('deploy-web');
    expect(await page.locator('#rdesc').inputValue()).toBe('the web deploy');
    expect(await page.locator('#rrepos').inputValue()).toBe('/(a+)+z/');
    expect(await page.getByLabel('push', { exact: true }).isChecked()).toBe(true);
    expect(await page.locator('#rrepos-error').textContent()).toContain('regular expression');
    await context.close();
  });

  it('404 is a styled page with a link home', async () => {
    const { context, page } = await fresh();
    const res = (await page.goto(`${base}/no/such/page`))!;
    expect(res.status()).toBe(404);
    expect(res.headers()['content-type']).toMatch(/^text\/html/);
    await page.getByRole('link', { name: /start page/i }).click();
    expect(new URL(page.url()).pathname).toBe('/');
    await context.close();
  });

  it('a protected page reached while signed out says why the sign-in page is shown', async () => {
    const { context, page } = await fresh();
    await page.goto(`${base}/tokens`);
    expect(new URL(page.url()).pathname).toBe('/');
    expect(await page.getByRole('status').textContent()).toContain('Please sign in to open that page');
    await page.goto(`${base}/robots`);
    expect(await page.getByRole('status').textContent()).toContain('Please sign in to open that page');
    await context.close();
  });

  it('a local account is not said to be re-checked with an identity provider', async () => {
    const { context, page } = await fresh();
    await page.goto(`${base}/`);
    await page.getByLabel('Username').fill('carol');
    await page.getByLabel('Password').fill('carol-pw');
    await Promise.all([page.waitForURL(`${base}/tokens`), page.getByRole('button', { name: 'Sign in', exact: true }).click()]);
    const text = await page.locator('#recheck').textContent();
    expect(text).not.toMatch(/re-checked with/);
    expect(text).toContain("Berth's configuration");
    expect(await page.locator('#access-summary').textContent()).toBe('You may push and pull ops/**; pull everything.');
    await context.close();
  });
});
