import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SkopeoResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** User and password for the registry; null means anonymous (`--no-creds`). */
export type Creds = { username: string; password: string } | null;

const TIMEOUT_MS = 90_000;

/**
 * Runs skopeo with a throw-away HOME and XDG dirs and an explicit permissive policy, so neither the
 * machine user's auth.json/docker config nor their policy can change what a test sees. The argv is
 * never printed (it holds --creds); callers report stdout/stderr, which skopeo keeps free of secrets.
 */
export async function skopeo(args: string[]): Promise<SkopeoResult> {
  const home = mkdtempSync(join(tmpdir(), 'berth-skopeo-'));
  try {
    for (const d of ['config', 'run', 'data', 'cache', 'tmp']) mkdirSync(join(home, d), { mode: 0o700 });
    const policy = join(home, 'policy.json');
    writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    const env = {
      PATH: '/usr/bin:/bin',
      HOME: home,
      XDG_CONFIG_HOME: join(home, 'config'),
      XDG_RUNTIME_DIR: join(home, 'run'),
      XDG_DATA_HOME: join(home, 'data'),
      XDG_CACHE_HOME: join(home, 'cache'),
      TMPDIR: join(home, 'tmp'),
      REGISTRY_AUTH_FILE: join(home, 'auth.json'),
    };
    return await new Promise<SkopeoResult>((resolve, reject) => {
      const child = spawn('skopeo', ['--policy', policy, '--command-timeout', '80s', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
      const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot run skopeo: ${e.message}`));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr: signal ? `${stderr}\nkilled by ${signal}` : stderr });
      });
    });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

function credArgs(prefix: '' | 'src-' | 'dest-', creds: Creds): string[] {
  return creds ? [`--${prefix}creds`, `${creds.username}:${creds.password}`] : [`--${prefix}no-creds`];
}

const isRegistry = (ref: string) => ref.startsWith('docker://');

/**
 * skopeo copy between an OCI layout (`oci:DIR[:tag]`) and the plain-http registry (`docker://...`).
 * Digests are preserved so a test can compare what it pushed with what the registry holds.
 */
export function copy(src: string, dst: string, creds: Creds): Promise<SkopeoResult> {
  const args = ['copy', '--preserve-digests', '--retry-times', '0'];
  if (isRegistry(src)) args.push('--src-tls-verify=false', ...credArgs('src-', creds));
  if (isRegistry(dst)) args.push('--dest-tls-verify=false', ...credArgs('dest-', creds));
  args.push(src, dst);
  return skopeo(args);
}

export function inspect(ref: string, creds: Creds): Promise<SkopeoResult> {
  return skopeo(['inspect', '--tls-verify=false', ...credArgs('', creds), ref]);
}

export function listTags(ref: string, creds: Creds): Promise<SkopeoResult> {
  return skopeo(['list-tags', '--tls-verify=false', ...credArgs('', creds), ref]);
}

/** A short description for assertion messages: exit code and stderr, never the argv. */
export function describeResult(r: SkopeoResult): string {
  return `skopeo exited ${r.code}\n${r.stderr.trim()}`;
}
