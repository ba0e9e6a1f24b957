import { html, layout } from '../web/html.js';
import type { PageEnv } from '../web/pages.js';
import { formatUserCode } from './user-code.js';

interface Viewer {
  username: string;
  csrf: string;
}

const date = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';

const CODE_STYLE = html`<style>.user-code{font:700 2rem/1.2 ui-monospace,SFMono-Regular,Menlo,monospace;letter-spacing:.15em;margin:.25rem 0 .75rem}</style>`;

/** The page a person opens from the helper's message: type (or confirm) the code shown in the terminal. */
export function deviceEntryPage(env: PageEnv, v: Viewer, opts: { userCode?: string | undefined; error?: string | undefined }): string {
  return layout(
    { title: 'Connect a device', appTitle: env.appTitle, user: v.username, csrf: v.csrf },
    html`<h1>Connect a device</h1>
${opts.error ? html`<p class="error" role="alert">${opts.error}</p>` : opts.userCode ? html`<p class="notice" role="status">Check that this is the code your terminal shows, then continue.</p>` : ''}
<div class="card"><p>Enter the code shown by <code>docker-credential-berth</code> (or another tool asking to sign in as you).</p>
<form method="post" action="/device">
<input type="hidden" name="csrf" value="${v.csrf}">
<label for="user_code">Code</label><input id="user_code" name="user_code" value="${opts.userCode ?? ''}" autocomplete="off" autocapitalize="characters" spellcheck="false" maxlength="20" required placeholder="XXXX-XXXX">
<button type="submit">Continue</button></form></div>`,
  );
}

export interface ConfirmInput {
  userCode: string;
  clientId: string | null;
  requestedAt: number;
  requestedFrom: string;
  tokenName: string;
  tokenDays: number;
  groups: string[];
}

/** Shows exactly what approving grants, and asks to compare the code with the terminal's. */
export function deviceConfirmPage(env: PageEnv, v: Viewer, c: ConfirmInput): string {
  const code = formatUserCode(c.userCode);
  return layout(
    { title: 'Approve device sign-in', appTitle: env.appTitle, user: v.username, csrf: v.csrf },
    html`${CODE_STYLE}<h1>Approve device sign-in?</h1>
<div class="card"><p>Check that your terminal shows this code:</p><p class="user-code" id="confirm-code">${code}</p>
<p class="error">Only approve if you started this sign-in yourself just now. Someone who sent you this link would get access to the registry as you.</p>
<table><tbody>
<tr><th scope="row">Requested by</th><td>${c.clientId ?? 'an unnamed client'}</td></tr>
<tr><th scope="row">Requested</th><td>${date(c.requestedAt)} from ${c.requestedFrom}</td></tr>
<tr><th scope="row">It receives</th><td>a personal access token “${c.tokenName}” for <strong>${v.username}</strong>, valid for ${c.tokenDays} day${c.tokenDays === 1 ? '' : 's'}, with all your registry access${c.groups.length ? html` (groups: ${c.groups.map((g) => html`<span class="tag">${g}</span>`)})` : ''}</td></tr>
</tbody></table>
<form method="post" action="/device/decision">
<input type="hidden" name="csrf" value="${v.csrf}"><input type="hidden" name="user_code" value="${code}">
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny" class="danger">Deny</button>
</form>
<p class="muted">You can revoke the token at any time on the <a href="/tokens">access tokens page</a>.</p></div>`,
  );
}

export function deviceDonePage(env: PageEnv, v: Viewer, approved: boolean, tokenName: string): string {
  return layout(
    { title: approved ? 'Device approved' : 'Device denied', appTitle: env.appTitle, user: v.username, csrf: v.csrf },
    approved
      ? html`<h1>Device approved</h1><p class="notice" role="status">The device now receives a token “${tokenName}”. You can close this page and return to your terminal.</p><p><a href="/tokens">See your tokens</a></p>`
      : html`<h1>Device denied</h1><p class="notice" role="status">The sign-in was denied; the device gets no token.</p><p><a href="/tokens">Back to your tokens</a></p>`,
  );
}
