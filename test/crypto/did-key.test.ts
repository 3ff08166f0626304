import { createHash, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  didKeyFromPublicKey,
  kidFromPublicKey,
  publicKeyFromDidKey,
  UnsafeEd25519KeyError,
} from '../../src/crypto/did-key.js';
import { signingKeyFromJwk } from '../../src/tokens/signing-key.js';
import { BASE58_ALPHABET as ALPHABET, base58Decode } from '../helpers/base58.js';

function base58Encode(bytes: Uint8Array): string {
  let n = 0n;
  for (const b of bytes) n = n * 256n + BigInt(b);
  let out = '';
  while (n > 0n) {
    out = ALPHABET[Number(n % 58n)] + out;
    n /= 58n;
  }
  for (const b of bytes) {
    if (b !== 0) break;
    out = `1${out}`;
  }
  return out;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** Ed25519 public key of a 32-byte seed, via node's own PKCS#8 import. */
function publicKeyOfSeed(seedHex: string): Uint8Array {
  const pkcs8 = Buffer.concat([
    Buffer.from('302e020100300506032b657004220420', 'hex'),
    Buffer.from(seedHex, 'hex'),
  ]);
  const jwk = createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({
    format: 'jwk',
  });
  return new Uint8Array(Buffer.from(jwk.x as string, 'base64url'));
}

// w3c-ccg/did-method-key test-vectors/ed25519-x25519.json: seed, did, verificationKeyPair.publicKeyBase58.
const VECTORS: { seed: string; did: string; publicKeyBase58: string }[] = [
  {
    seed: '0000000000000000000000000000000000000000000000000000000000000000',
    did: 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp',
    publicKeyBase58: '4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS',
  },
  {
    seed: '0000000000000000000000000000000000000000000000000000000000000001',
    did: 'did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG',
    publicKeyBase58: '6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt',
  },
  {
    seed: '0000000000000000000000000000000000000000000000000000000000000002',
    did: 'did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf',
    publicKeyBase58: '8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH',
  },
  {
    seed: '0000000000000000000000000000000000000000000000000000000000000003',
    did: 'did:key:z6MkvqoYXQfDDJRv8L4wKzxYeuKyVZBfi9Qo6Ro8MiLH3kDQ',
    publicKeyBase58: 'HPYVwAQmskwT1qEEeRzhoomyfyupJGASQQtCXSNG8XS2',
  },
  {
    seed: '0000000000000000000000000000000000000000000000000000000000000004',
    did: 'did:key:z6MkwW6aqMnjgrhJXFUko3NnZPGzVpkNzhYK7yEhnsibmLwL',
    publicKeyBase58: 'J3qYF7YJMKCqQke47UQwiHizgFUXapHxRxKmxbkar89x',
  },
];

// did:key spec (w3c-ccg.github.io/did-method-key), "Test Vectors / Ed25519", JWK example for
// did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp.
const SPEC_JWK_X = 'O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik';

describe('did:key Ed25519 test vectors (w3c-ccg/did-method-key)', () => {
  it.each(VECTORS)('$did from publicKeyBase58', ({ did, publicKeyBase58 }) => {
    const raw = base58Decode(publicKeyBase58);
    expect(raw).not.toBeNull();
    expect(raw?.length).toBe(32);
    expect(didKeyFromPublicKey(raw as Uint8Array)).toBe(did);
  });

  it.each(VECTORS)('$did decodes to publicKeyBase58', ({ did, publicKeyBase58 }) => {
    const raw = publicKeyFromDidKey(did);
    expect(raw).toBeInstanceOf(Uint8Array);
    expect(raw.length).toBe(32);
    expect(base58Encode(raw)).toBe(publicKeyBase58);
  });

  it.each(VECTORS)('$did is the key of its seed', ({ seed, did, publicKeyBase58 }) => {
    const raw = publicKeyOfSeed(seed);
    expect(hex(raw)).toBe(hex(base58Decode(publicKeyBase58) as Uint8Array));
    expect(didKeyFromPublicKey(raw)).toBe(did);
  });

  it.each(VECTORS)(
    '$did: publicKeyMultibase is the DID suffix (z + base58btc of 0xed01 || key)',
    ({ did }) => {
      const multibase = did.slice('did:key:'.length);
      expect(multibase.startsWith('z6Mk')).toBe(true);
      const bytes = base58Decode(multibase.slice(1)) as Uint8Array;
      expect(bytes.length).toBe(34);
      expect([bytes[0], bytes[1]]).toEqual([0xed, 0x01]);
      expect(hex(bytes.slice(2))).toBe(hex(publicKeyFromDidKey(did)));
    },
  );

  it('matches the JWK "x" of the spec example', () => {
    const did = 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp';
    expect(Buffer.from(publicKeyFromDidKey(did)).toString('base64url')).toBe(SPEC_JWK_X);
    expect(hex(publicKeyFromDidKey(did))).toBe(
      '3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29',
    );
  });

  it.each(VECTORS)('signingKeyFromJwk(seed $seed) yields $did', ({ seed, did }) => {
    const x = Buffer.from(publicKeyOfSeed(seed)).toString('base64url');
    const d = Buffer.from(seed, 'hex').toString('base64url');
    const key = signingKeyFromJwk({ kty: 'OKP', crv: 'Ed25519', x, d }, 'test');
    expect(key.did).toBe(did);
    expect(key.publicJwk.x).toBe(x);
    expect(key.kid).toBe(kidFromPublicKey(key.publicRaw));
  });
});

describe('did:key round trip', () => {
  it('random keys round-trip and always start with z6Mk', () => {
    for (let i = 0; i < 50; i++) {
      const raw = new Uint8Array(randomBytes(32));
      const did = didKeyFromPublicKey(raw);
      expect(did).toMatch(/^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]+$/);
      expect(hex(publicKeyFromDidKey(did))).toBe(hex(raw));
      // The independent codec agrees with the encoding.
      expect(did).toBe(`did:key:z${base58Encode(Uint8Array.from([0xed, 0x01, ...raw]))}`);
    }
  });

  it('edge keys (all zero: small order; all 0xff: y >= p) encode, but are never accepted as a signer', () => {
    for (const raw of [new Uint8Array(32), new Uint8Array(32).fill(0xff)]) {
      const did = didKeyFromPublicKey(raw);
      expect(did).toBe(`did:key:z${base58Encode(Uint8Array.from([0xed, 0x01, ...raw]))}`);
      expect(() => publicKeyFromDidKey(did)).toThrow(UnsafeEd25519KeyError);
    }
  });
});

