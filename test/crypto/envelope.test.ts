import { describe, expect, it } from 'vitest';
import { type Envelope, type EnvelopeType, sealEnvelope, verifyEnvelope } from '../../src/crypto/envelope.js';
import { jcsHashB64u, sha256B64u } from '../../src/crypto/hash.js';
import { generateSigningJwk, type SigningKey, signingKeyFromJwk } from '../../src/tokens/signing-key.js';
import { BASE58_ALPHABET as ALPHABET, base58Decode } from '../helpers/base58.js';
import { clawBureauJson } from '../helpers/clawbureau.js';

const fixture = (name: string): unknown => clawBureauJson(`fixtures/${name}`);

interface Allowlists {
  gateway_receipt_signer_dids: string[];
  agent_did: string;
}
interface BundlePayload {
  agent_did: string;
  event_chain: { run_id: string; event_hash_b64u: string }[];
  receipts: Envelope<{ binding: { run_id: string; event_hash_b64u: string } }>[];
}

const allowlists = fixture('allowlists.v1.json') as Allowlists;
const passBundle = fixture('proof_bundle_pass.v1.json') as Envelope<BundlePayload>;
const badSignatureBundle = fixture('proof_bundle_fail_invalid_signature.v1.json') as Envelope<BundlePayload>;
const bindingMismatchBundle = fixture(
  'proof_bundle_fail_receipt_binding_mismatch.v1.json',
) as Envelope<BundlePayload>;

// Claw Bureau's verifier hashes bundle and receipt payloads as JSON.stringify in their own key order.
const stringifyHash = (payload: unknown): string => sha256B64u(JSON.stringify(payload));
const bundleOpts = { type: 'proof_bundle' as const, hashPayload: stringifyHash };
const receiptOpts = {
  type: 'gateway_receipt' as const,
  hashPayload: stringifyHash,
  trustedSigners: new Set(allowlists.gateway_receipt_signer_dids),
};

/** Raw Ed25519 key of a did:key, or null when it is not one. */
function ed25519FromDid(did: string): Uint8Array | null {
  const match = /^did:key:z(.+)$/.exec(did);
  const bytes = match?.[1] ? base58Decode(match[1]) : null;
  if (bytes?.length !== 34 || bytes[0] !== 0xed || bytes[1] !== 0x01) return null;
  return bytes.slice(2);
}

/** Ed25519 verification with WebCrypto, independent of node:crypto sign/verify. */
async function webCryptoVerify(envelope: {
  signer_did: string;
  payload_hash_b64u: string;
  signature_b64u: string;
}) {
  const publicRaw = ed25519FromDid(envelope.signer_did);
  if (!publicRaw) throw new Error('signer_did is not an Ed25519 did:key');
  const key = await crypto.subtle.importKey('raw', publicRaw, { name: 'Ed25519' }, false, ['verify']);
  return crypto.subtle.verify(
    'Ed25519',
    key,
    Buffer.from(envelope.signature_b64u, 'base64url'),
    new TextEncoder().encode(envelope.payload_hash_b64u),
  );
}

const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B58 = ALPHABET;
const replaceAt = (text: string, index: number, ch: string): string =>
  text.slice(0, index) + ch + text.slice(index + 1);
const otherChar = (alphabet: string, ch: string | undefined): string =>
  (ch === alphabet[0] ? alphabet[1] : alphabet[0]) as string;

