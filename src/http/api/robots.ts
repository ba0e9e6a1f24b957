import type Router from '@koa/router';
import type { Context } from 'koa';
import type { CurrentAccount } from '../../identity/continuous-access.js';
import { robotName, RobotError, type RobotRecord, type RobotUsage, type Robots } from '../../robots/robots.js';
import { declareErrorFormat, HttpError, httpErrorOf } from '../errors.js';
import type { WebDeps } from '../web/deps.js';
import { apiCaller, jsonBody } from './caller.js';
import { robotInput } from '../web/robot-form.js';

export interface RobotApiDeps {
  web: WebDeps;
  robots: Robots;
  isAdmin(account: CurrentAccount): boolean;
}

export function robotView(r: RobotRecord & { lastUsed?: RobotUsage }) {
  return {
    name: r.name,
    owner: r.owner,
    description: r.description,
    repositories: r.restriction.repositories,
    actions: r.restriction.actions,
    createdAt: r.createdAt ? new Date(r.createdAt).toISOString() : null,
    expiresAt: r.expiresAt ? new Date(r.expiresAt).toISOString() : null,
    disabled: r.disabled,
    source: r.source,
    lastUsedAt: r.lastUsed ? new Date(r.lastUsed.at).toISOString() : null,
    lastUsedFrom: r.lastUsed?.from ?? null,
  };
}

/**
 * `/api/v1/robots`, for admins only (config `admin.groups` / `admin.accounts`): create, list,
 * rotate, disable/enable, delete. Secrets are returned once, by create and rotate.
 */
export function mountRobotApi(router: Router, d: RobotApiDeps): void {
  declareErrorFormat(router, '/api/', 'registry');
  const admin = async (ctx: Context): Promise<CurrentAccount> => {
    const c = await apiCaller(ctx, d.web);
    if (c.pat?.restriction) throw new HttpError(403, 'DENIED', 'a restricted token cannot manage robots');
    if (!d.isAdmin(c.account)) throw new HttpError(403, 'DENIED', 'only administrators manage robot accounts');
    return c.account;
  };
  const guard = async (f: () => Promise<void>) => {
    try {
      await f();
    } catch (e) {
      if (e instanceof RobotError) throw httpErrorOf(e);
      throw e;
    }
  };
  const audit = (event: string, who: CurrentAccount, name: string) => d.web.log.info({ audit: event, account: who.name, robot: name }, event);

  router.get('/api/v1/robots', async (ctx) => {
    await admin(ctx);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { robots: (await d.robots.list()).map(robotView) };
  });

  router.post('/api/v1/robots', async (ctx) => {
    const who = await admin(ctx);
    const input = robotInput(jsonBody(ctx, '{"name": "deploy-web", "repositories": ["apps/web"], "actions": ["pull", "push"], "expiresInDays": 90}'));
    await guard(async () => {
      const { secret, record } = await d.robots.create({ ...input, owner: who.name });
      audit('robot.create', who, record.name);
      ctx.status = 201;
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { ...robotView(record), secret };
    });
  });

  const named = (ctx: Context) => {
    try {
      return robotName(decodeURIComponent(ctx.params.name ?? ''));
    } catch (e) {
      throw new HttpError(400, 'INVALID_REQUEST', (e as Error).message);
    }
  };

  router.post('/api/v1/robots/:name/rotate', async (ctx) => {
    const who = await admin(ctx);
    await guard(async () => {
      const { secret, record } = await d.robots.rotate(named(ctx));
      audit('robot.rotate', who, record.name);
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { ...robotView(record), secret };
    });
  });

  for (const [verb, disabled] of [['disable', true], ['enable', false]] as const) {
    router.post(`/api/v1/robots/:name/${verb}`, async (ctx) => {
      const who = await admin(ctx);
      await guard(async () => {
        const record = await d.robots.setDisabled(named(ctx), disabled);
        audit(`robot.${verb}`, who, record.name);
        ctx.body = robotView(record);
      });
    });
  }

  router.delete('/api/v1/robots/:name', async (ctx) => {
    const who = await admin(ctx);
    await guard(async () => {
      const name = named(ctx);
      await d.robots.delete(name);
      audit('robot.delete', who, name);
      ctx.status = 204;
    });
  });
}
