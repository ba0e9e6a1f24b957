import { crc32 } from 'node:zlib';
import { randomBase62 } from '../util/secret.js';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const RANDOM_LENGTH = 32; // 32 × log2(62) ≈ 190 bits
const CHECK_LENGTH = 6; // 62^6 > 2^32

function base62Fixed(n: number, width: number): string {
  let out = '';
  for (let i = 0; i < width; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

/**
 * Secrets shaped like GitHub's: a prefix naming the kind (so secret scanners can find leaked ones),
 * base62 randomness and a CRC32 checksum, so that a mistyped secret is refused without a store
 * lookup.
 */
export function mintSecret(prefix: string): string {
  const body = prefix + randomBase62(RANDOM_LENGTH);
  return body + base62Fixed(crc32(body), CHECK_LENGTH);
}

export const secretLength = (prefix: string) => prefix.length + RANDOM_LENGTH + CHECK_LENGTH;

const SHAPE = /^[0-9A-Za-z]+$/;

export type ShapeCheck = 'ok' | 'not-this-kind' | 'bad-checksum';

export function checkSecretShape(prefix: string, s: string): ShapeCheck {
  if (!s.startsWith(prefix)) return 'not-this-kind';
  if (s.length !== secretLength(prefix) || !SHAPE.test(s.slice(prefix.length))) return 'bad-checksum';
  const body = s.slice(0, -CHECK_LENGTH);
  return base62Fixed(crc32(body), CHECK_LENGTH) === s.slice(-CHECK_LENGTH) ? 'ok' : 'bad-checksum';
}
