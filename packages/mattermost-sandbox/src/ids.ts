import { randomBytes } from 'node:crypto';

/** The base32 alphabet of Mattermost's `model.NewId` (server/public/model/utils.go). */
const ALPHABET = 'ybndrfg8ejkmcpqxot1uwisza345h769';

/**
 * A 26-character id exactly as Mattermost makes them: 16 random bytes, base32-encoded with
 * Mattermost's alphabet, padding dropped.
 */
export function newId(): string {
  const bytes = randomBytes(16);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out.slice(0, 26);
}

/** `model.IsValidId`: 26 characters, letters and digits only. */
export function isValidId(value: string): boolean {
  return value.length === 26 && /^[\p{L}\p{N}]+$/u.test(value);
}

/** `model.IsValidUsername` (lowercase letters, digits, `.`, `-`, `_`; 3–64 long, starts with a letter). */
export function isValidUsername(value: string): boolean {
  return /^[a-z][a-z0-9.\-_]{2,63}$/.test(value);
}
