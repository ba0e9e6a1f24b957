import { randomBytes, sign } from 'node:crypto';
import type { SigningKey } from './keys.js';

export interface AccessEntry {
  type: string;
  class?: string;
  name: string;
  actions: string[];
}

export interface RegistryClaims {
  sub: string;
  aud: string;
  access: AccessEntry[];
}

const HASH: Record<SigningKey['alg'], string | null> = {
  RS256: 'sha256',
  ES256: 'sha256',
  ES384: 'sha384',
  ES512: 'sha512',
  EdDSA: null,
};

// randomBytes per token costs more than the rest of the claims: draw 16-byte ids from a pool
// refilled 256 at a time (still the CSPRNG, still unique per token).
const JTI_BYTES = 16;
let pool = Buffer.alloc(0);
let poolOffset = 0;
function jti(): string {
  if (poolOffset + JTI_BYTES > pool.length) {
    pool = randomBytes(JTI_BYTES * 256);
    poolOffset = 0;
  }
  const id = pool.toString('base64url', poolOffset, poolOffset + JTI_BYTES);
  poolOffset += JTI_BYTES;
  return id;
}

function b64url(s: string | Buffer): string {
  return Buffer.from(s).toString('base64url');
}

/**
 * Signs registry bearer tokens with node:crypto directly: the header is encoded once per key and the
 * signature is one native call, which matters because this runs for every pull and push.
 */
export class RegistryTokenSigner {
  private readonly headerB64: string;
  private readonly hash: string | null;
  private readonly dsaEncoding: 'ieee-p1363' | undefined;

  constructor(
    private readonly key: SigningKey,
    private readonly issuer: string,
    readonly ttlSeconds: number,
    kidFormat: 'libtrust' | 'thumbprint',
  ) {
    const header: Record<string, unknown> = {
      typ: 'JWT',
      alg: key.alg,
      kid: kidFormat === 'libtrust' ? key.libtrustKid : key.thumbprintKid,
    };
    if (key.x5c) header.x5c = key.x5c;
    this.headerB64 = b64url(JSON.stringify(header));
    this.hash = HASH[key.alg];
    this.dsaEncoding = key.alg.startsWith('ES') ? 'ieee-p1363' : undefined;
  }

  /** `ttlSeconds` overrides the configured lifetime for one token (a federation policy's maxTokenTTL). */
  sign(claims: RegistryClaims, now = Math.floor(Date.now() / 1000), ttlSeconds = this.ttlSeconds): { token: string; issuedAt: number; expiresIn: number } {
    // aud stays a plain string: registry 2.8 refuses an array.
    const payload = {
      iss: this.issuer,
      sub: claims.sub,
      aud: claims.aud,
      exp: now + ttlSeconds,
      nbf: now - 1,
      iat: now,
      jti: jti(),
      access: claims.access,
    };
    const signingInput = `${this.headerB64}.${b64url(JSON.stringify(payload))}`;
    const sig = sign(this.hash, Buffer.from(signingInput), this.dsaEncoding ? { key: this.key.privateKey, dsaEncoding: this.dsaEncoding } : this.key.privateKey);
    return { token: `${signingInput}.${sig.toString('base64url')}`, issuedAt: now, expiresIn: ttlSeconds };
  }
}
