import type { CurrentAccount } from '../../identity/continuous-access.js';
import type { PatRecord, PatUsage } from '../../tokens/pats.js';
import { html, layout, type Html } from './html.js';
import { shellQuote } from '../../util/shell-quote.js';
import { summarizeAccess, type AccessLine } from '../../policy/explain.js';

export interface ConnectorLink {
  id: string;
  name: string;
}

export interface PageEnv {
  appTitle: string;
  registryHost: string;
  /** The zero-setup demo (`demo: true`): the sign-in page names its accounts. */
  demo?: boolean;
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
  ['sign_in_required', 'Please sign in to open that page. You will be taken there afterwards.'],
]);
/** Codes that are news rather than failures: shown as a notice, not an alert. */
const NOTICE_CODES: ReadonlySet<string> = new Set(['signed_out', 'sign_in_required']);

/** Whether a `?error=` code's message is a notice (signed out, sign-in needed) rather than an error. */
export function signInMessageIsNotice(code: unknown): boolean {
  return typeof code === 'string' && NOTICE_CODES.has(code);
}
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

export function signInPage(
  env: PageEnv,
  opts: { connectors: ConnectorLink[]; localLogin: boolean; csrf: string; returnTo: string; error?: string | undefined; notice?: string | undefined; username?: string | undefined },
): string {
  const rt = encodeURIComponent(opts.returnTo);
  const failed = Boolean(opts.error && opts.username !== undefined);
  return layout(
    { title: 'Sign in', appTitle: env.appTitle },
    html`<h1>Sign in to ${env.appTitle}</h1>
${message('notice', opts.notice)}${failed ? '' : message('error', opts.error)}
<div class="card"><h2>With your company account</h2>
${opts.connectors.length === 0 ? html`<p class="muted">No identity providers are configured.</p>` : ''}
${opts.connectors.map((c) => html`<a class="button" href="/login/${c.id}?returnTo=${rt}">Sign in with ${c.name}</a> `)}
</div>
${
  opts.localLogin
    ? html`<div class="card"><h2>With a local account</h2>
<form method="post" action="/login/local">
<input type="hidden" name="csrf" value="${opts.csrf}"><input type="hidden" name="returnTo" value="${opts.returnTo}">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required value="${opts.username ?? ''}">
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required${failed ? html` aria-invalid="true" aria-describedby="password-error"` : ''}>
${failed ? html`<p class="error field-error" id="password-error" role="alert">${opts.error}</p>` : ''}
<button type="submit">Sign in</button></form>
${env.demo ? html`<p class="muted" id="demo-accounts">Demo: the local account <code>admin</code> with password <code>demo</code> may do everything. With Demo SSO, sign in as <code>alice</code> / <code>alice</code> (platform team) or <code>bob</code> / <code>bob</code> (team-a); sign out first to switch.</p>` : ''}</div>`
    : ''
}
<p class="muted">After signing in you can create a personal access token to use as the password of <code>docker login</code>.</p>`,
  );
}

/** After Berth's own sign-out: on to the provider's end-session page (RP-initiated logout). */
export function continueSignOutPage(env: PageEnv, providerName: string, url: string): string {
  return layout(
    { title: 'Signing out', appTitle: env.appTitle },
    html`<h1>Signed out of ${env.appTitle}</h1><div class="card"><p class="notice" role="status">Now signing you out of ${providerName} too, so that the next sign-in asks who you are.</p>
<p><a class="button" id="continue-sign-out" href="${url}">Continue to ${providerName}</a></p></div>
<script>location.replace(document.getElementById('continue-sign-out').href)</script>`,
  );
}

export function errorPage(env: PageEnv, status: number, title: string, text: string): string {
  return layout({ title, appTitle: env.appTitle }, html`<h1>${title}</h1><div class="card"><p class="error" role="alert">${text}</p><p><a class="button" href="/" id="home-link">Go to the start page</a></p></div>`);
}

