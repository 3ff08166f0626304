import { base58 } from '@scure/base';
import { sha256Hex } from './hash.js';

/** multicodec prefix for an Ed25519 public key (0xed, varint-encoded as 0xed 0x01). */
const ED25519_PUB_MULTICODEC = Uint8Array.of(0xed, 0x01);

/**
 * The encodings of the eight Ed25519 points of small order (the torsion subgroup: identity,
 * the point of order 2, two of order 4, four of order 8), plus the identity and the point of
 * order 2 with the sign bit set (x = 0 has no negative, so these are non-canonical). Under
 * such a key, R = identity and S = 0 "verifies" every message, and OpenSSL and WebCrypto
 * accept it: a signature by it proves nothing.
 */
const SMALL_ORDER = new Set([
  '0100000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000080',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000080',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
]);

/** The field prime 2^255 - 19: an encoded y at or above it is not canonical. */
const P = 2n ** 255n - 19n;

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
  if (SMALL_ORDER.has(Buffer.from(raw).toString('hex')))
    throw new UnsafeEd25519KeyError('Ed25519 public key of small order: it verifies forged signatures');
  const y = Buffer.from(raw).reverse(); // little-endian; the top bit is x's sign
  y[0]! &= 0x7f;
  if (BigInt(`0x${y.toString('hex')}`) >= P)
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
