import { describe, expect, it } from 'vitest';
import { sealEnvelope } from '../../src/crypto/envelope.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import { gatewayReceipt } from '../helpers/receipts.js';
import { newKey } from '../helpers/state.js';
import {
  type ForeignPayload as Payload,
  event,
  foreignBundle,
  gateway,
  trust,
} from './verify-foreign-bundle.js';

/** A human approval receipt valid on its own and bound to the bundle's only event. */
function approval(p: Payload, overrides: Record<string, unknown> = {}) {
  return {
    receipt_version: '1',
    receipt_id: 'har_test_1',
    approval_type: 'explicit_approve',
    approver_subject: 'user@example.com',
    agent_did: p.agent_did,
    scope_hash_b64u: 'c2NvcGUtaGFzaA',
    hash_algorithm: 'SHA-256',
    timestamp: '2026-02-12T00:00:00.000Z',
    binding: { run_id: p.event_chain[0]!.run_id, event_hash_b64u: p.event_chain[0]!.event_hash_b64u },
    ...overrides,
  };
}

describe('approval receipts of any bundle, not only ones this project sealed', () => {
  it('accepts a well-formed approval receipt bound to the chain', () => {
    const env = foreignBundle((p) => {
      p.human_approval_receipts = [approval(p)];
    });
    expect(verifyBundle(env, trust)).toMatchObject({ ok: true, approvals: 1 });
  });

  it('rejects approval_type "rubber_stamp" in a bundle signed by a trusted key', () => {
    const env = foreignBundle((p) => {
      p.human_approval_receipts = [approval(p, { approval_type: 'rubber_stamp' })];
    });
    expect(verifyBundle(env, trust)).toMatchObject({
      ok: false,
      reason: 'APPROVAL_RECEIPT_INVALID',
      cbReason: 'SCHEMA_VALIDATION_FAILED',
      message: expect.stringContaining('human_approval_receipts[0].approval_type'),
    });
  });

  it("rejects an approval receipt carrying another agent's DID", () => {
    const other = newKey();
    const env = foreignBundle((p) => {
      p.human_approval_receipts = [approval(p, { agent_did: other.did })];
    });
    expect(verifyBundle(env, trust)).toMatchObject({
      ok: false,
      reason: 'APPROVAL_RECEIPT_INVALID',
      cbReason: 'PROOF_BUNDLE_AGENT_MISMATCH',
    });
  });

  const unbound: [string, (p: Payload) => Record<string, unknown>][] = [
    ['no binding', (p) => ({ ...approval(p), binding: undefined })],
    [
      'a binding to another run',
      (p) => approval(p, { binding: { ...approval(p).binding, run_id: 'run_other' } }),
    ],
    [
      'a binding to an event of no chain',
      (p) =>
        approval(p, {
          binding: { ...approval(p).binding, event_hash_b64u: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
        }),
    ],
    ['a binding without its event', (p) => approval(p, { binding: { run_id: p.event_chain[0]!.run_id } })],
  ];
  it.each(unbound)('rejects an approval receipt with %s', (_what, make) => {
    const env = foreignBundle((p) => {
      p.human_approval_receipts = [JSON.parse(JSON.stringify(make(p)))];
    });
    expect(verifyBundle(env, trust)).toMatchObject({
      ok: false,
      reason: 'APPROVAL_RECEIPT_BINDING_MISMATCH',
    });
  });

  it("rejects what human_approval_receipt.v1 forbids though the bundle's looser schema allows it", () => {
    const env = foreignBundle((p) => {
      p.human_approval_receipts = [approval(p, { capability_minted: true })];
    });
    // Claw Bureau's verifier applies only the bundle's item schema, which lists capability_minted.
    expect(verifyBundle(env, trust)).toMatchObject({
      ok: false,
      reason: 'APPROVAL_RECEIPT_INVALID',
      cbReason: null,
      message: expect.stringContaining('capability_minted'),
    });
  });
});

describe('gateway receipts', () => {
  const bound = { run_id: event.run_id, event_hash_b64u: event.event_hash_b64u };
  const withReceipt = (receipt: unknown) =>
    foreignBundle((p) => {
      p.receipts = [receipt];
    });

  it('accepts a receipt of an allowlisted gateway bound to the chain', () => {
    expect(verifyBundle(withReceipt(gatewayReceipt(gateway, bound, 'r1')), trust)).toMatchObject({
      ok: true,
      receipts: 1,
    });
  });

  it('rejects an unbound receipt (Claw Bureau counts only bound ones and would pass it)', () => {
    const { binding: _b, ...payload } = (
      gatewayReceipt(gateway, bound, 'r1') as { payload: Record<string, unknown> }
    ).payload;
    const env = withReceipt(resealReceipt(payload));
    expect(verifyBundle(env, trust)).toMatchObject({
      ok: false,
      reason: 'RECEIPT_BINDING_MISMATCH',
      cbReason: null,
    });
  });

  const numbers: [string, Record<string, unknown>][] = [
    ['fractional tokens', { tokens_input: 1.5 }],
    ['more than 10 million tokens', { tokens_output: 10_000_001 }],
    ['a latency over an hour', { latency_ms: 3_600_001 }],
  ];
  it.each(numbers)('rejects %s as clawverify does', (_what, change) => {
    const payload = {
      ...(gatewayReceipt(gateway, bound, 'r1') as { payload: Record<string, unknown> }).payload,
      ...change,
    };
    expect(verifyBundle(withReceipt(resealReceipt(payload)), trust)).toMatchObject({
      ok: false,
      reason: 'RECEIPT_ENVELOPE_MALFORMED',
      cbReason: 'RECEIPT_VERIFICATION_FAILED',
    });
  });

  it("checks metadata against the receipt's own schema, which names more keys than the bundle's", () => {
    const payload = {
      ...(gatewayReceipt(gateway, bound, 'r1') as { payload: Record<string, unknown> }).payload,
      metadata: { x402_amount_minor: -5 },
    };
    expect(verifyBundle(withReceipt(resealReceipt(payload)), trust)).toMatchObject({
      ok: false,
      reason: 'RECEIPT_ENVELOPE_MALFORMED',
      cbReason: 'RECEIPT_VERIFICATION_FAILED',
      message: expect.stringContaining('x402_amount_minor'),
    });
  });

  it("rejects metadata the bundle's schema constrains before any hash is computed", () => {
    const payload = {
      ...(gatewayReceipt(gateway, bound, 'r1') as { payload: Record<string, unknown> }).payload,
      metadata: {
        model_identity: { model_identity_version: '1', tier: 'mystery', model: { provider: 'p', name: 'n' } },
      },
    };
    expect(verifyBundle(withReceipt(resealReceipt(payload)), trust)).toMatchObject({
      ok: false,
      reason: 'RECEIPT_ENVELOPE_MALFORMED',
      cbReason: 'SCHEMA_VALIDATION_FAILED',
    });
  });
});

describe('side-effect receipts', () => {
  const sideEffect = (p: Payload, overrides: Record<string, unknown> = {}) => ({
    receipt_version: '1',
    receipt_id: 'ser_1',
    effect_class: 'network_egress',
    hash_algorithm: 'SHA-256',
    agent_did: p.agent_did,
    timestamp: '2026-02-12T00:00:00.000Z',
    binding: { run_id: event.run_id, event_hash_b64u: event.event_hash_b64u },
    ...overrides,
  });
  const cases: [string, (p: Payload) => unknown, string, string | null][] = [
    [
      'another agent',
      (p) => sideEffect(p, { agent_did: newKey().did }),
      'SIDE_EFFECT_RECEIPT_INVALID',
      'PROOF_BUNDLE_AGENT_MISMATCH',
    ],
    [
      'BLAKE3 digests',
      (p) => sideEffect(p, { hash_algorithm: 'BLAKE3' }),
      'SIDE_EFFECT_RECEIPT_INVALID',
      'UNKNOWN_HASH_ALGORITHM',
    ],
    [
      'an effect class not in the schema',
      (p) => sideEffect(p, { effect_class: 'database_write' }),
      'SIDE_EFFECT_RECEIPT_INVALID',
      'SCHEMA_VALIDATION_FAILED',
    ],
    [
      'no binding',
      (p) => sideEffect(p, { binding: undefined }),
      'SIDE_EFFECT_RECEIPT_BINDING_MISMATCH',
      null,
    ],
    [
      // Bound to the chain, but no gateway receipt declares a span for it to hang from.
      'no causal anchor',
      (p) => sideEffect(p),
      'SIDE_EFFECT_NOT_ANCHORED',
      'CAUSAL_SIDE_EFFECT_ORPHANED',
    ],
  ];
  it.each(cases)('rejects one with %s', (_what, make, reason, cbReason) => {
    const env = foreignBundle((p) => {
      p.side_effect_receipts = [JSON.parse(JSON.stringify(make(p)))];
    });
    expect(verifyBundle(env, trust)).toMatchObject({ ok: false, reason, cbReason });
  });
});

/** A gateway receipt envelope over `payload`, signed by the tests' gateway. */
function resealReceipt(payload: Record<string, unknown>) {
  return sealEnvelope({
    type: 'gateway_receipt',
    payload,
    payloadHashB64u: bundlePayloadHash(payload),
    key: gateway,
    issuedAt: new Date('2026-11-21T10:00:01.000Z'),
  });
}
