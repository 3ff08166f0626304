import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import { type Envelope, sealEnvelope } from '../../src/crypto/envelope.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import { type BundleFailure, type BundleTrust, verifyBundle } from '../../src/proofs/verify-bundle.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { receiptFor, type ReceiptSpan } from '../helpers/receipts.js';

/**
 * Bundles the engine seals, verified: approval receipts against the chain's events (beyond
 * Claw Bureau, which never reads event payloads) and anchored to their steps' causal spans.
 * Tampered copies are signed again with the bot's own key, so only the checks can catch them.
 */
interface Approval {
  receipt_id: string;
  approval_type: string;
  approver_method?: string;
  timestamp: string;
  minted_capability_id?: string;
  binding: { event_hash_b64u: string; tool_span_id?: string };
  [key: string]: unknown;
}
interface Payload {
  event_chain: { event_type: string; event_hash_b64u: string }[];
  human_approval_receipts: Approval[];
  metadata: { event_payloads: { event_id: string; payload: Record<string, unknown> }[] };
}
type Bundle = Envelope<Payload>;

const STEPS = ['search-kb', 'read-runbook', 'fetch-status', 'post-summary'] as const;
type Step = (typeof STEPS)[number];

/** The ops job approved by alice and chioma, each step's result carrying one receipt with `spans[step]`. */
async function sealedJob(ctx: EngineContext, spans: Record<Step, ReceiptSpan>): Promise<Bundle> {
  const job = await opsJob(ctx);
  for (const userId of [U.alice, U.chioma])
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId });
  for (const step of STEPS) {
    const c = await claimToken(ctx, { jobId: job.jobId, step, agentId: OPS.executor });
    await redeemToken(ctx, c.token);
    await reportResult(ctx, {
      jobId: job.jobId,
      step,
      agentId: OPS.executor,
      status: 'succeeded',
      receipts: [receiptFor(c, spans[step])],
    });
  }
  return bundleOfJob(ctx, job.jobId);
}

/** The ops job, its gated step denied by alice. */
async function deniedJob(ctx: EngineContext): Promise<Bundle> {
  const job = await opsJob(ctx);
  await decideStep(ctx, {
    kind: 'deny',
    jobId: job.jobId,
    step: 'post-summary',
    userId: U.alice,
    reason: 'not now',
  });
  return bundleOfJob(ctx, job.jobId);
}

async function bundleOfJob(ctx: EngineContext, jobId: number): Promise<Bundle> {
  const row = await ctx.db
    .selectFrom('bundles')
    .innerJoin('jobs', 'jobs.bundle_id', 'bundles.bundle_id')
    .select('bundles.envelope')
    .where('jobs.id', '=', jobId)
    .executeTakeFirstOrThrow();
  return JSON.parse(row.envelope) as Bundle;
}

function resign(ctx: EngineContext, env: Bundle, mutate: (p: Payload) => void): Bundle {
  const payload = structuredClone(env.payload);
  mutate(payload);
  return sealEnvelope({
    type: 'proof_bundle',
    payload,
    payloadHashB64u: bundlePayloadHash(payload),
    key: ctx.keyRing.active,
    issuedAt: new Date(env.issued_at),
  });
}

const chained: Record<Step, ReceiptSpan> = {
  'search-kb': { span_id: 'span_0' },
  'read-runbook': { span_id: 'span_1', parent_span_id: 'span_0' },
  'fetch-status': { span_id: 'span_2', parent_span_id: 'span_1' },
  'post-summary': { span_id: 'span_3', parent_span_id: 'span_2' },
};

