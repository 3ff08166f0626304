import { afterEach, describe, expect, it } from 'vitest';
import { decideStep, type PostContext } from '../../src/approvals/record-decision.js';
import type { Db } from '../../src/db/database.js';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { createJob } from '../../src/jobs/create-job.js';
import { endJobByCommand } from '../../src/jobs/revoke-job.js';
import { AppMetrics } from '../../src/metrics/app-metrics.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { receiptFor } from '../helpers/receipts.js';
import { Scrape } from './exposition.js';

let e: TestEngine | undefined;
afterEach(async () => {
  await e?.close();
  e = undefined;
});

/** A real engine whose decisions and mints go to a real metrics registry. */
async function engineWithMetrics() {
  e = await createTestEngine();
  const metrics = new AppMetrics({ version: 'test', db: e.d.db, chat: false, defaultMetrics: false });
  e.ctx.metrics = metrics.engine;
  return { ctx: e.ctx, clock: e.clock, scrape: async () => new Scrape(await metrics.render()) };
}

async function inThread(ctx: EngineContext, jobId: number, postId: string): Promise<PostContext> {
  const job = await ctx.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow();
  return { postId, channelId: job.channel_id!, rootId: job.root_post_id! };
}

const decisionSeries = (m: Scrape) =>
  m
    .family('claw_decisions_total')
    .samples.map((s) => ({ ...s.labels, n: s.value }))
    .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

