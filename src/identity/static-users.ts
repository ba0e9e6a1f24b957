import { createHmac, randomBytes } from 'node:crypto';
import { verify } from '@node-rs/bcrypt';
import type { StaticUser } from '../config/load.js';
import { AuthenticationError, type Principal } from './principal.js';

// Verified against when the user does not exist, so that unknown and known users take equally long.
const DUMMY_HASH = '$2b$10$pORigyEOAJH1wTDyF.422uvEKJPkGjlX08soUD/QCZzXCX0VTInWu';
const CACHE_TTL_MS = 60_000;
const CACHE_MAX = 10_000;

/**
 * The docker_auth `users:` section. bcrypt is deliberately slow, and one docker push asks for several
 * tokens, so a successful check is remembered for a minute under an HMAC (per-process random key) of
 * user and password: the password itself is never kept.
 */
export class StaticUsers {
  private readonly cacheKey = randomBytes(32);
  private readonly verified = new Map<string, number>();

  constructor(private readonly users: ReadonlyMap<string, StaticUser>) {}

  anonymous(): Principal | null {
    const u = this.users.get('');
    return u ? { account: '', kind: 'anonymous', labels: u.labels } : null;
  }

  async authenticate(username: string, password: string): Promise<Principal> {
    const user = this.users.get(username);
    if (username !== '' && user?.hash) {
      const mac = createHmac('sha256', this.cacheKey).update(username).update('\0').update(password).digest('base64');
      const until = this.verified.get(mac);
      const now = Date.now();
      if (until !== undefined && until > now) return { account: username, kind: 'static', labels: user.labels };
      if (await verify(password, user.hash).catch(() => false)) {
        if (this.verified.size >= CACHE_MAX) this.verified.clear();
        this.verified.set(mac, now + CACHE_TTL_MS);
        return { account: username, kind: 'static', labels: user.labels };
      }
    } else {
      await verify(password, DUMMY_HASH).catch(() => false);
    }
    throw new AuthenticationError('invalid username or password');
  }
}
