import { randomBytes, sign, type KeyObject, type SignKeyObjectInput } from 'node:crypto';
import type { SigningKey } from './keys.js';
import type { AccessEntry } from '../model/access.js';

export type { AccessEntry } from '../model/access.js';

export interface SignedToken {
  /** `header` + `.` + `rest`. */
  token: string;
  /** The encoded JOSE header: one string per signer, shared by all its tokens (about 1 kB with x5c). */
  header: string;
  /** The encoded payload and the signature, dot-joined: what makes this token unique. */
  rest: string;
  issuedAt: number;
  expiresIn: number;
  /** `issued_at` as ISO 8601 (the answers carry it; computed once per second, not per token). */
  issuedAtText: string;
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

let isoSecond = -1;
let isoText = '';
function isoOf(seconds: number): string {
  if (seconds !== isoSecond) {
    isoSecond = seconds;
    isoText = new Date(seconds * 1000).toISOString();
  }
  return isoText;
}

/**
 * Signs registry bearer tokens with node:crypto directly: the header is encoded once per key and the
 * signature is one native call, which matters because this runs for every pull and push.
 */
export class RegistryTokenSigner {
  private readonly headerB64: string;
  private readonly hash: string | null;
  /** The key and its options, built once: a KeyObject prepared at load, not parsed per token. */
  private readonly signKey: KeyObject | SignKeyObjectInput;
  /** `{"iss":…,"sub":` — the constant start of every payload. */
  private readonly payloadHead: string;
  /**
   * The bytes handed to crypto.sign, rewritten for every token. A Buffer.from() per token was the
   * largest source of objects that survived a scavenge on the cold path (V8's sampling heap profiler
   * keeping only such objects: 42 of 121 MB sampled in a 6 s run of the bench's (b')). Reusing one
   * buffer is safe because node:crypto copies the data when it creates a signing job, before
   * sign() returns, also for the asynchronous form (test/unit/keys.test.ts overwrites it with
   * concurrent signatures in flight and verifies every one).
   */
  private scratch = Buffer.allocUnsafeSlow(4096);

  constructor(
    key: SigningKey,
    issuer: string,
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
    this.signKey = key.alg.startsWith('ES') ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' } : key.privateKey;
    this.payloadHead = `{"iss":${JSON.stringify(issuer)},"sub":`;
  }

  /** `input` as bytes in the scratch buffer (it is base64url and a dot: latin1 is exact). */
  private bytesOf(input: string): Buffer {
    if (input.length > this.scratch.length) this.scratch = Buffer.allocUnsafeSlow(2 * input.length);
    return this.scratch.subarray(0, this.scratch.write(input, 0, 'latin1'));
  }

  /** The payload, base64url. The signing input is the header, a dot and this. */
  private payloadB64(claims: RegistryClaims, now: number, ttlSeconds: number): string {
    // The claims in the order JSON.stringify of the object gave them; aud stays a plain string
    // (registry 2.8 refuses an array). Built as text: one stringify for the access list, not an
    // object per token.
    const payload = `${this.payloadHead}${JSON.stringify(claims.sub)},"aud":${JSON.stringify(claims.aud)},"exp":${now + ttlSeconds},"nbf":${now - 1},"iat":${now},"jti":"${jti()}","access":${JSON.stringify(claims.access)}}`;
    return b64url(payload);
  }

  private signed(payload: string, sig: Buffer, now: number, ttlSeconds: number): SignedToken {
    const rest = `${payload}.${sig.toString('base64url')}`;
    return { token: `${this.headerB64}.${rest}`, header: this.headerB64, rest, issuedAt: now, expiresIn: ttlSeconds, issuedAtText: isoOf(now) };
  }

  /** `ttlSeconds` overrides the configured lifetime for one token (a federation policy's maxTokenTTL). */
  sign(claims: RegistryClaims, now = Math.floor(Date.now() / 1000), ttlSeconds = this.ttlSeconds): SignedToken {
    const payload = this.payloadB64(claims, now, ttlSeconds);
    return this.signed(payload, sign(this.hash, this.bytesOf(`${this.headerB64}.${payload}`), this.signKey), now, ttlSeconds);
  }

  /**
   * As sign(), with the signature computed on libuv's thread pool: the event loop stays free for
   * other requests during the 40-80 µs an ECDSA or RSA signature takes (measured with `npm run bench`).
   */
  signAsync(claims: RegistryClaims, now = Math.floor(Date.now() / 1000), ttlSeconds = this.ttlSeconds): Promise<SignedToken> {
    const payload = this.payloadB64(claims, now, ttlSeconds);
    return new Promise((resolve, reject) => {
      sign(this.hash, this.bytesOf(`${this.headerB64}.${payload}`), this.signKey, (err, sig) => {
        if (err) reject(err);
        else resolve(this.signed(payload, sig, now, ttlSeconds));
      });
    });
  }
}
