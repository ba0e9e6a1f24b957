import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { skopeo, type SkopeoResult } from './skopeo.js';

export const DOCKERD = '/usr/sbin/dockerd';
/** Debian's docker.io client, the same 20.10 as its daemon (the machine image may carry a newer one in /usr/local/bin). */
export const DOCKER_CLI = '/usr/bin/docker';
export const CONTAINERD = '/usr/bin/containerd';
export const CTR = '/usr/bin/ctr';

const START_TIMEOUT_MS = 45_000;
const MAX_LOG_CHARS = 200_000;
/** Daemon binaries dockerd looks up by name: its managed containerd, the shim, runc, docker-init. */
const DAEMON_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

export interface RunningDaemon {
  /** unix://… for DOCKER_HOST, skopeo's --dest-daemon-host and ctr's --address (without the scheme). */
  host: string;
  socket: string;
  pid: number;
  dir: string;
  log(): string;
  stop(): Promise<void>;
}

/** Fails (never skips) with the reason a daemon cannot run here: CI installs docker.io, so this is a broken machine. */
function preflight(binary: string): void {
  if (process.getuid?.() !== 0) throw new Error(`${binary} must run as root for this test (uid ${process.getuid?.()}); CI runs as root`);
  if (!existsSync(binary)) throw new Error(`${binary} is missing: apt-get install docker.io (.ci/run installs it)`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** GET over a unix socket; resolves with the status, or rejects when nothing listens yet. */
function socketGet(socket: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: 'GET', timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function waitUntil(ready: () => Promise<boolean>, exited: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exited()) throw new Error(`${what} exited during start`);
    if (await ready().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`${what} did not become ready within ${START_TIMEOUT_MS} ms`);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function launch(binary: string, args: string[], dir: string, what: string, ready: (exited: () => boolean) => Promise<void>): Promise<{ child: ChildProcess; log: () => string }> {
  let logText = '';
  const append = (chunk: Buffer) => {
    logText += chunk.toString('utf8');
    if (logText.length > MAX_LOG_CHARS) logText = logText.slice(-MAX_LOG_CHARS);
  };
  const child = spawn(binary, args, { env: { PATH: DAEMON_PATH, HOME: dir }, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let exited = false;
  child.on('exit', () => (exited = true));
  child.on('error', (e) => {
    exited = true;
    append(Buffer.from(`spawn error: ${e.message}\n`));
  });
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  return ready(() => exited).then(
    () => ({ child, log: () => logText }),
    async (e: Error) => {
      await stopChild(child, 5000);
      throw new Error(`${e.message}\n--- ${what} log ---\n${logText.slice(-20_000)}`);
    },
  );
}

/**
 * A private Docker Engine for one test file: its own socket, data and exec roots under a temp dir,
 * vfs storage (no overlay mounts to clean up), no bridge, no iptables, no daemon.json from the
 * machine. dockerd starts and stops its own managed containerd inside the exec root; stop() ends
 * dockerd by PID, then that containerd by the PID it recorded, should dockerd have died first.
 */
export async function startDockerd(): Promise<RunningDaemon> {
  preflight(DOCKERD);
  // Short paths: unix socket names are limited to 107 bytes, and containerd's live under the exec root.
  const dir = mkdtempSync(join('/tmp', 'bd-'));
  const socket = join(dir, 'docker.sock');
  const configFile = join(dir, 'daemon.json');
  writeFileSync(configFile, '{}\n');
  const args = [
    `--config-file=${configFile}`,
    `--data-root=${join(dir, 'data')}`,
    `--exec-root=${join(dir, 'exec')}`,
    `--pidfile=${join(dir, 'docker.pid')}`,
    `--host=unix://${socket}`,
    '--storage-driver=vfs',
    '--bridge=none',
    '--iptables=false',
    '--ip-masq=false',
    '--userland-proxy=false',
  ];
  let child: ChildProcess;
  let log: () => string;
  try {
    ({ child, log } = await launch(DOCKERD, args, dir, 'dockerd', (exited) => waitUntil(async () => (await socketGet(socket, '/_ping')) === 200, exited, 'dockerd')));
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const managedPidFile = join(dir, 'exec', 'containerd', 'containerd.pid');
  return {
    host: `unix://${socket}`,
    socket,
    pid: child.pid!,
    dir,
    log,
    async stop() {
      const managed = existsSync(managedPidFile) ? Number(readFileSync(managedPidFile, 'utf8').trim()) : 0;
      await stopChild(child, 20_000);
      if (managed > 0 && alive(managed)) process.kill(managed, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A standalone containerd (ctr's daemon) with its own root, state and socket, plugins it cannot use here off. */
export async function startContainerd(): Promise<RunningDaemon> {
  preflight(CONTAINERD);
  const dir = mkdtempSync(join('/tmp', 'bc-'));
  const socket = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  writeFileSync(
    config,
    [
      'version = 2',
      `root = "${join(dir, 'root')}"`,
      `state = "${join(dir, 'state')}"`,
      // Nothing of containerd's CRI or cluster machinery: only content, images, snapshots.
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]',
      '[grpc]',
      `  address = "${socket}"`,
      '[ttrpc]',
      `  address = "${socket}.ttrpc"`,
      '[debug]',
      `  address = "${join(dir, 'debug.sock')}"`,
      '[metrics]',
      '  address = ""',
      '',
    ].join('\n'),
  );
  let child: ChildProcess;
  let log: () => string;
  try {
    ({ child, log } = await launch(CONTAINERD, ['--config', config], dir, 'containerd', (exited) =>
      waitUntil(async () => (await runCommand(CTR, ['--address', socket, 'version'], { PATH: DAEMON_PATH })).code === 0, exited, 'containerd'),
    ));
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    host: `unix://${socket}`,
    socket,
    pid: child.pid!,
    dir,
    log,
    async stop() {
      await stopChild(child, 10_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a client with exactly `env` (nothing inherited); never prints argv, which may hold a password. */
export function runCommand(cmd: string, args: string[], env: Record<string, string>, opts: { input?: string; onStderr?: (all: string) => void; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
      opts.onStderr?.(stderr);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr: signal ? `${stderr}\nkilled by ${signal}` : stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * A person's docker client: its own DOCKER_CONFIG and HOME, talking to one daemon, with a PATH that
 * holds only a `docker` link and the credential helpers a test puts there. The docker CLI picks
 * `pass` as its credential store by itself when `pass` and docker-credential-pass are on PATH (CI
 * installs both for another test), so /usr/bin must not be on it.
 */
export class DockerClient {
  readonly configDir: string;
  readonly binDir: string;
  readonly home: string;

  constructor(
    readonly daemon: RunningDaemon,
    parentDir: string,
    private readonly extraEnv: Record<string, string> = {},
  ) {
    this.home = mkdtempSync(join(parentDir, 'docker-user-'));
    this.configDir = join(this.home, '.docker');
    this.binDir = join(this.home, 'bin');
    mkdirSync(this.configDir, { mode: 0o700 });
    mkdirSync(this.binDir);
    mkdirSync(join(this.home, 'tmp'));
    symlinkSync(DOCKER_CLI, join(this.binDir, 'docker'));
  }

  get configPath(): string {
    return join(this.configDir, 'config.json');
  }

  writeConfig(config: unknown): void {
    writeFileSync(this.configPath, JSON.stringify(config, null, 2), { mode: 0o600 });
  }

  /** config.json as docker left it ({} when it wrote none). */
  readConfig(): { auths?: Record<string, { auth?: string; identitytoken?: string }>; credHelpers?: Record<string, string>; credsStore?: string } {
    return existsSync(this.configPath) ? JSON.parse(readFileSync(this.configPath, 'utf8')) : {};
  }

  /** Puts an executable `docker-credential-NAME` on this client's PATH. */
  addHelper(name: string, script: string): void {
    writeFileSync(join(this.binDir, `docker-credential-${name}`), script, { mode: 0o755 });
  }

  run(args: string[], opts: { input?: string; onStderr?: (all: string) => void } = {}): Promise<CommandResult> {
    const env = { PATH: this.binDir, HOME: this.home, TMPDIR: join(this.home, 'tmp'), DOCKER_CONFIG: this.configDir, DOCKER_HOST: this.daemon.host, ...this.extraEnv };
    return runCommand(join(this.binDir, 'docker'), args, env, opts);
  }
}

/** Copies an OCI layout into the daemon's image store as `ref` (name:tag), the way an offline machine gets an image. */
export function loadIntoDaemon(daemon: RunningDaemon, ociDir: string, ref: string): Promise<SkopeoResult> {
  return skopeo(['copy', '--retry-times', '0', `oci:${ociDir}`, `docker-daemon:${ref}`, '--dest-daemon-host', daemon.host]);
}

export function describeRun(what: string, r: CommandResult): string {
  return `${what} exited ${r.code}\nstdout: ${r.stdout.trim()}\nstderr: ${r.stderr.trim()}`;
}
