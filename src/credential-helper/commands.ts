import { revokeToken } from './berth-client.js';
import { CredentialFile, type StoredCredential } from './credential-file.js';
import { deviceLogin, type LoginIO } from './device-login.js';
import { CredentialsNotFoundError } from './errors.js';
import { registryKey } from './server-url.js';
import { berthFor, notConfiguredHint, type HelperSettings } from './settings.js';
import { printable } from './terminal.js';
import { createSuccessor, expired, renewable, renewalDue, revokePredecessor } from './renewal.js';

/** The four credential operations over credentials.json, signing in or renewing when needed. */
export class Commands {
  private readonly file: CredentialFile;

  constructor(
    private readonly settings: HelperSettings,
    private readonly io: LoginIO,
  ) {
    this.file = new CredentialFile(settings.dir, (m) => io.tell(`${m}\n`), settings);
  }

  async get(serverURL: string): Promise<{ username: string; secret: string }> {
    const key = registryKey(serverURL);
    const now = this.io.now();
    const stored = (await this.file.read())[key];
    if (stored && !expired(stored, now) && !renewalDue(stored, this.settings.renew, now)) return stored;
    return this.file.withLock(async () => {
      // Re-read: a helper that held the lock may have just signed in or renewed.
      const creds = await this.file.read();
      let c = creds[key];
      if (c && !expired(c, this.io.now()) && renewalDue(c, this.settings.renew, this.io.now())) c = await this.renew(creds, key, c);
      if (c && !expired(c, this.io.now())) return c;
      // A stored token's own Berth may sign in again for it: that registry was configured when it was obtained.
      const berth = berthFor(this.settings, key) ?? (c && c.source !== 'docker' ? (c.berthURL ?? null) : null);
      // docker reads only stdout ("not found" there lets it carry on anonymously); people read stderr.
      if (!berth) {
        this.io.tell(notConfiguredHint(this.settings, printable(key)));
        throw new CredentialsNotFoundError();
      }
      if (!this.settings.interactiveLogin) {
        this.io.tell(`docker-credential-berth: no token for ${printable(key)} and BERTH_NO_LOGIN=1 forbids signing in; sign in once without it, or use docker login\n`);
        throw new CredentialsNotFoundError();
      }
      const fresh = await deviceLogin(berth, key, this.io);
      creds[key] = fresh;
      await this.file.write(creds);
      return fresh;
    });
  }

  /**
   * Replaces a token near its end. Any failure leaves the current one in use (it is still valid) and
   * is only reported; a token Berth no longer accepts is dropped so that the caller signs in again.
   */
  private async renew(creds: Record<string, StoredCredential>, key: string, c: StoredCredential): Promise<StoredCredential | undefined> {
    if (!renewable(c)) return c;
    let next: StoredCredential;
    try {
      next = await createSuccessor(c);
    } catch (e) {
      if ((e as Error).name === 'TokenRejectedError') {
        this.io.tell(`${(e as Error).message}; signing in again.\n`);
        delete creds[key];
        await this.file.write(creds);
        return undefined;
      }
      this.io.tell(`Could not renew the token for ${key} (${(e as Error).message}); using the current one until it expires.\n`);
      return c;
    }
    creds[key] = next;
    await this.file.write(creds);
    try {
      if (!(await revokePredecessor(c, next as StoredCredential & { berthURL: string }))) this.io.tell(`Berth did not revoke the replaced token ${c.tokenId}; revoke it on the tokens page.\n`);
    } catch (e) {
      this.io.tell(`Could not revoke the replaced token ${c.tokenId} (${(e as Error).message}); revoke it on the tokens page.\n`);
    }
    this.io.tell(`Renewed the token for ${key}; it now expires ${new Date(next.expiresAt!).toISOString()}.\n`);
    return next;
  }

  /** Keeps what docker hands over exactly as given; the same PAT again keeps what is known about it. */
  async store(serverURL: string, username: string, secret: string): Promise<void> {
    const key = registryKey(serverURL);
    await this.file.withLock(async () => {
      const creds = await this.file.read();
      const old = creds[key];
      creds[key] = old && old.secret === secret && old.username === username ? old : { username, secret, source: 'docker' };
      await this.file.write(creds);
    });
  }

  /** Forgets the entry; a token this helper obtained is also revoked at Berth (best effort). */
  async erase(serverURL: string): Promise<void> {
    const key = registryKey(serverURL);
    const gone = await this.file.withLock(async () => {
      const creds = await this.file.read();
      const c = creds[key];
      if (!c) throw new CredentialsNotFoundError();
      delete creds[key];
      await this.file.write(creds);
      return c;
    });
    if (gone.berthURL && gone.tokenId && !expired(gone, this.io.now())) {
      try {
        await revokeToken(gone.berthURL, gone.secret, gone.tokenId);
      } catch (e) {
        this.io.tell(`Removed the token for ${key} here, but could not revoke it at Berth (${(e as Error).message}).\n`);
      }
    }
  }

  list(): Promise<Record<string, string>> {
    return this.file.usernames();
  }
}