function expiryOptions(defaultDays: number, maxDays: number): Html[] {
  const choices = [...new Set([1, 7, 30, 60, 90, 180, 365, defaultDays, maxDays])].filter((d) => d >= 1 && d <= maxDays).sort((a, b) => a - b);
  return choices.map((d) => html`<option value="${d}"${d === defaultDays ? html` selected` : ''}>${d} day${d === 1 ? '' : 's'}</option>`);
}

function restrictionText(p: PatRecord): string {
  return p.restriction ? `${p.restriction.actions.join(',')} on ${p.restriction.repositories.join(' ')}` : 'none (all your access)';
}

export type TokenField = 'name' | 'expiresInDays' | 'repositories' | 'actions';

/** What was typed into the create form, shown again after a refusal. */
export interface TokenFormValues {
  name: string;
  expiresInDays: string;
  repositories: string;
  actions: string[];
}

export interface TokensPageInput {
  account: CurrentAccount;
  pats: (PatRecord & { lastUsed?: PatUsage })[];
  csrf: string;
  defaultDays: number;
  maxDays: number;
  /** `local`: a static user from Berth's config, whose groups no identity provider holds. */
  recheck: { possible: boolean; minutes: number; provider: string; local?: boolean };
  /** What the ACL grants this person, from src/policy/explain.ts (the code behind `acl explain`). */
  access: AccessLine[];
  admin?: boolean;
  created?: { secret: string; record: PatRecord } | undefined;
  notice?: string | undefined;
  error?: string | undefined;
  /** A refused create form: what was typed and the message beside the field it is about. */
  form?: TokenFormValues | undefined;
  fieldError?: { field: TokenField | undefined; message: string } | undefined;
}

function recheckText(r: TokensPageInput['recheck']): string {
  if (r.local) return `This is a local account: its groups come from Berth's configuration, not from an identity provider, and a change there applies to your tokens at once.`;
  return r.possible
    ? `Your groups are re-checked with ${r.provider} every ${r.minutes} minutes while your tokens are in use; if you lose access there, your tokens lose it too.`
    : `${r.provider} gave Berth no way to re-check your account, so your tokens keep the groups you had when you signed in until they expire.`;
}

function accessCard(lines: AccessLine[]): Html {
  return html`<div class="card" id="your-access"><h2>What you may do</h2>
<p id="access-summary">You may <strong>${summarizeAccess(lines)}</strong>.</p>
${
  lines.length
    ? html`<ul class="muted">${lines.map((l) => html`<li>${l.text}${l.comment ? html` — ${l.comment}` : ''} <span class="muted">(rule ${l.rule + 1})</span></li>`)}</ul>`
    : ''
}
<p class="muted">Where several lines concern the same repository, the first one decides. A token with a restriction gets at most what it names, and never more than this.</p></div>`;
}

