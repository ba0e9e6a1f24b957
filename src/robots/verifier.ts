import type { CredentialVerifier } from '../identity/credentials.js';
import { AuthenticationError, type Principal } from '../model/principal.js';
import { ROBOT_PREFIX, Robots, type RobotRecord } from './robots.js';

function check(rec: RobotRecord | null, now: number): RobotRecord {
  if (!rec) throw new AuthenticationError('unknown robot secret (rotated, deleted or mistyped)');
  if (rec.disabled) throw new AuthenticationError(`${rec.name} is disabled`);
  if (rec.expiresAt !== null && rec.expiresAt <= now) throw new AuthenticationError(`${rec.name} expired`);
  return rec;
}

const principalOf = (rec: RobotRecord): Principal => ({
  account: rec.name,
  kind: 'robot',
  labels: { robot: [rec.name] },
  restriction: rec.restriction,
  credentialId: rec.name,
  ...(rec.expiresAt !== null ? { reusableUntil: rec.expiresAt } : {}),
});

/** `docker login -u robot:NAME -p berth_rbt_…`: the robot's restriction caps whatever the ACL grants. */
export class RobotVerifier implements CredentialVerifier {
  readonly kind = 'robot' as const;

  constructor(private readonly robots: Robots) {}

  accepts(password: string): boolean {
    return password.startsWith(ROBOT_PREFIX);
  }

  async verify(username: string | null, password: string, clientIp: string): Promise<Principal> {
    if (!Robots.shapeOk(password)) throw new AuthenticationError('malformed robot secret (checksum mismatch)');
    const rec = check(await this.robots.bySecret(password), Date.now());
    if (username !== rec.name) throw new AuthenticationError(`this secret belongs to ${rec.name}: use it as the user name`);
    this.robots.touch(rec.name, clientIp);
    return principalOf(rec);
  }

  /** Refresh tokens of a robot stop with it (disabled, deleted, expired). */
  async recheck(p: Principal): Promise<Principal> {
    return principalOf(check(await this.robots.get(p.account), Date.now()));
  }
}
