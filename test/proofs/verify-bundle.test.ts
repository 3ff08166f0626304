import { describe, expect, it } from 'vitest';
import { verifyEnvelope } from '../../src/crypto/envelope.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import { type BundleFailure, type BundleTrust, verifyBundle } from '../../src/proofs/verify-bundle.js';
import { clawBureauJson } from '../helpers/clawbureau.js';

// Claw Bureau's own conformance vectors: one bundle its verifier accepts, two it rejects.
const fixture = (name: string): unknown => clawBureauJson(`fixtures/${name}`);

interface Allowlists {
  gateway_receipt_signer_dids: string[];
  agent_did: string;
}
interface FixtureBundle {
  signer_did: string;
  issued_at: string;
  payload: {
    bundle_id: string;
    event_chain: { run_id: string; event_hash_b64u: string }[];
    receipts: { signer_did: string; payload: { binding: { run_id: string; event_hash_b64u: string } } }[];
  };
}

const allowlists = fixture('allowlists.v1.json') as Allowlists;
const pass = () => fixture('proof_bundle_pass.v1.json') as FixtureBundle;
const badSignature = () => fixture('proof_bundle_fail_invalid_signature.v1.json') as FixtureBundle;
const bindingMismatch = () => fixture('proof_bundle_fail_receipt_binding_mismatch.v1.json') as FixtureBundle;

/** Trust exactly as the vectors' allowlists say. */
const allowlisted: BundleTrust = {
  trustsSigner: (did) => did === allowlists.agent_did,
  gatewaySigners: new Set(allowlists.gateway_receipt_signer_dids),
};

describe('verifyBundle on the Claw Bureau conformance vectors', () => {
  it('accepts proof_bundle_pass with the allowlisted agent and gateway signers', () => {
    const env = pass();
    expect(verifyBundle(env, allowlisted)).toEqual({
      ok: true,
      bundleId: 'bundle_conformance_001',
      signerDid: allowlists.agent_did,
      events: 1,
      receipts: 1,
      approvals: 0,
    });
  });

  it('asks the trust callback about the envelope signer at its issued_at', () => {
    const env = pass();
    const asked: [string, string][] = [];
    const verdict = verifyBundle(env, {
      trustsSigner: (did, at) => {
        asked.push([did, at.toISOString()]);
        return did === allowlists.agent_did;
      },
      gatewaySigners: allowlisted.gatewaySigners,
    });
    expect(verdict.ok).toBe(true);
    expect(asked).toEqual([[env.signer_did, env.issued_at]]);
  });

  it('rejects proof_bundle_fail_invalid_signature with BUNDLE_SIGNATURE_INVALID', () => {
    expect(verifyBundle(badSignature(), allowlisted)).toMatchObject({
      ok: false,
      reason: 'BUNDLE_SIGNATURE_INVALID',
    });
  });

  it('rejects proof_bundle_fail_receipt_binding_mismatch with RECEIPT_BINDING_MISMATCH', () => {
    const env = bindingMismatch();
    // Why this reason and not RECEIPT_SIGNER_UNTRUSTED or RECEIPT_SIGNATURE_INVALID: the vector's
    // receipt was re-signed by the allowlisted gateway, so the receipt envelope on its own is
    // sound; only its binding names another run than the bundle's event chain.
    const receipt = env.payload.receipts[0]!;
    expect(allowlists.gateway_receipt_signer_dids).toContain(receipt.signer_did);
    expect(
      verifyEnvelope(receipt, {
        type: 'gateway_receipt',
        hashPayload: bundlePayloadHash,
        trustedSigners: allowlisted.gatewaySigners,
      }),
    ).toEqual({ ok: true });
    expect(receipt.payload.binding.run_id).toBe('run_conformance_other');
    expect(env.payload.event_chain[0]!.run_id).toBe('run_conformance_001');
    // The bundle envelope itself verifies too: the failure is the receipt binding alone.
    expect(verifyEnvelope(env, { type: 'proof_bundle', hashPayload: bundlePayloadHash })).toEqual({
      ok: true,
    });

    expect(verifyBundle(env, allowlisted)).toMatchObject({
      ok: false,
      reason: 'RECEIPT_BINDING_MISMATCH',
      message: expect.stringContaining('run_conformance_other'),
    });
  });

  it('rejects a bundle whose signer is not trusted with BUNDLE_SIGNER_UNTRUSTED', () => {
    const verdict = verifyBundle(pass(), {
      trustsSigner: () => false,
      gatewaySigners: allowlisted.gatewaySigners,
    });
    expect(verdict).toMatchObject({ ok: false, reason: 'BUNDLE_SIGNER_UNTRUSTED' });
    const otherAgent = verifyBundle(pass(), {
      trustsSigner: (did) => did === allowlists.gateway_receipt_signer_dids[0],
      gatewaySigners: allowlisted.gatewaySigners,
    });
    expect(otherAgent).toMatchObject({ ok: false, reason: 'BUNDLE_SIGNER_UNTRUSTED' });
  });

  it('rejects a gateway receipt whose signer is not allowlisted with RECEIPT_SIGNER_UNTRUSTED', () => {
    expect(verifyBundle(pass(), { ...allowlisted, gatewaySigners: new Set() })).toMatchObject({
      ok: false,
      reason: 'RECEIPT_SIGNER_UNTRUSTED',
    });
    expect(
      verifyBundle(pass(), { ...allowlisted, gatewaySigners: new Set([allowlists.agent_did]) }),
    ).toMatchObject({ ok: false, reason: 'RECEIPT_SIGNER_UNTRUSTED' });
  });

  it('checks the bundle signature before trusting anything inside it', () => {
    // The invalid-signature vector fails on its signature even when nothing else is trusted.
    expect(
      verifyBundle(badSignature(), { trustsSigner: () => false, gatewaySigners: new Set() }),
    ).toMatchObject({ ok: false, reason: 'BUNDLE_SIGNATURE_INVALID' });
  });

  const malformed: [string, () => unknown, BundleFailure][] = [
    ['not an object', () => 'proof bundle', 'BUNDLE_ENVELOPE_MALFORMED'],
    ['null', () => null, 'BUNDLE_ENVELOPE_MALFORMED'],
    [
      'a WPC envelope type',
      () => ({ ...pass(), envelope_type: 'work_policy_contract' }),
      'BUNDLE_ENVELOPE_TYPE_MISMATCH',
    ],
    ['another algorithm', () => ({ ...pass(), algorithm: 'ES256' }), 'BUNDLE_UNSUPPORTED_ALGORITHM'],
    [
      'an edited payload',
      () => {
        const env = pass();
        env.payload.bundle_id = 'bundle_conformance_002';
        return env;
      },
      'BUNDLE_HASH_MISMATCH',
    ],
    [
      'a signer that is no did:key',
      () => ({ ...pass(), signer_did: 'did:web:example.com' }),
      'BUNDLE_SIGNER_DID_INVALID',
    ],
  ];
  it.each(malformed)('rejects %s with %s', (_why, make, reason) => {
    expect(verifyBundle(make(), allowlisted)).toMatchObject({ ok: false, reason });
  });
});
