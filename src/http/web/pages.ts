import type { CurrentAccount } from '../../identity/continuous-access.js';
import type { PatRecord, PatUsage } from '../../tokens/pats.js';
import { html, layout, type Html } from './html.js';
import { shellQuote } from '../../util/shell-quote.js';

export interface ConnectorLink {
  id: string;
  name: string;
}

export interface PageEnv {
  appTitle: string;
  registryHost: string;
}

const date = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';

function message(kind: 'notice' | 'error', text: string | undefined): Html | '' {
  return text ? html`<p class="${kind}" role="${kind === 'error' ? 'alert' : 'status'}">${text}</p>` : '';
}

/**
 * What `/?error=CODE` may make the sign-in page say: a fixed text per code, anything else the
 * generic one. The page never shows text from the link, which anyone can send ("your account is
 * locked, call …").
 */
const SIGN_IN_MESSAGES: ReadonlyMap<string, string> = new Map([
  ['session_expired', 'Your session has ended. Please sign in again.'],
  ['signed_out', 'You have been signed out. Please sign in again.'],
  ['login_failed', 'The sign-in did not complete. Please try again.'],
]);
const GENERIC_SIGN_IN_MESSAGE = 'The sign-in did not complete. Please try again.';

/** The message for a `?error=` code from the query, or undefined when none was given. */
export function signInMessage(code: unknown): string | undefined {
  if (code === undefined) return undefined;
  return (typeof code === 'string' && SIGN_IN_MESSAGES.get(code)) || GENERIC_SIGN_IN_MESSAGE;
}

// RFC 6749 §4.1.2.1 and OpenID Connect Core §3.1.2.6 error codes, the only part of a provider's
// error redirect shown; error_description is free text anyone can put in a link.
const PROVIDER_ERRORS: ReadonlyMap<string, string> = new Map([
  ['access_denied', 'the sign-in was denied or cancelled'],
  ['temporarily_unavailable', 'it is temporarily unavailable'],
  ['server_error', 'it had an internal error'],
  ['login_required', 'you need to sign in there first'],
  ['consent_required', 'you need to consent to Berth there first'],
  ['interaction_required', 'it needs you to complete a step there first'],
  ['account_selection_required', 'you need to choose an account there first'],
]);

/** The page text for a provider's `?error=` redirect to the callback, chosen by code. */
export function providerErrorMessage(providerName: string, code: unknown): string {
  const why = typeof code === 'string' ? PROVIDER_ERRORS.get(code) : undefined;
  return `${providerName} did not complete the sign-in${why ? `: ${why}` : ''}. Please try again.`;
}

export function signInPage(env: PageEnv, opts: { connectors: ConnectorLink[]; localLogin: boolean; csrf: string; returnTo: string; error?: string | undefined }): string {
  const rt = encodeURIComponent(opts.returnTo);
  return layout(
    { title: 'Sign in', appTitle: env.appTitle },
    html`<h1>Sign in to ${env.appTitle}</h1>
${message('error', opts.error)}
<div class="card"><h2>With your company account</h2>
${opts.connectors.length === 0 ? html`<p class="muted">No identity providers are configured.</p>` : ''}
${opts.connectors.map((c) => html`<a class="button" href="/login/${c.id}?returnTo=${rt}">Sign in with ${c.name}</a> `)}
</div>
${
  opts.localLogin
    ? html`<div class="card"><h2>With a local account</h2>
<form method="post" action="/login/local">
<input type="hidden" name="csrf" value="${opts.csrf}"><input type="hidden" name="returnTo" value="${opts.returnTo}">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form></div>`
    : ''
}
<p class="muted">After signing in you can create a personal access token to use as the password of <code>docker login</code>.</p>`,
  );
}

export function errorPage(env: PageEnv, status: number, title: string, text: string): string {
  return layout({ title, appTitle: env.appTitle }, html`<h1>${title}</h1><p class="error" role="alert">${text}</p><p><a href="/">Back to sign-in</a></p>`);
}

function expiryOptions(defaultDays: number, maxDays: number): Html[] {
  const choices = [...new Set([1, 7, 30, 60, 90, 180, 365, defaultDays, maxDays])].filter((d) => d >= 1 && d <= maxDays).sort((a, b) => a - b);
  return choices.map((d) => html`<option value="${d}"${d === defaultDays ? html` selected` : ''}>${d} day${d === 1 ? '' : 's'}</option>`);
}

function restrictionText(p: PatRecord): string {
  return p.restriction ? `${p.restriction.actions.join(',')} on ${p.restriction.repositories.join(' ')}` : 'none (all your access)';
}

