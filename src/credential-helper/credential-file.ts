import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, open, readFile, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { HelperError } from './errors.js';
import { secretLabel, type SecretStore } from './secret-store.js';

export interface StoredCredential {
  username: string;
  secret: string;
  /** How it got here: a device sign-in, a renewal, or `docker login` handing it over. */
  source: 'device' | 'renewal' | 'docker';
  /** Set for tokens this helper obtained itself: what renewal and revocation need. */
  berthURL?: string;
  tokenId?: string;
  tokenName?: string;
  createdAt?: number;
  expiresAt?: number;
}

/** An entry as written: the secret inline, or only the name of the store that holds it. */
type FileEntry = Omit<StoredCredential, 'secret'> & { secret?: string; secretStore?: string };

interface FileShape {
  version: 1;
  credentials: Record<string, FileEntry>;
}

export interface SecretStores {
  /** Where new and changed secrets go; null keeps them in the file. */
  secretStore: SecretStore | null;
  storeNamed: (name: string) => SecretStore;
}

const LOCK_STALE_MS = 15 * 60_000;
const LOCK_POLL_MS = 200;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * credentials.json: readable by the user only (0600 in a 0700 directory), replaced atomically by
 * rename so a reader never sees half a file. Changes happen under a lock file, so that two helpers
 * started at once (a client asking for two images) run one sign-in, not two. With a secret store
 * (secret-store.ts) the file names the store instead of holding the secret.
 */
export class CredentialFile {
  readonly path: string;
  private readonly lockPath: string;
  /** Where each entry's secret was when last read or written: what write() must move or erase. */
  private readonly known = new Map<string, { secret: string; store: string | null }>();

  constructor(
    readonly dir: string,
    private readonly warn: (message: string) => void,
    private readonly stores: SecretStores,
  ) {
    this.path = join(dir, 'credentials.json');
    this.lockPath = join(dir, 'credentials.lock');
  }

  private async ensureDir(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const st = await stat(this.dir);
    if ((st.mode & 0o077) !== 0) await chmod(this.dir, 0o700);
  }