export function tokensPage(env: PageEnv, p: TokensPageInput): string {
  const id = p.account.identity;
  // Pasted into a shell: every value is one quoted word, so a user name like `frank$(touch x)` stays text.
  const loginCmd = p.created ? `printf '%s' ${shellQuote(p.created.secret)} | docker login ${shellQuote(env.registryHost)} -u ${shellQuote(p.created.record.username)} --password-stdin` : '';
  const f = p.form;
  const fe = p.fieldError;
  const invalid = (field: TokenField) => (fe?.field === field ? html` aria-invalid="true" aria-describedby="${field}-error"` : '');
  const beside = (field: TokenField) => (fe?.field === field ? html`<p class="error field-error" id="${field}-error" role="alert">${fe.message}</p>` : '');
  const checked = (a: string) => (f?.actions.includes(a) ? html` checked` : '');
  return layout(
    { title: 'Access tokens', appTitle: env.appTitle, user: p.account.name, csrf: p.csrf },
    html`<h1>Access tokens</h1>
${message('notice', p.notice)}${message('error', p.error)}${fe && !fe.field ? message('error', fe.message) : ''}
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
<p class="muted" id="recheck">${recheckText(p.recheck)}</p></div>
${accessCard(p.access)}
${p.admin ? html`<p><a href="/robots">Robot accounts</a> (administrators)</p>` : ''}
<div class="card"><h2>Create a token</h2>
<form method="post" action="/tokens">
<input type="hidden" name="csrf" value="${p.csrf}">
<label for="name">Name</label><input id="name" name="name" maxlength="64" required placeholder="laptop docker" value="${f?.name ?? ''}"${invalid('name')}>${beside('name')}
<label for="expires">Expires after</label><select id="expires" name="expiresInDays"${invalid('expiresInDays')}>${expiryOptions(f && /^\d+$/.test(f.expiresInDays) ? Number(f.expiresInDays) : p.defaultDays, p.maxDays)}</select>${beside('expiresInDays')}
<fieldset><legend><strong>Restrict (optional)</strong></legend>
<label for="repositories">Repositories (space-separated patterns, e.g. <code>team-a/**</code>)</label><input id="repositories" name="repositories" placeholder="leave empty for all your access" value="${f?.repositories ?? ''}"${invalid('repositories')}>${beside('repositories')}
<div id="actions"${invalid('actions')}><label><input type="checkbox" name="actions" value="pull" style="width:auto"${checked('pull')}> pull</label>
<label><input type="checkbox" name="actions" value="push" style="width:auto"${checked('push')}> push</label></div>${beside('actions')}
</fieldset>
<button type="submit">Create token</button></form>
<p class="muted">Tired of pasting tokens? The <code>docker-credential-berth</code> helper signs in with a code shown here at <a href="/device">/device</a> and renews its token by itself.</p></div>
<div class="card" id="token-list"><h2>Your tokens</h2>
${
  p.pats.length === 0
    ? html`<p class="muted">No tokens yet.</p>`
    : html`<table class="stack"><thead><tr><th scope="col">Name</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">Last used</th><th scope="col">Restriction</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead><tbody>
${p.pats.map(
  (t) => html`<tr data-token-id="${t.id}"><td data-label="Name">${t.name}</td><td data-label="Created">${date(t.createdAt)}</td><td data-label="Expires">${date(t.expiresAt)}</td><td data-label="Last used">${t.lastUsed ? `${date(t.lastUsed.at)} from ${t.lastUsed.from}` : 'never'}</td><td data-label="Restriction">${restrictionText(t)}</td>
<td><form method="post" action="/tokens/${t.id}/revoke" class="inline"><input type="hidden" name="csrf" value="${p.csrf}"><button class="danger" type="submit" aria-label="Revoke ${t.name}">Revoke</button></form></td></tr>`,
)}</tbody></table>
<p><a class="button danger" href="/tokens/revoke-all">Revoke all…</a></p>`
}
</div>`,
  );
}

/** Asks before "Revoke all": every client using one of the tokens loses access at once. */
export function revokeAllPage(env: PageEnv, p: { account: CurrentAccount; csrf: string; pats: PatRecord[] }): string {
  const n = p.pats.length;
  return layout(
    { title: 'Revoke all tokens?', appTitle: env.appTitle, user: p.account.name, csrf: p.csrf },
    html`<h1>Revoke all tokens?</h1><div class="card">${
      n === 0
        ? html`<p>You have no tokens.</p><p><a href="/tokens">Back to your tokens</a></p>`
        : html`<p class="error" role="alert">This revokes all ${n} of your tokens at once: every <code>docker login</code>, CI job and helper using one of them loses access, and it cannot be undone.</p>
<ul>${p.pats.map((t) => html`<li>${t.name}</li>`)}</ul>
<form method="post" action="/tokens/revoke-all"><input type="hidden" name="csrf" value="${p.csrf}"><input type="hidden" name="confirm" value="yes">
<button class="danger" type="submit">Yes, revoke all ${n} token${n === 1 ? '' : 's'}</button> <a class="button secondary" href="/tokens">Cancel</a></form>`
    }</div>`,
  );
}
