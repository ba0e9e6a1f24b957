import { createHash, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(bytes: Uint8Array): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

/**
 * The key id docker/libtrust derives and registry 2.8 looks up in its rootcertbundle:
 * base32(SHA-256(DER SPKI)[:30]) cut into 12 groups of 4. 30 bytes = 240 bits = exactly 48 base32
 * characters, so there is never padding.
 */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const digest = createHash('sha256').update(der).digest().subarray(0, 30);
  return base32(digest).match(/.{4}/g)!.join(':');
}

export async function publicJwk(publicKey: KeyObject): Promise<JWK> {
  return exportJWK(publicKey);
}

/** RFC 7638 thumbprint, what registry 3.x expects as `kid` when it is configured with a JWKS. */
export async function thumbprintKeyId(publicKey: KeyObject): Promise<string> {
  return calculateJwkThumbprint(await exportJWK(publicKey), 'sha256');
}