  /**
   * Opens credentials.json only if it is a regular file of its own: a symbolic link is not followed
   * (O_NOFOLLOW), so the helper never tightens the mode of, or reads and reports on, a file elsewhere;
   * O_NONBLOCK keeps a FIFO in its place from hanging docker. The checks run on the opened file, not
   * on the path, so nothing can be swapped in between.
   */
  private async openRegular(): Promise<FileHandle | null> {
    const notRegular = (what: string) => new HelperError(`${this.path} is not a regular file (${what}); refusing to use it. Move it away; the next pull signs in again.`);
    let fh: FileHandle;
    try {
      fh = await open(this.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      if (code === 'ELOOP' || code === 'EMLINK') throw notRegular('a symbolic link');
      throw new HelperError(`cannot read ${this.path}: ${(e as Error).message}`);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw notRegular(st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a named pipe' : 'a special file');
      if ((st.mode & 0o077) !== 0) {
        this.warn(`${this.path} was readable by others; restricting it to you (mode 0600). Consider revoking the tokens in it.`);
        await fh.chmod(0o600);
      }
      return fh;
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  private async readFile(): Promise<Record<string, FileEntry>> {
    const fh = await this.openRegular();
    if (!fh) return {};
    let raw: string;
    try {
      raw = await fh.readFile('utf8');
    } catch (e) {
      throw new HelperError(`cannot read ${this.path}: ${(e as Error).message}`);
    } finally {
      await fh.close();
    }
    // The reasons below never quote the file: JSON.parse's own message would echo its first characters.
    let doc: FileShape;
    try {
      doc = JSON.parse(raw) as FileShape;
    } catch {
      throw new HelperError(`${this.path} is damaged (not JSON); delete it and sign in again`);
    }
    try {
      if (!doc || doc.version !== 1 || !doc.credentials || typeof doc.credentials !== 'object') throw new Error('unexpected layout');
      for (const e of Object.values(doc.credentials)) if (!e || (typeof e.secret !== 'string' && typeof e.secretStore !== 'string')) throw new Error('an entry has neither a secret nor a secretStore');
      return doc.credentials;
    } catch (e) {
      throw new HelperError(`${this.path} is damaged (${(e as Error).message}); delete it and sign in again`);
    }
  }

  /** Entries without their secrets (for `list`, which must not unlock a keychain). */
  async usernames(): Promise<Record<string, string>> {
    return Object.fromEntries(Object.entries(await this.readFile()).map(([k, e]) => [k, e.username]));
  }

  /**
   * Every entry with its secret. A secret missing from its store (deleted in the keychain app, say)
   * drops the entry, with a note: the next `get` signs in again.
   */
  async read(): Promise<Record<string, StoredCredential>> {
    const out: Record<string, StoredCredential> = {};
    this.known.clear();
    for (const [key, e] of Object.entries(await this.readFile())) {
      const { secretStore, secret: inline, ...rest } = e;
      const secret = secretStore ? await this.stores.storeNamed(secretStore).get(secretLabel(key)) : (inline ?? null);
      if (secret === null) {
        this.warn(`The secret for ${key} is no longer in ${secretStore}; forgetting the entry.`);
        continue;
      }
      out[key] = { ...rest, secret };
      this.known.set(key, { secret, store: secretStore ?? null });
    }
    return out;
  }

  /**
   * Saves `credentials` (as read, changed). Secrets reach their store before the file names it, and
   * leave a store only after the file no longer does.
   */
  async write(credentials: Record<string, StoredCredential>): Promise<void> {
    const store = this.stores.secretStore;
    const entries: Record<string, FileEntry> = {};
    for (const [key, c] of Object.entries(credentials)) {
      const { secret, ...rest } = c;
      if (!store) {
        entries[key] = { ...rest, secret };
        continue;
      }
      const before = this.known.get(key);
      if (!before || before.store !== store.name || before.secret !== secret) await store.put(secretLabel(key), c.username, secret);
      entries[key] = { ...rest, secretStore: store.name };
    }
    await this.writeFile(entries);
    for (const [key, before] of this.known) {
      if (before.store === null || (credentials[key] && before.store === store?.name)) continue;
      try {
        await this.stores.storeNamed(before.store).erase(secretLabel(key));
      } catch (e) {
        this.warn(`Could not remove the old secret for ${key} from ${before.store}: ${(e as Error).message}`);
      }
    }
    this.known.clear();
    for (const [key, c] of Object.entries(credentials)) this.known.set(key, { secret: c.secret, store: store?.name ?? null });
  }

  private async writeFile(credentials: Record<string, FileEntry>): Promise<void> {
    await this.ensureDir();
    const tmp = `${this.path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const doc: FileShape = { version: 1, credentials };
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(doc, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, this.path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  /** Runs `fn` holding the lock; a lock left by a dead or long-gone helper is taken over. */
  async withLock<T>(fn: () => Promise<T>, maxWaitMs = LOCK_STALE_MS + 60_000): Promise<T> {
    await this.ensureDir();
    const deadline = Date.now() + maxWaitMs;
    let announced = false;
    for (;;) {
      try {
        const fh = await open(this.lockPath, 'wx', 0o600);
        await fh.writeFile(JSON.stringify({ pid: process.pid, at: Date.now() }));
        await fh.close();
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      if (await this.lockIsStale()) {
        await unlink(this.lockPath).catch(() => {});
        continue;
      }
      if (Date.now() > deadline) throw new HelperError(`another docker-credential-berth holds ${this.lockPath}; remove it if no sign-in is running`);
      if (!announced) {
        this.warn('Another docker-credential-berth is signing in; waiting for it to finish.');
        announced = true;
      }
      await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
    }
    try {
      return await fn();
    } finally {
      await unlink(this.lockPath).catch(() => {});
    }
  }

  private async lockIsStale(): Promise<boolean> {
    try {
      const raw = await readFile(this.lockPath, 'utf8');
      const { pid, at } = JSON.parse(raw) as { pid: number; at: number };
      return !isAlive(pid) || Date.now() - at > LOCK_STALE_MS;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
      // Caught between creation and write, or left empty by a helper killed right then.
      const st = await stat(this.lockPath).catch(() => null);
      return st === null || Date.now() - st.mtimeMs > 10_000;
    }
  }
}
