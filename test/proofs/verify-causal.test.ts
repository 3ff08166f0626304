import { describe, expect, it } from 'vitest';
import { sealEnvelope } from '../../src/crypto/envelope.js';
import { sha256B64u } from '../../src/crypto/hash.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import { type ForeignPayload, event, foreignBundle, gateway, trust } from './verify-foreign-bundle.js';

/**
 * Claw Bureau's causal rules (enforce mode) over the spans gateway receipts declare, in
 * bundles of another harness; the approval anchoring of our own bundles is tested on sealed
 * jobs in verify-sealed.test.ts.
 */

/** A receipt of the tests' gateway, bound to the bundle's event, its binding extended by `span`. */
function spanReceipt(id: string, span: Record<string, unknown>, overrides: Record<string, unknown> = {}) {
  const payload = {
    receipt_version: '1',
    receipt_id: id,
    gateway_id: 'gw_test',
    provider: 'anthropic',
    model: 'claude-test',
    request_hash_b64u: sha256B64u(`request ${id}`),
    response_hash_b64u: sha256B64u(`response ${id}`),
    tokens_input: 10,
    tokens_output: 20,
    latency_ms: 123,
    timestamp: '2026-02-12T00:00:00.000Z',
    binding: { run_id: event.run_id, event_hash_b64u: event.event_hash_b64u, ...span },
    ...overrides,
  };
  return sealEnvelope({
    type: 'gateway_receipt',
    payload,
    payloadHashB64u: bundlePayloadHash(payload),
    key: gateway,
    issuedAt: new Date('2026-02-12T00:00:01.000Z'),
  });
}

function approval(p: ForeignPayload, binding: Record<string, unknown> = {}) {
  return {
    receipt_version: '1',
    receipt_id: `har_${JSON.stringify(binding).length}`,
    approval_type: 'explicit_approve',
    approver_subject: 'alice',
    agent_did: p.agent_did,
    scope_hash_b64u: 'c2NvcGUtaGFzaA',
    hash_algorithm: 'SHA-256',
    timestamp: '2026-02-12T00:00:00.000Z',
    binding: { run_id: event.run_id, event_hash_b64u: event.event_hash_b64u, ...binding },
  };
}

const bundleWith = (receipts: unknown[], approvals: (p: ForeignPayload) => unknown[] = () => []) =>
  foreignBundle((p) => {
    p.receipts = receipts;
    const list = approvals(p);
    if (list.length > 0) p.human_approval_receipts = list;
  });

const root = () => spanReceipt('r0', { span_id: 'root', phase: 'planning' });
const child = () => spanReceipt('r1', { span_id: 'tool', parent_span_id: 'root', phase: 'execution' });

describe('the span graph of gateway receipts', () => {
  it('accepts one rooted, connected graph with an approval hanging from its tool span', () => {
    const env = bundleWith([root(), child()], (p) => [approval(p, { tool_span_id: 'tool' })]);
    const verdict = verifyBundle(env, trust);
    expect(verdict).toMatchObject({ ok: true });
    expect(verdict.checks.find((c) => c.id === 'causal.graph')?.message).toContain('2 spans');
    expect(verdict.checks.find((c) => c.id === 'causal.approvals')).not.toHaveProperty('cbReason');
  });

  const broken: [string, () => unknown[], string][] = [
    [
      'a parent no receipt declares',
      () => [spanReceipt('r1', { span_id: 'a', parent_span_id: 'ghost' })],
      'CAUSAL_REFERENCE_DANGLING',
    ],
    [
      'a cycle of parents',
      () => [
        root(),
        spanReceipt('r1', { span_id: 'a', parent_span_id: 'b' }),
        spanReceipt('r2', { span_id: 'b', parent_span_id: 'a' }),
      ],
      'CAUSAL_CYCLE_DETECTED',
    ],
    [
      'two unrelated roots',
      () => [root(), spanReceipt('r1', { span_id: 'other' })],
      'CAUSAL_GRAPH_DISCONNECTED',
    ],
    [
      'a span declared again with another parent',
      () => [
        root(),
        spanReceipt('r1', { span_id: 'x', parent_span_id: 'root' }),
        spanReceipt('r2', { span_id: 'y', parent_span_id: 'root' }),
        spanReceipt('r3', { span_id: 'x', parent_span_id: 'y' }),
      ],
      'CAUSAL_SPAN_REUSE_CONFLICT',
    ],
    [
      'a child earlier than its parent',
      () => [
        root(),
        spanReceipt(
          'r1',
          { span_id: 'c', parent_span_id: 'root' },
          { timestamp: '2026-02-11T00:00:00.000Z' },
        ),
      ],
      'CAUSAL_CLOCK_CONTRADICTION',
    ],
    [
      'a receipt timestamped after its envelope was issued',
      () => [spanReceipt('r1', { span_id: 'a' }, { timestamp: '2026-02-13T00:00:00.000Z' })],
      'CAUSAL_CLOCK_CONTRADICTION',
    ],
    [
      'a phase going backwards',
      () => [root(), spanReceipt('r1', { span_id: 'c', parent_span_id: 'root', phase: 'setup' })],
      'CAUSAL_PHASE_TRANSITION_INVALID',
    ],
    [
      'snake and camel case disagreeing',
      () => [spanReceipt('r1', { span_id: 'a', spanId: 'b' })],
      'CAUSAL_BINDING_FIELD_CONFLICT',
    ],
    ['a blank span id', () => [spanReceipt('r1', { span_id: '   ' })], 'CAUSAL_BINDING_NORMALIZATION_FAILED'],
    [
      'an attribution confidence a lone span cannot support',
      () => [spanReceipt('r1', { span_id: 'a', attribution_confidence: 0.9 })],
      'CAUSAL_CONFIDENCE_EVIDENCE_INCONSISTENT',
    ],
  ];
  it.each(broken)('rejects %s', (_what, receipts, cbReason) => {
    expect(verifyBundle(bundleWith(receipts()), trust)).toMatchObject({
      ok: false,
      reason: 'CAUSAL_BINDING_INVALID',
      cbReason,
    });
  });

  it('classifies a schema violation in a causal field as Claw Bureau does', () => {
    expect(
      verifyBundle(bundleWith([spanReceipt('r1', { span_id: 'a', phase: 'dreaming' })]), trust),
    ).toMatchObject({
      ok: false,
      reason: 'RECEIPT_ENVELOPE_MALFORMED',
      cbReason: 'CAUSAL_PHASE_INVALID',
    });
    expect(
      verifyBundle(bundleWith([spanReceipt('r1', { span_id: 'a', attributionConfidence: '1' })]), trust),
    ).toMatchObject({
      ok: false,
      cbReason: 'CAUSAL_CONFIDENCE_OUT_OF_RANGE',
    });
  });
});

