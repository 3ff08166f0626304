import { afterEach, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import type { Envelope } from '../../src/crypto/envelope.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { gatewayReceipt, receiptFor, type ReceiptSpan } from '../helpers/receipts.js';
import { newKey } from '../helpers/state.js';

interface Binding {
  run_id?: string;
  event_hash_b64u?: string;
  span_id?: string;
  parent_span_id?: string;
  tool_span_id?: string;
}
interface Sealed {
  event_chain: { event_id: string; event_hash_b64u: string; event_type: string }[];
  human_approval_receipts: { approval_type: string; binding: Binding }[];
  receipts?: Envelope<{ binding: Binding }>[];
  metadata: { event_payloads: { event_id: string; payload: Record<string, unknown> }[] };
}

const STEPS = ['search-kb', 'read-runbook', 'fetch-status', 'post-summary'] as const;
type Step = (typeof STEPS)[number];
/** What each step's result carries, given the step's claim (receipts in position order). */
type Evidence = (claim: { runId: string; eventHash: string }) => Envelope<unknown>[];

const opened: TestEngine[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((t) => t.close()));
});

/** The ops job approved by alice and chioma, every step run with `evidence[step]` as its receipts. */
async function runJob(evidence: Record<Step, Evidence>): Promise<Sealed> {
  const e = await createTestEngine();
  opened.push(e);
  const { ctx } = e;
  const job = await opsJob(ctx);
  for (const userId of [U.alice, U.chioma])
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId });
  for (const step of STEPS) {
    const c = await claimToken(ctx, { jobId: job.jobId, step, agentId: OPS.executor });
    await redeemToken(ctx, c.token);
    const r = await reportResult(ctx, {
      jobId: job.jobId,
      step,
      agentId: OPS.executor,
      status: 'succeeded',
      summary: `${step} done`,
      receipts: evidence[step](c),
    });
    if (step === 'post-summary') expect(r.ended?.status).toBe('completed');
  }
  return sealedPayload(ctx, job.jobId);
}

async function sealedPayload(ctx: EngineContext, jobId: number): Promise<Sealed> {
  const job = await ctx.db
    .selectFrom('jobs')
    .select('bundle_id')
    .where('id', '=', jobId)
    .executeTakeFirstOrThrow();
  const row = await ctx.db
    .selectFrom('bundles')
    .select('envelope')
    .where('bundle_id', '=', job.bundle_id!)
    .executeTakeFirstOrThrow();
  return (JSON.parse(row.envelope) as { payload: Sealed }).payload;
}

/**
 * Read from the bundle alone, independently of the sealer: the step of every event (from its
 * payload), the spans the bundle's gateway receipts declare per step (a receipt's step is the
 * step of the claim it is bound to), and each approval receipt's step and anchor.
 */
function anchoring(p: Sealed) {
  const payloadOf = new Map(p.metadata.event_payloads.map((x) => [x.event_id, x.payload]));
  const stepOfEvent = new Map(
    p.event_chain.map((ev) => [ev.event_hash_b64u, String(payloadOf.get(ev.event_id)!.step)]),
  );
  const spansOfStep = new Map<string, string[]>();
  for (const r of p.receipts ?? []) {
    const { span_id, event_hash_b64u } = r.payload.binding;
    if (span_id === undefined) continue;
    const step = stepOfEvent.get(event_hash_b64u!)!;
    spansOfStep.set(step, [...(spansOfStep.get(step) ?? []), span_id]);
  }
  const approvals = p.human_approval_receipts.map((r) => ({
    type: r.approval_type,
    step: stepOfEvent.get(r.binding.event_hash_b64u!)!,
    anchor: r.binding.tool_span_id,
  }));
  return { spansOfStep, approvals };
}

/** One receipt per step, chained: step i declares span_i with span_(i-1) as its parent. */
const chained = (step: Step): Evidence => {
  const i = STEPS.indexOf(step);
  const span: ReceiptSpan = { span_id: `span_${i}`, ...(i > 0 ? { parent_span_id: `span_${i - 1}` } : {}) };
  return (c) => [receiptFor(c, span)];
};

describe(`approval receipts are anchored to their step's causal span (${dialectName})`, () => {
  it("every approval receipt of a job whose steps declared spans names a span of its own step's receipts", async () => {
    const p = await runJob({
      'search-kb': chained('search-kb'),
      'read-runbook': chained('read-runbook'),
      'fetch-status': chained('fetch-status'),
      'post-summary': chained('post-summary'),
    });
    const { spansOfStep, approvals } = anchoring(p);
    expect(approvals).toHaveLength(5);
    for (const a of approvals) {
      expect(a.anchor, `${a.type} of ${a.step}`).toBeDefined();
      expect(spansOfStep.get(a.step)).toContain(a.anchor);
    }
    expect(approvals.map((a) => [a.step, a.anchor])).toEqual([
      ['search-kb', 'span_0'],
      ['read-runbook', 'span_1'],
      ['fetch-status', 'span_2'],
      ['post-summary', 'span_3'],
      ['post-summary', 'span_3'],
    ]);
    // The receipts form one graph with one root, as clawverify's enforce mode wants.
    const bindings = (p.receipts ?? []).map((r) => r.payload.binding);
    expect(bindings.filter((b) => b.parent_span_id === undefined).map((b) => b.span_id)).toEqual(['span_0']);
    const declared = new Set(bindings.map((b) => b.span_id));
    for (const b of bindings)
      if (b.parent_span_id !== undefined) expect(declared).toContain(b.parent_span_id);
  });

  it('anchors to the first verified receipt that declares a span: never an unverified one, never another step', async () => {
    const stranger = newKey();
    const p = await runJob({
      'search-kb': (c) => [
        // Position 0: declares a span, but its signer is not trusted.
        gatewayReceipt(
          stranger,
          { run_id: c.runId, event_hash_b64u: c.eventHash, span_id: 'span_forged' },
          'x1',
        ),
        receiptFor(c),
        receiptFor(c, { span_id: 'span_a' }),
        receiptFor(c, { span_id: 'span_b', parent_span_id: 'span_a' }),
      ],
      'read-runbook': (c) => [receiptFor(c, { span_id: 'span_c', parent_span_id: 'span_b' })],
      'fetch-status': (c) => [receiptFor(c)],
      'post-summary': (c) => [receiptFor(c, { span_id: 'span_d', parent_span_id: 'span_c' })],
    });
    const { approvals } = anchoring(p);
    expect(approvals.map((a) => [a.step, a.anchor])).toEqual([
      ['search-kb', 'span_a'],
      ['read-runbook', 'span_c'],
      // No receipt of this step declares a span: no anchor (clawverify's enforce mode reports
      // CAUSAL_HUMAN_APPROVAL_ORPHANED for it), rather than a borrowed one.
      ['fetch-status', undefined],
      ['post-summary', 'span_d'],
      ['post-summary', 'span_d'],
    ]);
    expect(JSON.stringify(p)).not.toContain('"tool_span_id":"span_forged"');
  });

  it('receipts without spans leave every binding as before: no tool_span_id key at all', async () => {
    const plain: Evidence = (c) => [receiptFor(c)];
    const p = await runJob({
      'search-kb': plain,
      'read-runbook': plain,
      'fetch-status': plain,
      'post-summary': plain,
    });
    for (const r of p.human_approval_receipts) expect(r.binding).not.toHaveProperty('tool_span_id');
  });
});