describe('did:key rejection', () => {
  const good = VECTORS[0]?.did as string;

  it.each([
    // w3c-ccg test vectors for other key types.
    ['X25519 (multicodec 0xec01)', 'did:key:z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW'],
    ['X25519 (multicodec 0xec01), x25519.json', 'did:key:z6LSeu9HkTHSfLLeUs2nnzUSNedgDUevfNQgQjQC23ZCit6F'],
    ['secp256k1 (multicodec 0xe701)', 'did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme'],
    [
      'Ed25519 key under a wrong second varint byte',
      `did:key:z${base58Encode(Uint8Array.from([0xed, 0x02, ...new Uint8Array(32).fill(7)]))}`,
    ],
  ])('rejects a non-Ed25519 multicodec: %s', (_label, did) => {
    expect(() => publicKeyFromDidKey(did)).toThrow(TypeError);
  });

  it.each(['0', 'O', 'I', 'l', '+', '/', '='])(
    'rejects a did containing the non-base58 character %s',
    (ch) => {
      const bad = `${good.slice(0, 20)}${ch}${good.slice(21)}`;
      expect(base58Decode(bad.slice('did:key:z'.length))).toBeNull();
      expect(() => publicKeyFromDidKey(bad)).toThrow(TypeError);
    },
  );

  it.each([31, 33, 0, 64])('rejects an Ed25519-prefixed key of %i bytes', (length) => {
    const did = `did:key:z${base58Encode(Uint8Array.from([0xed, 0x01, ...new Uint8Array(length).fill(9)]))}`;
    expect(() => publicKeyFromDidKey(did)).toThrow(TypeError);
  });

  it.each([
    ['no multibase prefix', good.replace('did:key:z', 'did:key:')],
    [
      'base64url multibase (u)',
      `did:key:u${Buffer.from([0xed, 0x01, ...new Uint8Array(32)]).toString('base64url')}`,
    ],
    ['another DID method', good.replace('did:key:', 'did:web:')],
    ['empty key', 'did:key:z'],
    ['trailing whitespace', `${good} `],
    ['fragment', `${good}#${good.slice(8)}`],
    ['upper-case scheme', good.replace('did:key:', 'DID:KEY:')],
  ])('rejects %s', (_label, did) => {
    expect(() => publicKeyFromDidKey(did)).toThrow(TypeError);
  });

  it.each([0, 31, 33, 64])('didKeyFromPublicKey refuses a %i-byte key', (length) => {
    expect(() => didKeyFromPublicKey(new Uint8Array(length))).toThrow(TypeError);
  });
});

describe('kidFromPublicKey', () => {
  it('is the first 16 hex characters of SHA-256 over the raw key', () => {
    const raw = publicKeyFromDidKey(VECTORS[0]?.did as string);
    expect(kidFromPublicKey(raw)).toBe('139e3940e64b5491');
    for (const { did } of VECTORS) {
      const key = publicKeyFromDidKey(did);
      const expected = createHash('sha256').update(key).digest('hex').slice(0, 16);
      expect(kidFromPublicKey(key)).toBe(expected);
      expect(kidFromPublicKey(key)).toMatch(/^[0-9a-f]{16}$/);
    }
  });

  it('differs between keys', () => {
    const kids = new Set(VECTORS.map(({ did }) => kidFromPublicKey(publicKeyFromDidKey(did))));
    expect(kids.size).toBe(VECTORS.length);
  });
});
