import { base58 } from '@scure/base';
import { sha256Hex } from './hash.js';
import { unsafeEd25519Key } from './unsafe-ed25519-key.js';

/** multicodec prefix for an Ed25519 public key (0xed, varint-encoded as 0xed 0x01). */
const ED25519_PUB_MULTICODEC = Uint8Array.of(0xed, 0x01);

/** A 32-byte Ed25519 public key that must not be trusted: of small order, or not canonically encoded. */
export class UnsafeEd25519KeyError extends TypeError {
  override name = 'UnsafeEd25519KeyError';
}

/**
 * Refuses a raw Ed25519 public key of small order (it verifies forged signatures) or whose y
 * is not below the field prime (another encoding of a point, which verifiers disagree on).
 */
export function assertSafeEd25519Key(raw: Uint8Array): void {
  if (raw.length !== 32) throw new TypeError('Ed25519 public key must be 32 bytes');
  const why = unsafeEd25519Key(raw);
  if (why === 'small order')
    throw new UnsafeEd25519KeyError('Ed25519 public key of small order: it verifies forged signatures');
  if (why === 'not canonical')
    throw new UnsafeEd25519KeyError(
      'Ed25519 public key is not canonically encoded (y is not below 2^255 - 19)',
    );
}

/** `did:key` of a raw 32-byte Ed25519 public key: multicodec 0xed01 + base58btc ('z' multibase). */
export function didKeyFromPublicKey(raw: Uint8Array): string {
  if (raw.length !== 32) throw new TypeError('Ed25519 public key must be 32 bytes');
  const bytes = new Uint8Array(34);
  bytes.set(ED25519_PUB_MULTICODEC, 0);
  bytes.set(raw, 2);
  return `did:key:z${base58.encode(bytes)}`;
}

/**
 * Inverse of `didKeyFromPublicKey`; throws on anything but an Ed25519 did:key, and with
 * `UnsafeEd25519KeyError` on a key no signature by which can be trusted.
 */
export function publicKeyFromDidKey(did: string): Uint8Array {
  const match = /^did:key:z([1-9A-HJ-NP-Za-km-z]+)$/.exec(did);
  if (!match?.[1]) throw new TypeError('not a base58btc did:key');
  const bytes = base58.decode(match[1]);
  if (bytes.length !== 34 || bytes[0] !== 0xed || bytes[1] !== 0x01) {
    throw new TypeError('did:key is not an Ed25519 key');
  }
  const raw = bytes.slice(2);
  assertSafeEd25519Key(raw);
  return raw;
}

/** SPEC section 4: first 16 hex characters of SHA-256 over the raw public key. */
export function kidFromPublicKey(raw: Uint8Array): string {
  return sha256Hex(raw).slice(0, 16);
}