describe('Claw Bureau fixtures', () => {
  it('proof_bundle_pass verifies as a proof_bundle', () => {
    expect(verifyEnvelope(passBundle, bundleOpts)).toEqual({ ok: true });
  });

  it('proof_bundle_pass is signed by the allowlisted agent', () => {
    expect(passBundle.signer_did).toBe(allowlists.agent_did);
    expect(passBundle.payload.agent_did).toBe(allowlists.agent_did);
    expect(
      verifyEnvelope(passBundle, { ...bundleOpts, trustedSigners: new Set([allowlists.agent_did]) }),
    ).toEqual({
      ok: true,
    });
  });

  it('its gateway receipts verify against the gateway signer allowlist', () => {
    expect(passBundle.payload.receipts.length).toBeGreaterThan(0);
    for (const receipt of passBundle.payload.receipts) {
      expect(allowlists.gateway_receipt_signer_dids).toContain(receipt.signer_did);
      expect(verifyEnvelope(receipt, receiptOpts)).toEqual({ ok: true });
    }
  });

  it('a receipt is not accepted as a proof bundle, nor signed by the agent', () => {
    const receipt = passBundle.payload.receipts[0];
    expect(verifyEnvelope(receipt, bundleOpts)).toMatchObject({
      ok: false,
      reason: 'ENVELOPE_TYPE_MISMATCH',
    });
    expect(
      verifyEnvelope(receipt, { ...receiptOpts, trustedSigners: new Set([allowlists.agent_did]) }),
    ).toMatchObject({ ok: false, reason: 'SIGNER_UNTRUSTED' });
  });

  it('the bundle hash is JSON.stringify in the payload key order, not JCS', () => {
    expect(passBundle.payload_hash_b64u).toBe(stringifyHash(passBundle.payload));
    expect(verifyEnvelope(passBundle, { type: 'proof_bundle', hashPayload: jcsHashB64u })).toMatchObject({
      ok: false,
      reason: 'HASH_MISMATCH',
    });
  });

  it('proof_bundle_fail_invalid_signature fails with SIGNATURE_INVALID', () => {
    // The fixture is the pass bundle with the first character of the outer signature_b64u
    // changed ("9FS8..." -> "AFS8..."); payload and hash are untouched.
    expect(badSignatureBundle.payload_hash_b64u).toBe(passBundle.payload_hash_b64u);
    expect(badSignatureBundle.signature_b64u).not.toBe(passBundle.signature_b64u);
    expect(verifyEnvelope(badSignatureBundle, bundleOpts)).toMatchObject({
      ok: false,
      reason: 'SIGNATURE_INVALID',
    });
    // Its receipt is the same valid one.
    for (const receipt of badSignatureBundle.payload.receipts) {
      expect(verifyEnvelope(receipt, receiptOpts)).toEqual({ ok: true });
    }
  });

  it('proof_bundle_fail_receipt_binding_mismatch is valid at envelope level; only the binding is wrong', () => {
    // Both the bundle and its receipt were re-signed after the receipt's binding.run_id was
    // changed, so envelope-level verification (hash + signature + signer) correctly passes.
    // The failure is a binding check (receipt.binding.run_id must equal the bound event's
    // run_id), which is not part of verifyEnvelope.
    expect(verifyEnvelope(bindingMismatchBundle, bundleOpts)).toEqual({ ok: true });
    for (const receipt of bindingMismatchBundle.payload.receipts) {
      expect(verifyEnvelope(receipt, receiptOpts)).toEqual({ ok: true });
    }
    const [event] = bindingMismatchBundle.payload.event_chain;
    const [receipt] = bindingMismatchBundle.payload.receipts;
    expect(receipt?.payload.binding.event_hash_b64u).toBe(event?.event_hash_b64u);
    expect(receipt?.payload.binding.run_id).not.toBe(event?.run_id);
    // In the pass fixture the same binding matches.
    const [passEvent] = passBundle.payload.event_chain;
    expect(passBundle.payload.receipts[0]?.payload.binding.run_id).toBe(passEvent?.run_id);
  });

  it('fixture signatures verify with WebCrypto Ed25519 too', async () => {
    expect(await webCryptoVerify(passBundle)).toBe(true);
    for (const receipt of passBundle.payload.receipts) expect(await webCryptoVerify(receipt)).toBe(true);
    expect(await webCryptoVerify(bindingMismatchBundle)).toBe(true);
    expect(await webCryptoVerify(badSignatureBundle)).toBe(false);
  });
});

