import type Router from '@koa/router';
import type { Context } from 'koa';
import type { CurrentAccount } from '../../identity/continuous-access.js';
import { RobotError, type RobotRecord, type Robots } from '../../robots/robots.js';
import { httpErrorOf, HttpError } from '../errors.js';
import { robotInput } from './robot-form.js';
import type { WebDeps } from './deps.js';
import { html, layout, sendPage } from './html.js';
import { Sessions } from './session.js';
import { currentViewer } from './viewer.js';
import { signInFor } from './routes.js';
import { shellQuote } from '../../util/shell-quote.js';

const date = (ms: number | null) => (ms ? new Date(ms).toISOString().slice(0, 10) : 'never');

/** What the new-robot form sent, shown again after a refusal. */
interface RobotForm {
  name: string;
  description: string;
  repositories: string;
  actions: string[];
  expiresInDays: string;
}

type RobotField = 'rname' | 'rrepos' | 'ractions' | 'rexp';

function robotFieldOf(message: string): RobotField | undefined {
  if (/names|exists already|declared/.test(message)) return 'rname';
  if (/expires/.test(message)) return 'rexp';
  if (/action/.test(message)) return 'ractions';
  if (/repositor|pattern|glob|regular expression/.test(message)) return 'rrepos';
  return undefined;
}

function robotFormValues(body: Record<string, unknown>): RobotForm {
  const text = (v: unknown) => (typeof v === 'string' ? v.slice(0, 2048) : Array.isArray(v) ? v.filter((x) => typeof x === 'string').join(' ').slice(0, 2048) : '');
  const actions = (Array.isArray(body.actions) ? body.actions : [body.actions]).filter((a): a is string => a === 'pull' || a === 'push');
  return { name: text(body.name), description: text(body.description), repositories: text(body.repositories), actions, expiresInDays: text(body.expiresInDays) };
}

function render(d: WebDeps, account: CurrentAccount, csrf: string, robots: RobotRecord[], msg: { created?: { name: string; secret: string }; error?: string; notice?: string; form?: RobotForm }): string {
  const f = msg.form;
  const field = f && msg.error ? robotFieldOf(msg.error) : undefined;
  const invalid = (id: RobotField) => (field === id ? html` aria-invalid="true" aria-describedby="${id}-error"` : '');
  const beside = (id: RobotField) => (field === id ? html`<p class="error field-error" id="${id}-error" role="alert">${msg.error}</p>` : '');
  const checked = (a: string) => ((f ? f.actions.includes(a) : a === 'pull') ? html` checked` : '');
  const action = (r: RobotRecord, verb: string, label: string, cls = 'secondary') =>
    html`<form method="post" action="/robots/${encodeURIComponent(r.name)}/${verb}" class="inline"><input type="hidden" name="csrf" value="${csrf}"><button class="${cls}" type="submit" aria-label="${label} ${r.name}">${label}</button></form>`;
  return layout(
    { title: 'Robot accounts', appTitle: d.env.appTitle, user: account.identity.username, csrf },
    html`<h1>Robot accounts</h1><p><a href="/tokens">← your tokens</a></p>
${msg.error && !field ? html`<p class="error" role="alert">${msg.error}</p>` : ''}${msg.notice ? html`<p class="notice" role="status">${msg.notice}</p>` : ''}
${
  msg.created
    ? html`<div class="card"><h2>Secret of ${msg.created.name}</h2><p class="notice">Shown once. Use it with <code>docker login -u ${shellQuote(msg.created.name)}</code>.</p><pre id="robot-secret">${msg.created.secret}</pre></div>`
    : ''
}
<div class="card"><h2>New robot</h2><form method="post" action="/robots"><input type="hidden" name="csrf" value="${csrf}">
<label for="rname">Name</label><input id="rname" name="name" required placeholder="deploy-web" value="${f?.name ?? ''}"${invalid('rname')}>${beside('rname')}
<label for="rdesc">Description</label><input id="rdesc" name="description" value="${f?.description ?? ''}">
<label for="rrepos">Repositories (space-separated patterns)</label><input id="rrepos" name="repositories" required placeholder="apps/web" value="${f?.repositories ?? ''}"${invalid('rrepos')}>${beside('rrepos')}
<div id="ractions"${invalid('ractions')}><label><input type="checkbox" name="actions" value="pull" style="width:auto"${checked('pull')}> pull</label>
<label><input type="checkbox" name="actions" value="push" style="width:auto"${checked('push')}> push</label></div>${beside('ractions')}
<label for="rexp">Expires after (days, empty = never)</label><input id="rexp" name="expiresInDays" inputmode="numeric" value="${f?.expiresInDays ?? ''}"${invalid('rexp')}>${beside('rexp')}
<button type="submit">Create robot</button></form></div>
<div class="card"><h2>Robots</h2>${
      robots.length === 0
        ? html`<p class="muted">None yet.</p>`
        : html`<table class="stack"><thead><tr><th scope="col">Name</th><th scope="col">May</th><th scope="col">Expires</th><th scope="col">State</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead><tbody>${robots.map(
            (r) =>
              html`<tr><td data-label="Name">${r.name}<br><span class="muted">${r.description}</span></td><td data-label="May">${r.restriction.actions.join(',')} on ${r.restriction.repositories.join(' ')}</td><td data-label="Expires">${date(r.expiresAt)}</td><td data-label="State">${r.disabled ? 'disabled' : 'enabled'}${r.source === 'config' ? ' (config)' : ''}</td><td>${
                r.source === 'config' ? '' : [action(r, 'rotate', 'Rotate'), r.disabled ? action(r, 'enable', 'Enable') : action(r, 'disable', 'Disable'), action(r, 'delete', 'Delete', 'danger')]
              }</td></tr>`,
          )}</tbody></table>`
    }</div>`,
  );
}

