import { randomBytes } from 'node:crypto';

/**
 * RFC 8628 §6.1 user codes: consonants only, so no vowels spell words and none of 0/O, 1/I/L-style
 * look-alikes exist; case-insensitive. 20^8 ≈ 2^34.6 codes, far more than live ones, and entry
 * attempts are limited per session.
 */
export const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ';
export const USER_CODE_LENGTH = 8;

export function generateUserCode(): string {
  let out = '';
  while (out.length < USER_CODE_LENGTH) {
    for (const b of randomBytes(USER_CODE_LENGTH * 2)) {
      // 240 is the largest multiple of 20 below 256: rejecting above it avoids modulo bias.
      if (b < 240) out += USER_CODE_ALPHABET[b % USER_CODE_ALPHABET.length];
      if (out.length === USER_CODE_LENGTH) break;
    }
  }
  return out;
}

/** What people type (`abcd efgh`, `ABCD-EFGH`) as the stored form, or null when it cannot be a code. */
export function normalizeUserCode(input: unknown): string | null {
  if (typeof input !== 'string' || input.length > 40) return null;
  const s = input.toUpperCase().replace(/[\s-]/g, '');
  if (s.length !== USER_CODE_LENGTH) return null;
  for (const c of s) if (!USER_CODE_ALPHABET.includes(c)) return null;
  return s;
}

/** XXXX-XXXX, the form shown to people. */
export function formatUserCode(code: string): string {
  return `${code.slice(0, 4)}-${code.slice(4)}`;
}
