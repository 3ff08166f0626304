import { hash } from 'node:crypto';
import { canonicalJson } from './jcs.js';

export const B64U_SHA256 = /^[A-Za-z0-9_-]{43}$/;

export function b64u(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

/**
 * Strict base64url decoding: only the canonical, unpadded encoding of the bytes is accepted,
 * so a signature or key has exactly one textual form (no malleable trailing bits).
 */
export function fromB64u(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new TypeError('not base64url');
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) throw new TypeError('not canonical base64url');
  return new Uint8Array(bytes);
}

// `hash` is the one-shot form of `createHash(...).update(...).digest(...)`: the same bytes, half the time.
export function sha256(data: string | Uint8Array): Uint8Array {
  return new Uint8Array(hash('sha256', data, 'buffer'));
}

export function sha256B64u(data: string | Uint8Array): string {
  return b64u(sha256(data));
}

export function sha256Hex(data: string | Uint8Array): string {
  return hash('sha256', data, 'hex');
}

/** base64url(SHA-256(UTF-8(JCS(value)))) without padding: the hash of WPCs and token scopes. */
export function jcsHashB64u(value: unknown): string {
  return sha256B64u(canonicalJson(value));
}