/** The admin page for robots; every action is a CSRF-checked form post. */
export function mountRobotPages(router: Router, d: WebDeps, robots: Robots, isAdmin: (a: CurrentAccount) => boolean): void {
  const guard = async (ctx: Context, post: boolean) => {
    // A session whose account the provider no longer accepts ends here too, like on every page.
    const viewer = await currentViewer(ctx, d);
    if (!viewer) {
      ctx.redirect(signInFor('/robots'));
      return null;
    }
    if (!isAdmin(viewer.account)) throw new HttpError(403, 'DENIED', 'only administrators manage robot accounts');
    const body = ((ctx.request as { body?: unknown }).body ?? {}) as Record<string, unknown>;
    if (post && !Sessions.csrfValid(viewer.session, body.csrf)) throw new HttpError(403, 'CSRF', 'the form was missing its security token; reload the page');
    return { account: viewer.account, csrf: viewer.session.csrf, body };
  };
  const show = async (ctx: Context, g: { account: CurrentAccount; csrf: string }, msg: Parameters<typeof render>[4] = {}, status = 200) => {
    sendPage(ctx, status, render(d, g.account, g.csrf, await robots.list(), msg));
  };
  router.get('/robots', async (ctx) => {
    const g = await guard(ctx, false);
    if (g) await show(ctx, g);
  });
  router.post('/robots', async (ctx) => {
    const g = await guard(ctx, true);
    if (!g) return;
    try {
      const { secret, record } = await robots.create({ ...robotInput(g.body), owner: g.account.name });
      d.log.info({ audit: 'robot.create', account: g.account.name, robot: record.name, via: 'web' }, 'robot created');
      await show(ctx, g, { created: { name: record.name, secret } }, 201);
    } catch (e) {
      if (e instanceof RobotError || e instanceof HttpError) return show(ctx, g, { error: e.message, form: robotFormValues(g.body) }, 400);
      throw e;
    }
  });
  router.post('/robots/:name/:verb', async (ctx) => {
    const g = await guard(ctx, true);
    if (!g) return;
    const name = ctx.params.name!;
    try {
      switch (ctx.params.verb) {
        case 'rotate': {
          const { secret } = await robots.rotate(name);
          d.log.info({ audit: 'robot.rotate', account: g.account.name, robot: name, via: 'web' }, 'robot rotated');
          return show(ctx, g, { created: { name, secret } });
        }
        case 'disable':
        case 'enable':
          await robots.setDisabled(name, ctx.params.verb === 'disable');
          break;
        case 'delete':
          await robots.delete(name);
          break;
        default:
          throw new HttpError(404, 'NOT_FOUND', 'no such action');
      }
      d.log.info({ audit: `robot.${ctx.params.verb}`, account: g.account.name, robot: name, via: 'web' }, `robot ${ctx.params.verb}`);
      await show(ctx, g, { notice: `${name}: ${ctx.params.verb}d.` });
    } catch (e) {
      if (e instanceof RobotError) return show(ctx, g, { error: e.message }, httpErrorOf(e)!.status);
      throw e;
    }
  });
}