describe(`decisions and mints reach the metrics after commit (${dialectName})`, () => {
  it('labels every recorded decision with its kind, outcome, reason code and source', async () => {
    const { ctx, scrape } = await engineWithMetrics();
    const job = await opsJob(ctx);
    const other = await opsJob(ctx);
    const row = await ctx.db
      .selectFrom('jobs')
      .selectAll()
      .where('id', '=', job.jobId)
      .executeTakeFirstOrThrow();
    // A phrase in the thread, an HTTP caller (no post, no button), a button of a policy without buttons.
    await decideStep(ctx, {
      kind: 'approve',
      jobId: job.jobId,
      step: 'post-summary',
      userId: U.alice,
      post: await inThread(ctx, job.jobId, 'p'.repeat(26)),
    });
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.outsider });
    await decideStep(ctx, {
      kind: 'approve',
      jobId: job.jobId,
      step: 'post-summary',
      userId: U.dmitri,
      button: {
        postId: 'b'.repeat(26),
        channelId: row.channel_id!,
        planHash: row.plan_hash_b64u,
        policyHash: row.policy_hash_b64u,
      },
    });
    // The slash command cancels without a post; an operator revokes.
    await endJobByCommand(ctx, {
      kind: 'cancel',
      jobId: job.jobId,
      actor: { kind: 'user', userId: U.grace },
      reason: 'not needed',
    });
    await endJobByCommand(ctx, {
      kind: 'revoke',
      jobId: other.jobId,
      actor: { kind: 'admin', name: 'ops' },
      reason: 'incident',
    });

    const m = await scrape();
    expect(decisionSeries(m)).toEqual(
      [
        { kind: 'approve', outcome: 'accepted', code: 'APPROVAL_COUNTED', source: 'chat', n: 1 },
        { kind: 'approve', outcome: 'rejected', code: 'ERR_NOT_ELIGIBLE', source: 'api', n: 1 },
        { kind: 'approve', outcome: 'rejected', code: 'ERR_FORBIDDEN', source: 'button', n: 1 },
        { kind: 'cancel', outcome: 'accepted', code: 'JOB_CANCELLED', source: 'command', n: 1 },
        { kind: 'revoke', outcome: 'accepted', code: 'JOB_REVOKED', source: 'api', n: 1 },
      ].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
    );
    // As many as the database recorded, under the codes it recorded.
    const rows = await ctx.db.selectFrom('decisions').select(['kind', 'outcome', 'reason_code']).execute();
    expect(rows).toHaveLength(5);
    for (const r of rows)
      expect(m.find('claw_decisions_total', { kind: r.kind, outcome: r.outcome, code: r.reason_code })).toBe(
        1,
      );
    // Three read-only steps were minted with each job; no gated one.
    expect(m.value('claw_tokens_minted_total', { gate: 'auto' })).toBe(6);
    expect(m.value('claw_tokens_minted_total', { gate: 'gated' })).toBe(0);
  });

  it("counts nothing of a decision and mint rolled back with its caller's transaction, then the committed one once", async () => {
    const { ctx, scrape } = await engineWithMetrics();
    const job = await opsJob(ctx);
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice });
    const before = await scrape();
    const chioma = { kind: 'approve' as const, jobId: job.jobId, step: 'post-summary', userId: U.chioma };
    let outcome: unknown;
    await expect(
      ctx.db.transaction().execute(async (trx: Db) => {
        outcome = await decideStep(ctx, chioma, trx);
        throw new Error('the caller failed after deciding');
      }),
    ).rejects.toThrow('the caller failed after deciding');
    expect(outcome).toMatchObject({ code: 'QUORUM_MET', minted: { step: 'post-summary' } });
    const rolledBack = await scrape();
    expect(decisionSeries(rolledBack)).toEqual(decisionSeries(before));
    expect(rolledBack.value('claw_tokens_minted_total', { gate: 'gated' })).toBe(0);
    expect(rolledBack.value('claw_approval_to_token_seconds_count')).toBe(0);
    expect(
      await ctx.db.selectFrom('decisions').select('id').where('user_id', '=', U.chioma).execute(),
    ).toEqual([]);

    expect((await decideStep(ctx, chioma)).code).toBe('QUORUM_MET');
    const after = await scrape();
    expect(after.value('claw_decisions_total', { code: 'APPROVAL_COUNTED', source: 'api' })).toBe(2);
    expect(after.value('claw_tokens_minted_total', { gate: 'gated' })).toBe(1);
    expect(after.value('claw_approval_to_token_seconds_count')).toBe(1);
    // Minted in the deciding approval's own transaction, on a clock that did not move.
    expect(after.value('claw_approval_to_token_seconds_sum')).toBe(0);
  });

  it('times a deferred mint from the approval that completed quorum to the commit of its token', async () => {
    const { ctx, clock, scrape } = await engineWithMetrics();
    const job = await createJob(ctx, {
      origin: {
        kind: 'mattermost',
        teamId: 'ro7kuk9yq4x16n1dx5zf41zw5o',
        channelId: '764sdesxud1ew5yaqwmgdw4pe9',
        rootPostId: 'r'.repeat(26),
      },
      requesterId: U.farid,
      runbook: {
        name: 'prod-change',
        params: { change_id: 'CHG0031337', review_bundle_id: 'pb_AAAAAAAAAAAAAAAAAAAAAA' },
      },
    });
    const approveChange = (userId: string) =>
      decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'approve-change', userId });
    await approveChange(U.priya);
    clock.advance(30);
    // Quorum is met now, but the step waits for its simulation.
    expect(await approveChange(U.rosa)).toMatchObject({
      code: 'APPROVAL_COUNTED',
      missing: { approvals: 0 },
    });
    clock.advance(300);
    const claim = await claimToken(ctx, {
      jobId: job.jobId,
      step: 'simulate',
      agentId: 'agent:change-prod-1',
    });
    const r = await reportResult(ctx, {
      jobId: job.jobId,
      step: 'simulate',
      agentId: 'agent:change-prod-1',
      status: 'succeeded',
      receipts: [receiptFor(claim)],
    });
    expect(r.minted).toEqual(['approve-change']);
    const m = await scrape();
    expect(m.value('claw_tokens_minted_total', { gate: 'gated' })).toBe(1);
    expect(m.value('claw_tokens_minted_total', { gate: 'auto' })).toBe(1);
    expect(m.value('claw_approval_to_token_seconds_count')).toBe(1);
    expect(m.value('claw_approval_to_token_seconds_sum')).toBe(300);
    expect(m.value('claw_approval_to_token_seconds_bucket', { le: '60' })).toBe(0);
    expect(m.value('claw_approval_to_token_seconds_bucket', { le: '300' })).toBe(1);
  });
});
