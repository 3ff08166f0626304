import { base58 } from '@scure/base';
import { sha256Hex } from './hash.js';

/** multicodec prefix for an Ed25519 public key (0xed, varint-encoded as 0xed 0x01). */
const ED25519_PUB_MULTICODEC = Uint8Array.of(0xed, 0x01);

/** `did:key` of a raw 32-byte Ed25519 public key: multicodec 0xed01 + base58btc ('z' multibase). */
export function didKeyFromPublicKey(raw: Uint8Array): string {
  if (raw.length !== 32) throw new TypeError('Ed25519 public key must be 32 bytes');
  const bytes = new Uint8Array(34);
  bytes.set(ED25519_PUB_MULTICODEC, 0);
  bytes.set(raw, 2);
  return `did:key:z${base58.encode(bytes)}`;
}

/** Inverse of `didKeyFromPublicKey`; throws on anything but an Ed25519 did:key. */
export function publicKeyFromDidKey(did: string): Uint8Array {
  const match = /^did:key:z([1-9A-HJ-NP-Za-km-z]+)$/.exec(did);
  if (!match?.[1]) throw new TypeError('not a base58btc did:key');
  const bytes = base58.decode(match[1]);
  if (bytes.length !== 34 || bytes[0] !== 0xed || bytes[1] !== 0x01) {
    throw new TypeError('did:key is not an Ed25519 key');
  }
  return bytes.slice(2);
}

/** SPEC section 4: first 16 hex characters of SHA-256 over the raw public key. */
export function kidFromPublicKey(raw: Uint8Array): string {
  return sha256Hex(raw).slice(0, 16);
}
