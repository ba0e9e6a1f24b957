import yaml from 'js-yaml';
import { parse, UsageError } from './args.js';
import { robotApi } from './robot.js';

export const PULL_SECRET_USAGE = `usage: berth pull-secret --robot NAME --registry HOST[:PORT] [options] [--server URL] [--token PAT]
  Rotates robot NAME (the previous secret stops working) and prints a kubernetes.io/dockerconfigjson
  Secret holding the new one, for: berth pull-secret … | kubectl apply -f -
  --namespace NS            metadata.namespace of the Secret
  --secret-name NAME        metadata.name (default berth-pull-ROBOT)
  --create --repo PATTERN…  create the robot first if it does not exist (pull-only unless --action)
  --action ACTION…          with --create (default pull)
  --expires-in-days N       with --create: the robot expires even if the rotation job stops
  --output yaml|json        (default yaml)`;

const SECRET_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** The Secret kubelet reads for imagePullSecrets: a Docker config.json with one registry's login. */
export function dockerConfigSecret(opts: { name: string; namespace?: string; registry: string; username: string; password: string; robot: string; rotatedAt: Date }) {
  const auth = Buffer.from(`${opts.username}:${opts.password}`).toString('base64');
  const config = { auths: { [opts.registry]: { username: opts.username, password: opts.password, auth } } };
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: opts.name,
      ...(opts.namespace ? { namespace: opts.namespace } : {}),
      labels: { 'app.kubernetes.io/managed-by': 'berth' },
      annotations: { 'berth.dev/robot': opts.robot, 'berth.dev/rotated-at': opts.rotatedAt.toISOString() },
    },
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': Buffer.from(JSON.stringify(config)).toString('base64') },
  };
}

/**
 * `berth pull-secret`: for clusters where no kubelet plugin can be installed. Each run rotates the
 * robot through the same robot API as `berth robot rotate`, so a credential lives only until the
 * next run (a CronJob's schedule) and a leaked Secret stops working at the next rotation.
 */
export async function pullSecretCommand(argv: string[], out: (s: string) => void): Promise<number> {
  const { values, positionals } = parse(argv, {
    server: { type: 'string' },
    token: { type: 'string' },
    robot: { type: 'string' },
    registry: { type: 'string' },
    namespace: { type: 'string' },
    'secret-name': { type: 'string' },
    create: { type: 'boolean' },
    repo: { type: 'string', multiple: true },
    action: { type: 'string', multiple: true },
    'expires-in-days': { type: 'string' },
    output: { type: 'string' },
  });
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}\n${PULL_SECRET_USAGE}`);
  const server = (values.server ?? process.env.BERTH_URL ?? '').replace(/\/$/, '');
  const token = values.token ?? process.env.BERTH_TOKEN ?? '';
  if (!values.robot || !values.registry) throw new UsageError(PULL_SECRET_USAGE);
  if (!server) throw new UsageError('which Berth? --server URL or BERTH_URL');
  if (!token) throw new UsageError('an administrator\'s personal access token is needed: --token or BERTH_TOKEN');
  const output = values.output ?? 'yaml';
  if (output !== 'yaml' && output !== 'json') throw new UsageError('--output must be yaml or json');
  if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(values.registry)) throw new UsageError('--registry wants HOST[:PORT], as in the image names (registry.example.com)');
  const short = values.robot.replace(/^robot:/, '');
  const secretName = values['secret-name'] ?? `berth-pull-${short.replace(/[^a-z0-9.-]/g, '-')}`;
  if (!SECRET_NAME.test(secretName)) throw new UsageError(`--secret-name ${secretName} is not a valid Kubernetes object name`);
  if (values.create && !values.repo?.length) throw new UsageError('--create needs --repo PATTERN (may repeat)');

  const call = robotApi(server, token);
  const enc = encodeURIComponent(`robot:${short}`);
  let created: Record<string, unknown> | undefined;
  if (values.create) {
    try {
      created = await call('POST', '', {
        name: short,
        repositories: values.repo,
        actions: values.action?.length ? values.action : ['pull'],
        description: `pull secret ${secretName}${values.namespace ? ` in ${values.namespace}` : ''}`,
        ...(values['expires-in-days'] ? { expiresInDays: Number(values['expires-in-days']) } : {}),
      });
    } catch (e) {
      // Already there (the usual case for every run after the first): rotate it instead.
      if (!(e instanceof UsageError && e.message.startsWith('409'))) throw e;
    }
  }
  const r = created ?? (await call('POST', `/${enc}/rotate`));
  const secret = dockerConfigSecret({
    name: secretName,
    ...(values.namespace ? { namespace: values.namespace } : {}),
    registry: values.registry,
    username: String(r.name),
    password: String(r.secret),
    robot: String(r.name),
    rotatedAt: new Date(),
  });
  out(output === 'json' ? `${JSON.stringify(secret, null, 2)}\n` : yaml.dump(secret, { lineWidth: -1 }));
  return 0;
}
