import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/app/load-config.js';
import { createLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { startDemoProvider } from '../../src/demo/run-demo.js';
import type { DevProvider } from '../../src/demo/dev-provider.js';
import { DEMO_CONFIG } from '../../src/cli/serve.js';
import { launchBrowser } from '../helpers/browser.js';
import { freePort } from '../helpers/redis.js';

// The README's invitation, as `npm start` runs it (config/demo.yaml and its provider, on free ports):
// sign in as alice, sign out, sign in as bob; and the static admin/demo account is named on the page.

let dir: string;
let berth: RunningServer;
let provider: DevProvider | null;
let browser: Browser;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-demo-'));
  const [port, idp] = [await freePort(), await freePort()];
  const text = readFileSync(DEMO_CONFIG, 'utf8').replaceAll('127.0.0.1:5001', `127.0.0.1:${port}`).replaceAll('127.0.0.1:5556', `127.0.0.1:${idp}`).replace('../.berth/keys', 'keys');
  const config = await loadConfigText(text, dir);
  berth = await startServer(config, { log: createLogger('silent') });
  provider = await startDemoProvider(config, berth.url);
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await berth?.close();
  await provider?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the demo', () => {
  it('names admin/demo on the sign-in page, and that account signs in', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${berth.url}/`);
    const hint = await page.locator('#demo-accounts').textContent();
    expect(hint).toContain('admin');
    expect(hint).toContain('demo');
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill('demo');
    await Promise.all([page.waitForURL(`${berth.url}/tokens`), page.getByRole('button', { name: 'Sign in', exact: true }).click()]);
    expect(await page.locator('#access-summary').textContent()).toBe('You may do anything.');
    await context.close();
  });

  it('alice signs out and bob signs in with Demo SSO in the same browser', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const ssoSignIn = async (who: string) => {
      await page.getByRole('link', { name: 'Sign in with Demo SSO' }).click();
      await page.getByLabel(/user/i).fill(who);
      await page.getByLabel(/password/i).fill(who);
      await Promise.all([page.waitForURL(`${berth.url}/tokens`), page.getByRole('button', { name: /sign in/i }).click()]);
    };
    await page.goto(`${berth.url}/`);
    await ssoSignIn('alice');
    expect(await page.textContent('header')).toContain('alice');
    await Promise.all([page.waitForURL(`${provider!.issuer}/**`), page.getByRole('button', { name: 'Sign out' }).click()]);
    await Promise.all([page.waitForURL(`${berth.url}/signed-out`), page.getByRole('button', { name: 'Yes, sign me out' }).click()]);
    await ssoSignIn('bob');
    expect(await page.textContent('header')).toContain('bob');
    expect(await page.locator('#access-summary').textContent()).toContain('push and pull team-a/**');
    await context.close();
  });
});
