import { afterEach, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import { ChatPresenter, endedPostKey } from '../../src/presenter/chat-presenter.js';
import { receiptFor, testGateway } from '../helpers/receipts.js';
import { createTestEngine, OPS, opsJob, U, type TestEngine } from '../helpers/engine.js';

let e: TestEngine;
afterEach(async () => e?.close());

describe('engine smoke', () => {
  it('runs a job end to end and seals a verifiable bundle', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    ctx.events = new ChatPresenter({ publicUrl: 'https://claw.example.com' });
    const job = await opsJob(ctx);
    expect(job.minted.map((m) => m.step)).toEqual(['search-kb', 'read-runbook', 'fetch-status']);
    const a1 = await decideStep(ctx, {
      kind: 'approve',
      jobId: job.jobId,
      step: 'post-summary',
      userId: U.alice,
    });
    expect(a1.code).toBe('APPROVAL_COUNTED');
    const a2 = await decideStep(ctx, {
      kind: 'approve',
      jobId: job.jobId,
      step: 'post-summary',
      userId: U.chioma,
    });
    expect(a2.code).toBe('QUORUM_MET');
    // The gateway declares one causal span per step, each hanging from the previous one.
    let parent: string | undefined;
    for (const step of ['search-kb', 'read-runbook', 'fetch-status', 'post-summary']) {
      const c = await claimToken(ctx, { jobId: job.jobId, step, agentId: OPS.executor });
      await redeemToken(ctx, c.token);
      await expect(redeemToken(ctx, c.token)).rejects.toMatchObject({ code: 'ERR_TOKEN_REPLAYED' });
      const r = await reportResult(ctx, {
        jobId: job.jobId,
        step,
        agentId: OPS.executor,
        status: 'succeeded',
        receipts: [receiptFor(c, { span_id: `span_${step}`, ...(parent ? { parent_span_id: parent } : {}) })],
      });
      if (step === 'post-summary') expect(r.ended?.status).toBe('completed');
      parent = `span_${step}`;
    }
    const row = await ctx.db.selectFrom('bundles').selectAll().executeTakeFirstOrThrow();
    const verdict = verifyBundle(JSON.parse(row.envelope), {
      trustsSigner: ctx.keyRing.trusts,
      gatewaySigners: ctx.gatewaySigners,
    });
    expect(verdict).toMatchObject({ ok: true, receipts: 4 });
    // Nothing Claw Bureau's verifier would refuse: no check, passed or not, carries its reason.
    expect(verdict.checks.filter((c) => c.cbReason)).toEqual([]);
    // The thread's reviewer command names the gateway whose receipts the bundle carries.
    const ended = await ctx.db
      .selectFrom('outbox')
      .select('message')
      .where('dedupe_key', '=', endedPostKey(job.jobId))
      .executeTakeFirstOrThrow();
    expect(ended.message).toContain(`--gateway ${testGateway.did}`);
  });
});