describe(`verifying bundles the engine sealed (${dialectName})`, () => {
  let e: TestEngine;
  let trust: BundleTrust;
  let anchored: Bundle;
  let mixed: Bundle;
  let plain: Bundle;
  let denied: Bundle;
  beforeAll(async () => {
    e = await createTestEngine();
    trust = { trustsSigner: e.ctx.keyRing.trusts, gatewaySigners: e.ctx.gatewaySigners };
    anchored = await sealedJob(e.ctx, chained);
    mixed = await sealedJob(e.ctx, {
      ...chained,
      'fetch-status': {},
      'post-summary': { span_id: 'span_3', parent_span_id: 'span_1' },
    });
    plain = await sealedJob(e.ctx, {
      'search-kb': {},
      'read-runbook': {},
      'fetch-status': {},
      'post-summary': {},
    });
    denied = await deniedJob(e.ctx);
  }, 180_000);
  afterAll(async () => e?.close());

  it('verifies a job whose steps declared spans, every approval anchored to its own step', () => {
    const verdict = verifyBundle(anchored, trust);
    expect(verdict).toMatchObject({ ok: true, approvals: 5, receipts: 4 });
    const ids = verdict.checks.map((c) => c.id);
    for (const id of [
      'ours.metadata',
      'ours.run',
      'ours.event_payloads',
      'ours.policy_plan',
      'ours.tokens',
      'ours.approvals',
    ])
      expect(ids).toContain(id);
    expect(verdict.checks.find((c) => c.id === 'causal.approvals')).toMatchObject({ ok: true });
    expect(verdict.checks.find((c) => c.id === 'causal.approvals')).not.toHaveProperty('cbReason');
  });

  it("passes approvals of a step whose receipts declare no span, naming clawverify's CAUSAL_HUMAN_APPROVAL_ORPHANED", () => {
    for (const env of [mixed, plain]) {
      const verdict = verifyBundle(env, trust);
      expect(verdict).toMatchObject({ ok: true });
      expect(verdict.checks.find((c) => c.id === 'causal.approvals')).toMatchObject({
        ok: true,
        cbReason: 'CAUSAL_HUMAN_APPROVAL_ORPHANED',
      });
    }
  });

  const gated = (p: Payload) =>
    p.human_approval_receipts.filter((r) => r.approval_type === 'explicit_approve');
  const auto = (p: Payload) => p.human_approval_receipts.filter((r) => r.approval_type === 'auto_approve');
  const eventOf = (p: Payload, type: string) =>
    p.event_chain.find((x) => x.event_type === type)!.event_hash_b64u;
  const tampers: [string, BundleFailure, string | null, (p: Payload) => void][] = [
    [
      "an approval anchored to another step's span",
      'APPROVAL_NOT_ANCHORED',
      null,
      (p) => void (gated(p)[0]!.binding.tool_span_id = 'span_0'),
    ],
    [
      'an approval unanchored though its step declared a span',
      'APPROVAL_NOT_ANCHORED',
      'CAUSAL_HUMAN_APPROVAL_ORPHANED',
      (p) => void delete gated(p)[0]!.binding.tool_span_id,
    ],
    [
      'an approval bound to an event of another kind',
      'APPROVAL_RECEIPT_BINDING_MISMATCH',
      null,
      (p) => void (gated(p)[0]!.binding.event_hash_b64u = eventOf(p, 'token_claimed')),
    ],
    [
      'an approval dated otherwise than its event',
      'APPROVAL_RECEIPT_BINDING_MISMATCH',
      null,
      (p) => void (gated(p)[0]!.timestamp = '2026-11-21T09:00:00.000Z'),
    ],
    [
      'a counted approval dropped from the receipts',
      'APPROVAL_RECEIPT_BINDING_MISMATCH',
      null,
      (p) => void p.human_approval_receipts.splice(p.human_approval_receipts.indexOf(gated(p)[1]!), 1),
    ],
    [
      'an approval receipted twice',
      'APPROVAL_RECEIPT_BINDING_MISMATCH',
      null,
      (p) => void p.human_approval_receipts.push({ ...gated(p)[0]!, receipt_id: 'har_again' }),
    ],
    [
      'an approval naming another CST than the one it minted',
      'TOKEN_BINDING_MISMATCH',
      null,
      (p) => void (gated(p)[0]!.minted_capability_id = auto(p)[0]!.minted_capability_id),
    ],
    [
      'an auto approval that does not say the policy approved it',
      'APPROVAL_RECEIPT_BINDING_MISMATCH',
      null,
      (p) => void delete auto(p)[0]!.approver_method,
    ],
    [
      "a person's approval claiming the policy's method",
      'APPROVAL_RECEIPT_BINDING_MISMATCH',
      null,
      (p) => void (gated(p)[0]!.approver_method = 'policy_auto'),
    ],
    [
      'an approval turned into a timeout_deny',
      'APPROVAL_RECEIPT_BINDING_MISMATCH',
      null,
      (p) => void (gated(p)[0]!.approval_type = 'timeout_deny'),
    ],
    [
      'capability_minted, which human_approval_receipt.v1 forbids',
      'APPROVAL_RECEIPT_INVALID',
      null,
      (p) => void (gated(p)[0]!.capability_minted = true),
    ],
    [
      'an approval type outside the schema',
      'APPROVAL_RECEIPT_INVALID',
      'SCHEMA_VALIDATION_FAILED',
      (p) => void (gated(p)[0]!.approval_type = 'rubber_stamp'),
    ],
  ];
  it.each(tampers)('rejects %s with %s', (_what, reason, cbReason, tamper) => {
    const forged = resign(e.ctx, anchored, tamper);
    expect(verifyBundle(forged, trust)).toMatchObject({ ok: false, reason, cbReason });
  });

  it('checks a deny receipt against its step_denied event: no minted CST, the planned scope', () => {
    expect(verifyBundle(denied, trust)).toMatchObject({ ok: true });
    const deny = (p: Payload) => p.human_approval_receipts.find((r) => r.approval_type === 'explicit_deny')!;
    const minted = resign(e.ctx, denied, (p) => void (deny(p).minted_capability_id = 'jti'));
    expect(verifyBundle(minted, trust)).toMatchObject({ ok: false, reason: 'APPROVAL_RECEIPT_INVALID' });
    const scoped = resign(
      e.ctx,
      denied,
      (p) => void (deny(p).scope_hash_b64u = auto(p)[0]!.scope_hash_b64u as string),
    );
    expect(verifyBundle(scoped, trust)).toMatchObject({ ok: false, reason: 'TOKEN_BINDING_MISMATCH' });
    const dropped = resign(
      e.ctx,
      denied,
      (p) => void p.human_approval_receipts.splice(p.human_approval_receipts.indexOf(deny(p)), 1),
    );
    expect(verifyBundle(dropped, trust)).toMatchObject({
      ok: false,
      reason: 'APPROVAL_RECEIPT_BINDING_MISMATCH',
      message: expect.stringContaining('denial'),
    });
  });

  it('the tampered copies above differ from the sealed bundle only in what each case changed', () => {
    expect(
      verifyBundle(
        resign(e.ctx, anchored, () => {}),
        trust,
      ),
    ).toMatchObject({ ok: true });
  });
});
