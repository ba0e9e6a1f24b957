import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { freePort } from './redis.js';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface RegistryOptions {
  /** Berth's token endpoint URL, e.g. http://127.0.0.1:PORT/auth. */
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate(s) whose keys may sign tokens. */
  rootCertBundlePath: string;
  /** Registry 3.x reads a JWKS file; 2.8 ignores unknown token options, so passing it is harmless. */
  jwksPath?: string;
}

export interface RunningRegistry {
  url: string;
  /** 127.0.0.1:PORT, as used in image references. */
  host: string;
  dataDir: string;
  /** Everything the registry printed so far (for diagnostics when a test fails). */
  log(): string;
  stop(): Promise<void>;
}

const MAX_LOG_CHARS = 200_000;
const START_TIMEOUT_MS = 20_000;

function registryConfig(opts: RegistryOptions, addr: string, dataDir: string): string {
  const token: Record<string, string> = {
    realm: opts.realm,
    service: opts.service,
    issuer: opts.issuer,
    rootcertbundle: opts.rootCertBundlePath,
  };
  if (opts.jwksPath) token.jwks = opts.jwksPath;
  return yaml.dump({
    version: 0.1,
    log: { level: 'info', formatter: 'text', accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: join(dataDir, 'storage') },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: { addr, secret: randomBytes(16).toString('hex') },
    health: { storagedriver: { enabled: false } },
    auth: { token },
  });
}

async function waitForChallenge(url: string, child: ChildProcess, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (exited()) throw new Error(`registry exited during start (code ${child.exitCode})`);
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      const challenge = res.headers.get('www-authenticate') ?? '';
      if (res.status === 401 && /^Bearer realm=/.test(challenge)) return;
      last = `status ${res.status}, WWW-Authenticate ${JSON.stringify(challenge)}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`registry did not answer 401 with a Bearer challenge within ${START_TIMEOUT_MS} ms (${last})`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Runs the real distribution registry with token auth pointing at Berth, on a free loopback port.
 * The environment is reduced to PATH because the registry reads every REGISTRY_* variable as config.
 * A port taken between freePort() and the registry's bind is retried with another one.
 */
export async function startRegistry(opts: RegistryOptions): Promise<RunningRegistry> {
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-registry-'));
  let logText = '';
  const append = (chunk: Buffer) => {
    logText += chunk.toString('utf8');
    if (logText.length > MAX_LOG_CHARS) logText = logText.slice(-MAX_LOG_CHARS);
  };
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const configPath = join(dataDir, 'config.yml');
    writeFileSync(configPath, registryConfig(opts, host, dataDir));
    const child = spawn(REGISTRY_BIN, ['serve', configPath], { env: { PATH: '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let exited = false;
    child.on('exit', () => {
      exited = true;
    });
    child.on('error', (e) => {
      exited = true;
      append(Buffer.from(`spawn error: ${e.message}\n`));
    });
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    const url = `http://${host}`;
    try {
      await waitForChallenge(url, child, () => exited);
    } catch (e) {
      lastError = e as Error;
      await stopChild(child);
      continue;
    }
    return {
      url,
      host,
      dataDir,
      log: () => logText,
      async stop() {
        await stopChild(child);
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  }
  rmSync(dataDir, { recursive: true, force: true });
  throw new Error(`${lastError?.message ?? 'registry did not start'}\n--- registry log ---\n${logText}`);
}

/** The parameters of a registry's `WWW-Authenticate: Bearer realm="..",service="..",scope=".."`. */
export function parseBearerChallenge(header: string | null): Record<string, string> {
  if (!header || !/^Bearer\s/i.test(header)) throw new Error(`not a Bearer challenge: ${JSON.stringify(header)}`);
  const params: Record<string, string> = {};
  for (const m of header.slice(7).matchAll(/([A-Za-z_]+)="((?:[^"\\]|\\.)*)"/g)) params[m[1]!] = m[2]!.replace(/\\(.)/g, '$1');
  return params;
}

export function basicAuth(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

/** The payload and header of a JWT, without verifying it (the registry does that). */
export function decodeJwt(token: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [h, p] = token.split('.');
  if (!h || !p) throw new Error('not a JWT');
  return { header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')), payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) };
}

/**
 * The token dance a registry client does: call the registry, take the 401 challenge, ask the realm for a
 * token with the challenge's service and scope (Basic auth when creds are given), call again with it.
 */
export async function registryFetchWithToken(
  registryUrl: string,
  path: string,
  creds: { username: string; password: string } | null,
  init: RequestInit = {},
): Promise<{ challenge: Record<string, string>; tokenStatus: number; token: string | undefined; response: Response }> {
  const first = await fetch(registryUrl + path, init);
  await first.arrayBuffer();
  if (first.status !== 401) throw new Error(`expected a 401 challenge from ${path}, got ${first.status}`);
  const challenge = parseBearerChallenge(first.headers.get('www-authenticate'));
  const q = new URLSearchParams({ service: challenge.service ?? '' });
  if (challenge.scope) for (const s of challenge.scope.split(' ')) q.append('scope', s);
  const tokenRes = await fetch(`${challenge.realm}?${q}`, creds ? { headers: { Authorization: basicAuth(creds.username, creds.password) } } : {});
  const body = (await tokenRes.json()) as { token?: string };
  const headers = new Headers(init.headers);
  if (body.token) headers.set('Authorization', `Bearer ${body.token}`);
  const response = await fetch(registryUrl + path, { ...init, headers });
  return { challenge, tokenStatus: tokenRes.status, token: body.token, response };
}