describe('receipt replay', () => {
  it('rejects a receipt id reused for another payload', () => {
    const env = bundleWith([spanReceipt('r1', {}), spanReceipt('r1', {}, { tokens_output: 21 })]);
    expect(verifyBundle(env, trust)).toMatchObject({
      ok: false,
      reason: 'RECEIPT_REPLAYED',
      cbReason: 'CAUSAL_RECEIPT_REPLAY_DETECTED',
    });
  });

  it('accepts the same receipt twice, as Claw Bureau does', () => {
    expect(verifyBundle(bundleWith([spanReceipt('r1', {}), spanReceipt('r1', {})]), trust)).toMatchObject({
      ok: true,
    });
  });
});

describe('approval receipts and the spans (bundles of another harness)', () => {
  it('fails an approval hanging from no span when the receipts declare spans', () => {
    const env = bundleWith([root(), child()], (p) => [approval(p)]);
    expect(verifyBundle(env, trust)).toMatchObject({
      ok: false,
      reason: 'APPROVAL_NOT_ANCHORED',
      cbReason: 'CAUSAL_HUMAN_APPROVAL_ORPHANED',
    });
  });

  it('fails an approval hanging from a span nobody declared', () => {
    const env = bundleWith([root()], (p) => [approval(p, { tool_span_id: 'ghost' })]);
    expect(verifyBundle(env, trust)).toMatchObject({
      ok: false,
      reason: 'APPROVAL_NOT_ANCHORED',
      cbReason: 'CAUSAL_HUMAN_APPROVAL_ORPHANED',
    });
  });

  it("passes an approval bound to the chain when no receipt declares a span, naming clawverify's code", () => {
    const env = bundleWith([spanReceipt('r1', {})], (p) => [approval(p)]);
    const verdict = verifyBundle(env, trust);
    expect(verdict).toMatchObject({ ok: true });
    expect(verdict.checks.find((c) => c.id === 'causal.approvals')).toMatchObject({
      ok: true,
      cbReason: 'CAUSAL_HUMAN_APPROVAL_ORPHANED',
      message: expect.stringContaining('clawverify'),
    });
  });

  it('anchors a side-effect receipt to a declared span, as enforce mode requires', () => {
    const env = foreignBundle((p) => {
      p.receipts = [root()];
      p.side_effect_receipts = [
        {
          receipt_version: '1',
          receipt_id: 'ser_1',
          effect_class: 'filesystem_write',
          hash_algorithm: 'SHA-256',
          agent_did: p.agent_did,
          timestamp: '2026-02-12T00:00:00.000Z',
          binding: { run_id: event.run_id, event_hash_b64u: event.event_hash_b64u, parent_span_id: 'root' },
        },
      ];
    });
    expect(verifyBundle(env, trust)).toMatchObject({ ok: true });
  });
});
