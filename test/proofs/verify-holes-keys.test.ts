import { ed25519 } from '@noble/curves/ed25519.js';
import { describe, expect, it } from 'vitest';
import { didKeyFromPublicKey, publicKeyFromDidKey, UnsafeEd25519KeyError } from '../../src/crypto/did-key.js';
import { AppError } from '../../src/errors.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import { checkedDidKey, signersFromAllowlist, signersFromJwks } from '../../src/proofs/trust-sources.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import { escapeControls, escapeControlsInJson, printable, quote } from '../../src/proofs/verify/check.js';
import { newKey } from '../helpers/state.js';
import { foreignBundle, trust } from './verify-foreign-bundle.js';

const hex = (h: string) => Uint8Array.from(Buffer.from(h, 'hex'));
const didOf = (h: string) => didKeyFromPublicKey(hex(h));
const b64u = (h: string) => Buffer.from(h, 'hex').toString('base64url');

/** The eight points of small order, as @noble/curves computes them: the multiples of a point of order 8. */
function torsionEncodings(): string[] {
  const order8 = ed25519.Point.fromHex('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05');
  const out: string[] = [];
  let q = ed25519.Point.ZERO;
  for (let i = 0; i < 8; i++) {
    out.push(q.toHex());
    q = q.add(order8);
  }
  return out;
}
const IDENTITY = '01'.padEnd(64, '0');
/** Non-canonical encodings: x = 0 with the sign bit set, and y at or above the field prime. */
const NON_CANONICAL = [
  '01'.padEnd(62, '0') + '80',
  'ec'.padEnd(62, 'f') + 'ff',
  'ed'.padEnd(62, 'f') + '7f', // y = p
  'ff'.padEnd(62, 'f') + '7f', // y = 2^255 - 1
  'ee'.padEnd(62, 'f') + 'ff', // y = p + 1, sign bit set
];

describe('Ed25519 keys of small order are refused wherever a key is accepted (H8)', () => {
  const torsion = torsionEncodings();

  it('the eight points of small order are eight distinct points', () => {
    expect(new Set(torsion).size).toBe(8);
    for (const h of torsion) expect(ed25519.Point.fromHex(h).isSmallOrder()).toBe(true);
    expect(torsion).toContain(IDENTITY);
  });

  it.each([...torsion, ...NON_CANONICAL])('publicKeyFromDidKey refuses %s, naming why', (h) => {
    expect(() => publicKeyFromDidKey(didOf(h))).toThrow(UnsafeEd25519KeyError);
  });

  it('accepts ordinary keys', () => {
    for (let i = 0; i < 20; i++) {
      const key = newKey();
      expect(publicKeyFromDidKey(key.did)).toEqual(Uint8Array.from(key.publicRaw));
    }
  });

  it("a bundle 'signed' by the identity point (R = identity, S = 0 verifies anything): BUNDLE_SIGNATURE_INVALID", () => {
    const did = didOf(IDENTITY);
    const env = foreignBundle((p) => void (p.agent_did = did));
    const forged = {
      ...env,
      payload_hash_b64u: bundlePayloadHash(env.payload),
      signature_b64u: Buffer.concat([hex(IDENTITY), Buffer.alloc(32)]).toString('base64url'),
      signer_did: did,
    };
    const v = verifyBundle(forged, { ...trust, trustsSigner: (d) => d === did });
    expect(v).toMatchObject({ ok: false, reason: 'BUNDLE_SIGNATURE_INVALID', cbReason: null });
    expect(v.ok || v.message).toContain('small order');
    expect(v.checks.at(-1)).toMatchObject({ id: 'envelope.signature', ok: false });
  });

  it('a JWKS listing a key of small order is refused as a whole (ERR_KEY_INVALID)', () => {
    const good = { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(newKey().publicRaw).toString('base64url') };
    for (const h of [IDENTITY, ...torsion, ...NON_CANONICAL]) {
      const jwks = { keys: [good, { kty: 'OKP', crv: 'Ed25519', x: b64u(h) }] };
      expect(() => signersFromJwks(jwks, 'jwks test')).toThrow(AppError);
      expect(() => signersFromJwks(jwks, 'jwks test')).toThrow(
        'jwks test: keys[1] is not a usable signing key',
      );
    }
    expect(signersFromJwks({ keys: [good] }, 'jwks test')).toHaveLength(1);
  });

  it('--trust, --gateway and allowlists refuse a did:key of small order, saying so', () => {
    const did = didOf(IDENTITY);
    expect(() => checkedDidKey(did, '--trust')).toThrow(
      '--trust: not a usable signing key: Ed25519 public key of small order',
    );
    expect(() => signersFromAllowlist({ gateway_receipt_signer_dids: [did] }, 'allowlist')).toThrow(AppError);
  });
});

describe('untrusted text reaches a terminal escaped (H8)', () => {
  const HOSTILE = 'a\u009b2Jb\u202egnp.exe\u2066\u0007\u001b[31m\u2028\u061c\u200f\u007f';
  // eslint-disable-next-line no-control-regex -- control characters are what it finds
  const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;

  it('quote: no C0, C1 (U+009B) or bidi control survives, each written as \\uXXXX', () => {
    const q = quote(HOSTILE);
    expect(q).not.toMatch(UNSAFE);
    expect(q).toBe('"a\\u009b2Jb\\u202egnp.exe\\u2066\\u0007\\u001b[31m\\u2028\\u061c\\u200f\\u007f"');
  });

  it('printable and escapeControls: the same, printable bounded', () => {
    expect(escapeControls(HOSTILE)).not.toMatch(UNSAFE);
    expect(printable(HOSTILE.repeat(100))).not.toMatch(UNSAFE);
    expect(printable(HOSTILE.repeat(100)).length).toBeLessThanOrEqual(300);
  });

  it('escapeControlsInJson: JSON text that a terminal shows safely and that parses to the same value', () => {
    const value = { [HOSTILE]: [HOSTILE, { nested: HOSTILE }], plain: 'ok\n' };
    const text = escapeControlsInJson(JSON.stringify(value, null, 2));
    expect(text.replaceAll('\n', '')).not.toMatch(UNSAFE);
    expect(JSON.parse(text)).toEqual(value);
  });
});