export interface TokensPageInput {
  account: CurrentAccount;
  pats: (PatRecord & { lastUsed?: PatUsage })[];
  csrf: string;
  defaultDays: number;
  maxDays: number;
  recheck: { possible: boolean; minutes: number; provider: string };
  admin?: boolean;
  created?: { secret: string; record: PatRecord } | undefined;
  notice?: string | undefined;
  error?: string | undefined;
}

export function tokensPage(env: PageEnv, p: TokensPageInput): string {
  const id = p.account.identity;
  // Pasted into a shell: every value is one quoted word, so a user name like `frank$(touch x)` stays text.
  const loginCmd = p.created ? `printf '%s' ${shellQuote(p.created.secret)} | docker login ${shellQuote(env.registryHost)} -u ${shellQuote(p.created.record.username)} --password-stdin` : '';
  return layout(
    { title: 'Access tokens', appTitle: env.appTitle, user: p.account.name, csrf: p.csrf },
    html`<h1>Access tokens</h1>
${message('notice', p.notice)}${message('error', p.error)}
${
  p.created
    ? html`<div class="card" id="new-token"><h2>Your new token “${p.created.record.name}”</h2>
<p class="notice" role="status">Copy it now: Berth keeps only a hash and cannot show it again.</p>
<label for="pat-secret">Token</label><pre id="pat-secret">${p.created.secret}</pre>
<button type="button" class="secondary" data-copy="pat-secret">Copy token</button>
<label for="login-command">Log in with it</label><pre id="login-command">${loginCmd}</pre>
<button type="button" class="secondary" data-copy="login-command">Copy command</button>
<script>for(const b of document.querySelectorAll('[data-copy]'))b.addEventListener('click',()=>{navigator.clipboard.writeText(document.getElementById(b.dataset.copy).textContent).then(()=>{b.textContent='Copied'})})</script>
</div>`
    : ''
}
<div class="card"><h2>Signed in as ${p.account.name}</h2>
<p>via <strong>${p.recheck.provider}</strong>${id.email ? html` · ${id.email}` : ''}</p>
<p>Groups: ${id.groups.length ? id.groups.map((g) => html`<span class="tag">${g}</span>`) : html`<span class="muted">none</span>`}</p>
<p class="muted">${
      p.recheck.possible
        ? `Your groups are re-checked with ${p.recheck.provider} every ${p.recheck.minutes} minutes while your tokens are in use; if you lose access there, your tokens lose it too.`
        : `${p.recheck.provider} gave Berth no way to re-check your account, so your tokens keep the groups you had when you signed in until they expire.`
    }</p></div>
${p.admin ? html`<p><a href="/robots">Robot accounts</a> (administrators)</p>` : ''}
<div class="card"><h2>Create a token</h2>
<form method="post" action="/tokens">
<input type="hidden" name="csrf" value="${p.csrf}">
<label for="name">Name</label><input id="name" name="name" maxlength="64" required placeholder="laptop docker">
<label for="expires">Expires after</label><select id="expires" name="expiresInDays">${expiryOptions(p.defaultDays, p.maxDays)}</select>
<fieldset><legend><strong>Restrict (optional)</strong></legend>
<label for="repositories">Repositories (space-separated patterns, e.g. <code>team-a/**</code>)</label><input id="repositories" name="repositories" placeholder="leave empty for all your access">
<label><input type="checkbox" name="actions" value="pull" style="width:auto"> pull</label>
<label><input type="checkbox" name="actions" value="push" style="width:auto"> push</label>
</fieldset>
<button type="submit">Create token</button></form>
<p class="muted">Tired of pasting tokens? The <code>docker-credential-berth</code> helper signs in with a code shown here at <a href="/device">/device</a> and renews its token by itself.</p></div>
<div class="card"><h2>Your tokens</h2>
${
  p.pats.length === 0
    ? html`<p class="muted">No tokens yet.</p>`
    : html`<table><thead><tr><th scope="col">Name</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">Last used</th><th scope="col">Restriction</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead><tbody>
${p.pats.map(
  (t) => html`<tr data-token-id="${t.id}"><td>${t.name}</td><td>${date(t.createdAt)}</td><td>${date(t.expiresAt)}</td><td>${t.lastUsed ? `${date(t.lastUsed.at)} from ${t.lastUsed.from}` : 'never'}</td><td>${restrictionText(t)}</td>
<td><form method="post" action="/tokens/${t.id}/revoke" class="inline"><input type="hidden" name="csrf" value="${p.csrf}"><button class="danger" type="submit" aria-label="Revoke ${t.name}">Revoke</button></form></td></tr>`,
)}</tbody></table>
<form method="post" action="/tokens/revoke-all"><input type="hidden" name="csrf" value="${p.csrf}"><button class="danger" type="submit">Revoke all</button></form>`
}
</div>`,
  );
}
