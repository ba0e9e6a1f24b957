import { spawn } from 'node:child_process';
import { HelperError } from './errors.js';

/**
 * Where a PAT's secret lives when helper.json names a `secretStore`: another docker credential
 * helper (`docker-credential-NAME`: osxkeychain, wincred, secretservice, pass), spoken to with the
 * same protocol docker uses. credentials.json then keeps only what renewal needs (no secret).
 */
export interface SecretStore {
  readonly name: string;
  get(label: string): Promise<string | null>;
  put(label: string, username: string, secret: string): Promise<void>;
  erase(label: string): Promise<void>;
}

/** The name a store is configured by: the part after `docker-credential-`. */
export const STORE_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** What docker-credential-helpers print when an entry is missing (all of them share the text). */
const NOT_FOUND = 'credentials not found in native keychain';
const TIMEOUT_MS = 60_000;

/**
 * The entry a registry's PAT is kept under: a URL (osxkeychain and wincred parse it), with a path
 * of its own so that it never collides with what docker itself stores for the registry.
 */
export function secretLabel(registryKey: string): string {
  return `https://${registryKey}/berth-pat`;
}

interface Run {
  code: number;
  stdout: string;
}

export class NativeSecretStore implements SecretStore {
  private readonly program: string;

  constructor(
    readonly name: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    if (!STORE_NAME.test(name) || name === 'berth') throw new HelperError(`secretStore ${JSON.stringify(name)}: expected the name of another docker credential helper, such as "osxkeychain", "wincred", "secretservice" or "pass"`);
    this.program = `docker-credential-${name}`;
  }

  // The secret travels on stdin, never in arguments (visible to every user in the process list).
  private run(action: 'get' | 'store' | 'erase', input: string): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.program, [action], { env: this.env, stdio: ['pipe', 'pipe', 'ignore'] });
      let stdout = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
      child.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new HelperError(e.code === 'ENOENT' ? `${this.program} not found on PATH (helper.json "secretStore": "${this.name}")` : `${this.program}: ${e.message}`));
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? 1, stdout });
      });
      child.stdin.on('error', () => {});
      child.stdin.end(input);
    });
  }

  /** A failing helper prints its reason on stdout; that text never holds the secret we sent. */
  private failure(action: string, r: Run): HelperError {
    const reason = r.stdout.trim().split('\n')[0]?.slice(0, 200) || `exit status ${r.code}`;
    return new HelperError(`${this.program} ${action} failed: ${reason}`);
  }

  async get(label: string): Promise<string | null> {
    const r = await this.run('get', label);
    if (r.code !== 0) {
      if (r.stdout.includes(NOT_FOUND)) return null;
      throw this.failure('get', r);
    }
    let secret: unknown;
    try {
      secret = (JSON.parse(r.stdout) as { Secret?: unknown }).Secret;
    } catch {
      throw new HelperError(`${this.program} get answered something other than credentials JSON`);
    }
    // docker-credential-pass 0.6 answers an erased entry with exit 0 and an empty secret.
    return typeof secret === 'string' && secret ? secret : null;
  }

  async put(label: string, username: string, secret: string): Promise<void> {
    const r = await this.run('store', JSON.stringify({ ServerURL: label, Username: username, Secret: secret }));
    if (r.code !== 0) throw this.failure('store', r);
  }

  async erase(label: string): Promise<void> {
    const r = await this.run('erase', label);
    if (r.code !== 0 && !r.stdout.includes(NOT_FOUND)) throw this.failure('erase', r);
  }
}
