import { createHash } from 'node:crypto';
import { verify } from '@node-rs/bcrypt';
import type { StaticUser } from '../config/schema.js';
import { AuthenticationError, type Principal } from '../model/principal.js';
import type { CredentialVerifier } from './credentials.js';

/**
 * Names the password a static principal was verified with (a digest of its bcrypt hash, not of the
 * password): refresh tokens carry it, so a changed password ends them as a removed user does.
 */
const passwordVersion = (hash: string) => `static:${createHash('sha256').update(hash).digest('base64url').slice(0, 22)}`;

// Verified against when the user does not exist, so that unknown and known users take equally long.
const DUMMY_HASH = '$2b$10$pORigyEOAJH1wTDyF.422uvEKJPkGjlX08soUD/QCZzXCX0VTInWu';

/**
 * The docker_auth `users:` section, as the gate's password verifier. bcrypt is deliberately slow; the
 * gate (credentials.ts) remembers a verified pair for the reuse window, so this never caches itself.
 */
export class StaticUsers implements CredentialVerifier {
  readonly kind = 'static' as const;
  constructor(private readonly users: ReadonlyMap<string, StaticUser>) {}

  /** Last in the gate's order: whatever no other kind claims by shape is a password. */
  accepts(): boolean {
    return true;
  }

  verify(username: string | null, password: string): Promise<Principal> {
    return this.authenticate(username ?? '', password);
  }

  private principal(username: string, user: StaticUser): Principal {
    return { account: username, kind: 'static', labels: user.labels, credentialId: passwordVersion(user.hash!) };
  }

  /** A refresh token of a static user lives while the user is in the running config with the same password. */
  async recheck(p: Principal): Promise<Principal> {
    const user = this.users.get(p.account);
    if (p.account === '' || !user?.hash) throw new AuthenticationError('this user no longer exists: log in again');
    if (passwordVersion(user.hash) !== p.credentialId) throw new AuthenticationError('the password of this user has changed: log in again');
    return this.principal(p.account, user);
  }

  anonymous(): Principal | null {
    const u = this.users.get('');
    return u ? { account: '', kind: 'anonymous', labels: u.labels } : null;
  }

  async authenticate(username: string, password: string): Promise<Principal> {
    const user = this.users.get(username);
    if (username !== '' && user?.hash) {
      if (await verify(password, user.hash).catch(() => false)) return this.principal(username, user);
    } else {
      await verify(password, DUMMY_HASH).catch(() => false);
    }
    throw new AuthenticationError('invalid username or password');
  }

}
