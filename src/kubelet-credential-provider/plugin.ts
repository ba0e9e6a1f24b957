import { readFileSync } from 'node:fs';
import { parse, UsageError } from '../cli/args.js';
import { durationToSeconds } from '../config/duration.js';
import { goDuration, imageRegistry, parseRequest, RequestError, type CredentialProviderResponse } from './protocol.js';

export const USAGE = `usage: berth-kubelet-credential-provider --registry HOST[:PORT] [options]
  Run by kubelet (CredentialProviderConfig); reads a CredentialProviderRequest on stdin.
  --registry HOST[:PORT]   a Berth-fronted registry this provider answers for (repeatable)
  --user NAME              user name sent with the service-account token: "oidc" (default) or
                           the id of the Berth federation policy for this cluster
  --audience AUD           refuse tokens whose aud lacks AUD (= tokenAttributes.serviceAccountTokenAudience)
  --issuer URL             refuse tokens from other issuers (repeatable)
  --max-cache DURATION     longest cacheDuration answered (default 10m; never past the token's exp)
  --robot-user NAME        for requests without a service-account token (older kubelets):
  --robot-secret-file FILE   answer this robot's secret, read from FILE, for every pod of the node`;

export interface Settings {
  registries: string[];
  user: string;
  audience?: string;
  issuers: string[];
  maxCacheSeconds: number;
  robot?: { user: string; secretFile: string };
}

// A token this close to its exp is answered with cacheDuration 0: kubelet must ask again.
const EXPIRY_MARGIN_SECONDS = 30;

export function parseSettings(argv: string[]): Settings {
  const { values, positionals } = parse(argv, {
    registry: { type: 'string', multiple: true },
    user: { type: 'string' },
    audience: { type: 'string' },
    issuer: { type: 'string', multiple: true },
    'max-cache': { type: 'string' },
    'robot-user': { type: 'string' },
    'robot-secret-file': { type: 'string' },
  });
  if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}\n${USAGE}`);
  const registries = (values.registry ?? []).map((r) => r.toLowerCase().replace(/\/+$/, ''));
  if (!registries.length) throw new UsageError(`--registry is required\n${USAGE}`);
  for (const r of registries) if (!/^[a-z0-9.-]+(:\d{1,5})?(\/[a-z0-9._\/-]+)?$/.test(r)) throw new UsageError(`--registry ${r}: expected HOST[:PORT][/PATH]`);
  let maxCacheSeconds = 600;
  if (values['max-cache'] !== undefined) {
    if (!/^\d+[smh]?$/.test(values['max-cache'])) throw new UsageError('--max-cache: a duration such as 0, 300, 5m or 1h');
    maxCacheSeconds = durationToSeconds(values['max-cache']);
  }
  if ((values['robot-user'] === undefined) !== (values['robot-secret-file'] === undefined)) throw new UsageError('--robot-user and --robot-secret-file go together');
  return {
    registries,
    user: values.user ?? 'oidc',
    ...(values.audience !== undefined ? { audience: values.audience } : {}),
    issuers: values.issuer ?? [],
    maxCacheSeconds,
    ...(values['robot-user'] !== undefined ? { robot: { user: values['robot-user'], secretFile: values['robot-secret-file']! } } : {}),
  };
}

function claimsOf(token: string): Record<string, unknown> {
  try {
    const c: unknown = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
    if (c && typeof c === 'object' && !Array.isArray(c)) return c as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new RequestError('serviceAccountToken has no readable claims');
}

/**
 * Answers one request. The service-account token itself is the password: Berth verifies its
 * signature against the cluster's keys and maps it through a federation policy, so this plugin
 * holds no secret. It only reads the claims to refuse early what Berth would refuse anyway
 * (expired, wrong audience or cluster) with a message in kubelet's log, and to bound the cache.
 */
export function answer(input: string, s: Settings, nowSeconds: number): CredentialProviderResponse {
  const req = parseRequest(input);
  const { host, path } = imageRegistry(req.image);
  const full = `${host}/${path}`;
  const registry = s.registries.find((r) => full === r || full.startsWith(`${r}/`));
  const base = { kind: 'CredentialProviderResponse' as const, apiVersion: req.apiVersion };
  // An image of another registry (a too-wide matchImages): a valid answer with no credentials.
  if (!registry) return { ...base, cacheKeyType: 'Image', cacheDuration: goDuration(0), auth: {} };

  if (req.serviceAccountToken) {
    const c = claimsOf(req.serviceAccountToken);
    if (typeof c.exp !== 'number') throw new RequestError('serviceAccountToken has no exp');
    const left = c.exp - nowSeconds;
    if (left <= 0) throw new RequestError('serviceAccountToken has expired');
    const aud = typeof c.aud === 'string' ? [c.aud] : Array.isArray(c.aud) ? c.aud : [];
    if (s.audience !== undefined && !aud.includes(s.audience)) throw new RequestError(`serviceAccountToken is not for audience ${JSON.stringify(s.audience)}: set tokenAttributes.serviceAccountTokenAudience to it`);
    if (s.issuers.length && !s.issuers.includes(String(c.iss))) throw new RequestError(`serviceAccountToken comes from issuer ${JSON.stringify(String(c.iss).slice(0, 200))}, which this provider is not configured for`);
    return {
      ...base,
      // The narrowest key kubelet offers; with tokenAttributes.cacheType Token kubelet also keys
      // the cache by the token, so one pod's answer is never served to another pod.
      cacheKeyType: 'Image',
      cacheDuration: goDuration(Math.min(s.maxCacheSeconds, left - EXPIRY_MARGIN_SECONDS)),
      auth: { [registry]: { username: s.user, password: req.serviceAccountToken } },
    };
  }
  if (!s.robot) {
    throw new RequestError('the request carries no serviceAccountToken: set tokenAttributes.serviceAccountTokenAudience in the kubelet\'s CredentialProviderConfig (Kubernetes 1.33+), or give --robot-user/--robot-secret-file');
  }
  let secret: string;
  try {
    secret = readFileSync(s.robot.secretFile, 'utf8').trim();
  } catch (e) {
    throw new RequestError(`cannot read the robot secret file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!secret || /[\s\u0000-\u001f]/.test(secret)) throw new RequestError('the robot secret file is empty or holds more than one line');
  // A node-wide credential: the same for every pod, so the registry is the natural cache key.
  return { ...base, cacheKeyType: 'Registry', cacheDuration: goDuration(s.maxCacheSeconds), auth: { [registry]: { username: s.robot.user, password: secret } } };
}
