import { mintSecret } from '../tokens/secret-format.js';
import { ROBOT_PREFIX } from '../robots/robots.js';
import { sha256Hex } from '../util/secret.js';
import { shellQuote } from '../util/shell-quote.js';
import { CliError, parse, UsageError } from './args.js';
import { USAGES } from './usage.js';

/** A caller of a running Berth's /api/v1/robots with an admin's PAT; API errors become UsageErrors with the server's message. */
export function robotApi(server: string, token: string) {
  return async (method: string, path: string, body?: unknown): Promise<Record<string, unknown>> => {
    let res: Response;
    try {
      res = await fetch(`${server}/api/v1/robots${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
    } catch (e) {
      const cause = (e as Error & { cause?: Error }).cause?.message;
      throw new CliError(`cannot reach ${server}: ${cause ?? (e as Error).message}`);
    }
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      if (text) json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      // A proxy's HTML error page, say: the status line is all there is to report.
      // Not Berth (a proxy's error page, a wrong URL): say so instead of a JSON stack trace.
      throw new CliError(`${server}/api/v1/robots answered ${res.status} with something that is not JSON; is --server Berth's URL?`);
    }
    if (!res.ok) {
      const msg = (json.errors as { message: string }[] | undefined)?.[0]?.message ?? res.statusText;
      // Exit 2 like a usage error: test/e2e/robots.test.ts relies on it for a refused request.
      throw new UsageError(`${res.status}: ${msg}`);
    }
    return json;
  };
}

/** `berth robot …`: talks to a running Berth's /api/v1/robots with an admin's PAT. */
export async function robotCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'secret') {
    if (rest.length) throw new UsageError(`robot secret takes no arguments, got ${rest[0]}`);
    const secret = mintSecret(ROBOT_PREFIX);
    out(`secret:       ${secret}\nsecretSHA256: ${sha256Hex(secret)}\n(put the hash in the robot's config entry; hand the secret to the automation; it is not stored anywhere)\n`);
    return 0;
  }
  const { values, positionals } = parse(rest, {
    server: { type: 'string' },
    token: { type: 'string' },
    repo: { type: 'string', multiple: true },
    action: { type: 'string', multiple: true },
    description: { type: 'string' },
    'expires-in-days': { type: 'string' },
  });
  const server = (values.server ?? process.env.BERTH_URL ?? '').replace(/\/$/, '');
  const token = values.token ?? process.env.BERTH_TOKEN ?? '';
  if (!sub || !['list', 'create', 'rotate', 'disable', 'enable', 'delete'].includes(sub)) throw new UsageError(USAGES.robot);
  if (!server) throw new UsageError('which Berth? --server URL or BERTH_URL');
  if (!token) throw new UsageError('an administrator\'s personal access token is needed: --token or BERTH_TOKEN');
  const name = positionals[0];
  if (sub !== 'list' && !name) throw new UsageError(`robot ${sub} needs a NAME`);
  const call = robotApi(server, token);
  const enc = encodeURIComponent(name ?? '');
  switch (sub) {
    case 'list': {
      const { robots } = (await call('GET', '')) as { robots: Record<string, unknown>[] };
      for (const r of robots) out(`${r.name}\t${(r.actions as string[]).join(',')} on ${(r.repositories as string[]).join(' ')}\t${r.disabled ? 'disabled' : 'enabled'}\texpires ${r.expiresAt ?? 'never'}\tlast used ${r.lastUsedAt ?? 'never'}\n`);
      return 0;
    }
    case 'create': {
      if (!values.repo?.length || !values.action?.length) throw new UsageError('robot create needs --repo PATTERN and --action ACTION (each may repeat)');
      const r = await call('POST', '', { name, repositories: values.repo, actions: values.action, description: values.description ?? '', ...(values['expires-in-days'] ? { expiresInDays: Number(values['expires-in-days']) } : {}) });
      out(`created ${r.name}\nsecret (shown once): ${r.secret}\nuse: docker login -u ${shellQuote(String(r.name))} --password-stdin <<< "$SECRET"\n`);
      return 0;
    }
    case 'rotate': {
      const r = await call('POST', `/${enc}/rotate`);
      out(`rotated ${r.name}; the old secret no longer works\nnew secret (shown once): ${r.secret}\n`);
      return 0;
    }
    case 'disable':
    case 'enable':
      await call('POST', `/${enc}/${sub}`);
      out(`${sub}d ${name}\n`);
      return 0;
    case 'delete':
      await call('DELETE', `/${enc}`);
      out(`deleted ${name}\n`);
      return 0;
  }
  return 2;
}
