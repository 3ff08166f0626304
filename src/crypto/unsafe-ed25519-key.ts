/**
 * Ed25519 public keys no signature by which can be trusted. Import-free: the bundle page's
 * verifier links this module into its script, so the server and the browser refuse the same keys.
 */

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
const FIELD_PRIME = 2n ** 255n - 19n;

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/**
 * Why a raw 32-byte Ed25519 public key must not be trusted, or null: of small order (it
 * verifies forged signatures), or y not below the field prime (another encoding of a point,
 * which verifiers disagree on).
 */
export function unsafeEd25519Key(raw: Uint8Array): 'small order' | 'not canonical' | null {
  if (SMALL_ORDER.has(hex(raw))) return 'small order';
  const y = raw.slice().reverse(); // little-endian; the top bit is x's sign
  y[0]! &= 0x7f;
  return BigInt(`0x${hex(y)}`) >= FIELD_PRIME ? 'not canonical' : null;
}
