import type { Page } from 'playwright-core';

/** The credential helper's prompt line: `(or open http://…/device?user_code=ABCD-EFGH)`. */
const COMPLETE_URI = /\(or open (http:\/\/\S+\/device\?user_code=([A-Z]{4}-[A-Z]{4}))\)/;

/** Resolves with the verification_uri_complete and user code once the helper's prompt has been printed. */
export function promptWatcher(): { onStderr: (all: string) => void; prompt: Promise<{ url: string; code: string }> } {
  let resolve!: (v: { url: string; code: string }) => void;
  const prompt = new Promise<{ url: string; code: string }>((r) => (resolve = r));
  return {
    onStderr: (all) => {
      const m = COMPLETE_URI.exec(all);
      if (m) resolve({ url: m[1]!, code: m[2]! });
    },
    prompt,
  };
}

/** Signs in at the test provider ("Corp SSO", test/helpers/sso-stack.ts) and waits to be back on Berth's /device. */
export async function signInAtProvider(page: Page, berthURL: string, username: string, password: string): Promise<void> {
  await page.getByRole('link', { name: 'Sign in with Corp SSO' }).click();
  await page.getByLabel(/user/i).fill(username);
  await page.getByLabel(/password/i).fill(password);
  await Promise.all([page.waitForURL(new RegExp(`^${berthURL}/device`)), page.getByRole('button', { name: /sign in|log in|continue/i }).click()]);
}