describe('sealEnvelope / verifyEnvelope', () => {
  const key: SigningKey = signingKeyFromJwk(generateSigningJwk(), 'test key');
  const other: SigningKey = signingKeyFromJwk(generateSigningJwk(), 'other key');
  const payload = { bundle_version: '1', bundle_id: 'pb_test', items: [1, 2, { z: 'last', a: 'first' }] };
  const issuedAt = new Date('2026-02-12T00:00:00.000Z');
  const sealed = sealEnvelope({
    type: 'proof_bundle',
    payload,
    payloadHashB64u: stringifyHash(payload),
    key,
    issuedAt,
  });
  const check = (envelope: unknown, opts: Partial<Parameters<typeof verifyEnvelope>[1]> = {}) =>
    verifyEnvelope(envelope, { ...bundleOpts, ...opts });
  const reasonOf = (envelope: unknown, opts: Partial<Parameters<typeof verifyEnvelope>[1]> = {}) => {
    const result = check(envelope, opts);
    return result.ok ? 'OK' : result.reason;
  };

  it('produces a well-formed envelope', () => {
    expect(sealed).toEqual({
      envelope_version: '1',
      envelope_type: 'proof_bundle',
      payload,
      payload_hash_b64u: stringifyHash(payload),
      hash_algorithm: 'SHA-256',
      signature_b64u: expect.stringMatching(/^[A-Za-z0-9_-]{86}$/),
      algorithm: 'Ed25519',
      signer_did: key.did,
      issued_at: '2026-02-12T00:00:00.000Z',
    });
  });

  it('round-trips, with and without a trusted-signer set', () => {
    expect(check(sealed)).toEqual({ ok: true });
    expect(check(sealed, { trustedSigners: new Set([other.did, key.did]) })).toEqual({ ok: true });
    // Survives a trip through JSON.
    expect(check(JSON.parse(JSON.stringify(sealed)))).toEqual({ ok: true });
  });

  it('works for every envelope type with the matching type only', () => {
    const types: EnvelopeType[] = ['work_policy_contract', 'proof_bundle', 'gateway_receipt'];
    for (const type of types) {
      const env = sealEnvelope({ type, payload, payloadHashB64u: jcsHashB64u(payload), key, issuedAt });
      for (const expected of types) {
        expect(reasonOf(env, { type: expected, hashPayload: jcsHashB64u })).toBe(
          expected === type ? 'OK' : 'ENVELOPE_TYPE_MISMATCH',
        );
      }
    }
  });

  it('the signature verifies with WebCrypto over the UTF-8 bytes of payload_hash_b64u', async () => {
    expect(await webCryptoVerify(sealed)).toBe(true);
    // ... and not over the raw digest bytes.
    const publicRaw = ed25519FromDid(sealed.signer_did) as Uint8Array;
    expect(Buffer.from(publicRaw).toString('hex')).toBe(Buffer.from(key.publicRaw).toString('hex'));
    const webKey = await crypto.subtle.importKey('raw', publicRaw, { name: 'Ed25519' }, false, ['verify']);
    const digest = Buffer.from(sealed.payload_hash_b64u, 'base64url');
    expect(
      await crypto.subtle.verify('Ed25519', webKey, Buffer.from(sealed.signature_b64u, 'base64url'), digest),
    ).toBe(false);
  });

  it('the signature does not verify under another signer_did', async () => {
    const forged = { ...sealed, signer_did: other.did };
    expect(reasonOf(forged)).toBe('SIGNATURE_INVALID');
    expect(await webCryptoVerify(forged)).toBe(false);
  });

  it('changing any single character of payload_hash_b64u gives HASH_MISMATCH', () => {
    const hash = sealed.payload_hash_b64u;
    expect(hash).toHaveLength(43);
    for (let i = 0; i < hash.length; i++) {
      const tampered = { ...sealed, payload_hash_b64u: replaceAt(hash, i, otherChar(B64U, hash[i])) };
      expect(reasonOf(tampered), `position ${i}`).toBe('HASH_MISMATCH');
    }
  });

  it('changing a payload field gives HASH_MISMATCH; re-hashing it gives SIGNATURE_INVALID', () => {
    const changed = { ...payload, bundle_id: 'pb_other' };
    expect(reasonOf({ ...sealed, payload: changed })).toBe('HASH_MISMATCH');
    expect(reasonOf({ ...sealed, payload: { ...payload, items: [1, 2, { a: 'first', z: 'last' }] } })).toBe(
      'HASH_MISMATCH',
    );
    expect(reasonOf({ ...sealed, payload: { ...payload, extra: true } })).toBe('HASH_MISMATCH');
    expect(reasonOf({ ...sealed, payload: changed, payload_hash_b64u: stringifyHash(changed) })).toBe(
      'SIGNATURE_INVALID',
    );
  });

  it('changing any single character of signature_b64u to one that changes its bytes gives SIGNATURE_INVALID', async () => {
    const sig = sealed.signature_b64u;
    const original = Buffer.from(sig, 'base64url');
    let tried = 0;
    for (let i = 0; i < sig.length; i++) {
      for (const ch of B64U) {
        if (ch === sig[i]) continue;
        const mutated = replaceAt(sig, i, ch);
        if (Buffer.from(mutated, 'base64url').equals(original)) continue; // covered by the next test
        tried++;
        expect(reasonOf({ ...sealed, signature_b64u: mutated }), `position ${i} -> ${ch}`).toBe(
          'SIGNATURE_INVALID',
        );
      }
    }
    expect(tried).toBeGreaterThan(85 * 63);
    expect(
      await webCryptoVerify({ ...sealed, signature_b64u: replaceAt(sig, 0, otherChar(B64U, sig[0])) }),
    ).toBe(false);
  });

  it('rejects a non-canonical signature_b64u whose unused trailing bits are set', () => {
    // 64 bytes take 86 base64url characters, and the last one carries only 2 significant bits:
    // 15 other characters decode to the same signature bytes. The envelope differs from the one
    // signed, so a strict verifier must not report it valid (signature malleability).
    const sig = sealed.signature_b64u;
    const original = Buffer.from(sig, 'base64url');
    const last = sig.length - 1;
    const aliases = [...B64U].filter(
      (ch) => ch !== sig[last] && Buffer.from(replaceAt(sig, last, ch), 'base64url').equals(original),
    );
    expect(aliases).toHaveLength(15);
    for (const ch of aliases) {
      const result = check({ ...sealed, signature_b64u: replaceAt(sig, last, ch) });
      expect(result.ok, `last character ${sig[last]} -> ${ch}`).toBe(false);
    }
  });

  it('a signature of the wrong length or encoding is rejected', () => {
    const sig = sealed.signature_b64u;
    expect(reasonOf({ ...sealed, signature_b64u: sig.slice(0, -1) })).toBe('SIGNATURE_INVALID');
    expect(reasonOf({ ...sealed, signature_b64u: `${sig}A` })).toBe('SIGNATURE_INVALID');
    expect(reasonOf({ ...sealed, signature_b64u: `${sig}AA` })).toBe('SIGNATURE_INVALID');
    expect(reasonOf({ ...sealed, signature_b64u: `${sig}==` })).toBe('ENVELOPE_MALFORMED');
    expect(reasonOf({ ...sealed, signature_b64u: replaceAt(sig, 10, '+') })).toBe('ENVELOPE_MALFORMED');
    expect(reasonOf({ ...sealed, signature_b64u: replaceAt(sig, 10, '/') })).toBe('ENVELOPE_MALFORMED');
    expect(reasonOf({ ...sealed, signature_b64u: '' })).toBe('ENVELOPE_MALFORMED');
  });

  it('changing any single character of signer_did gives SIGNER_DID_INVALID or SIGNATURE_INVALID', () => {
    const did = sealed.signer_did;
    const counts = { SIGNER_DID_INVALID: 0, SIGNATURE_INVALID: 0 };
    for (let i = 0; i < did.length; i++) {
      const inKey = i >= 'did:key:z'.length;
      const mutated = replaceAt(did, i, inKey ? otherChar(B58, did[i]) : 'x');
      // Expected from the independent decoder: still an Ed25519 did:key -> wrong key -> bad signature.
      const expected = ed25519FromDid(mutated) ? 'SIGNATURE_INVALID' : 'SIGNER_DID_INVALID';
      const reason = reasonOf({ ...sealed, signer_did: mutated });
      expect(reason, `position ${i}: ${mutated}`).toBe(expected);
      counts[expected]++;
    }
    // Both outcomes really occur: the prefix/multicodec positions and the key positions.
    expect(counts.SIGNER_DID_INVALID).toBeGreaterThanOrEqual(9);
    expect(counts.SIGNATURE_INVALID).toBeGreaterThan(30);
  });

  it('a signer_did with a non-base58 character or another method is SIGNER_DID_INVALID', () => {
    const did = sealed.signer_did;
    expect(reasonOf({ ...sealed, signer_did: replaceAt(did, 20, '0') })).toBe('SIGNER_DID_INVALID');
    expect(reasonOf({ ...sealed, signer_did: replaceAt(did, 20, 'l') })).toBe('SIGNER_DID_INVALID');
    expect(reasonOf({ ...sealed, signer_did: did.replace('did:key:', 'did:web:') })).toBe(
      'SIGNER_DID_INVALID',
    );
    expect(
      reasonOf({ ...sealed, signer_did: 'did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme' }),
    ).toBe('SIGNER_DID_INVALID');
  });

  it('a wrong envelope_type gives ENVELOPE_TYPE_MISMATCH', () => {
    expect(reasonOf(sealed, { type: 'gateway_receipt' })).toBe('ENVELOPE_TYPE_MISMATCH');
    expect(reasonOf({ ...sealed, envelope_type: 'gateway_receipt' })).toBe('ENVELOPE_TYPE_MISMATCH');
    expect(reasonOf({ ...sealed, envelope_type: undefined })).toBe('ENVELOPE_TYPE_MISMATCH');
  });

  it('an unsupported algorithm gives UNSUPPORTED_ALGORITHM', () => {
    expect(reasonOf({ ...sealed, algorithm: 'RS256' })).toBe('UNSUPPORTED_ALGORITHM');
    expect(reasonOf({ ...sealed, algorithm: 'EdDSA' })).toBe('UNSUPPORTED_ALGORITHM');
    expect(reasonOf({ ...sealed, algorithm: 'ed25519' })).toBe('UNSUPPORTED_ALGORITHM');
    expect(reasonOf({ ...sealed, hash_algorithm: 'SHA-512' })).toBe('UNSUPPORTED_ALGORITHM');
    expect(reasonOf({ ...sealed, hash_algorithm: undefined })).toBe('UNSUPPORTED_ALGORITHM');
  });

  it('an untrusted signer gives SIGNER_UNTRUSTED', () => {
    expect(reasonOf(sealed, { trustedSigners: new Set([other.did]) })).toBe('SIGNER_UNTRUSTED');
    expect(reasonOf(sealed, { trustedSigners: new Set() })).toBe('SIGNER_UNTRUSTED');
    // A validly signed envelope by an untrusted key is still untrusted.
    const byOther = sealEnvelope({
      type: 'proof_bundle',
      payload,
      payloadHashB64u: stringifyHash(payload),
      key: other,
      issuedAt,
    });
    expect(reasonOf(byOther)).toBe('OK');
    expect(reasonOf(byOther, { trustedSigners: new Set([key.did]) })).toBe('SIGNER_UNTRUSTED');
  });

  it.each([
    ['null', null],
    ['undefined', undefined],
    ['a string', JSON.stringify({ envelope_version: '1' })],
    ['a number', 42],
    ['an array', []],
  ])('%s gives ENVELOPE_MALFORMED', (_label, value) => {
    expect(reasonOf(value)).toBe('ENVELOPE_MALFORMED');
  });

  it.each([
    ['envelope_version "2"', { envelope_version: '2' }],
    ['numeric envelope_version', { envelope_version: 1 }],
    ['payload_hash_b64u with padding', { payload_hash_b64u: `${stringifyHash(payload)}=` }],
    ['payload_hash_b64u in standard base64', { payload_hash_b64u: 'a+b/' }],
    ['signature_b64u not a string', { signature_b64u: 12 }],
    ['signer_did not a string', { signer_did: null }],
    ['issued_at not a date', { issued_at: 'yesterday' }],
    ['issued_at missing', { issued_at: undefined }],
  ])('%s gives ENVELOPE_MALFORMED', (_label, patch) => {
    expect(reasonOf({ ...sealed, ...patch })).toBe('ENVELOPE_MALFORMED');
  });

  it('a missing payload or one that cannot be hashed gives ENVELOPE_MALFORMED', () => {
    const { payload: _omit, ...withoutPayload } = sealed;
    expect(reasonOf(withoutPayload)).toBe('ENVELOPE_MALFORMED');
    expect(reasonOf({ ...sealed, payload: { n: 1n } })).toBe('ENVELOPE_MALFORMED');
    expect(
      reasonOf(sealed, {
        hashPayload: () => {
          throw new Error('boom');
        },
      }),
    ).toBe('ENVELOPE_MALFORMED');
  });
});
