import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { claimToken, MAX_SUMMARY_LENGTH, reportResult } from '../../src/jobs/agent-job-ops.js';
import { createJob } from '../../src/jobs/create-job.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import { createTestEngine, OPS, opsJob, registerAgent, type TestEngine, U } from '../helpers/engine.js';
import { receiptFor } from '../helpers/receipts.js';

// Half a surrogate pair is not text: JCS (and so the event chain) refuses it. What an agent
// sends must be refused as bad input, or cut where it cannot split a pair, never an internal error.
let engine: TestEngine;
afterEach(async () => engine?.close());

describe('lone surrogates never reach the event chain', () => {
  it('a job param with a lone surrogate is refused as bad input, and no job is created', async () => {
    engine = await createTestEngine();
    const made = createJob(engine.ctx, {
      origin: {
        kind: 'mattermost',
        teamId: OPS.team,
        channelId: OPS.channel,
        rootPostId: 'rootlone0000000000000001',
      },
      requesterId: U.grace,
      runbook: {
        name: 'service-context',
        params: { service: 'payments-api', query: 'x\ud800', notify_channel: 'payments-oncall' },
      },
    });
    await expect(made).rejects.toBeInstanceOf(AppError);
    await expect(made).rejects.toMatchObject({ code: 'ERR_PLAN_INVALID' });
    expect(await engine.ctx.db.selectFrom('jobs').select('id').execute()).toEqual([]);
  });

  it('a summary cut at its limit inside an emoji keeps whole characters; one with a lone surrogate is refused', async () => {
    engine = await createTestEngine();
    const { ctx } = engine;
    await registerAgent(ctx);
    const job = await opsJob(ctx);
    const run = async (step: string, summary: string) => {
      const claim = await claimToken(ctx, { jobId: job.jobId, step, agentId: OPS.executor });
      await redeemToken(ctx, claim.token);
      return reportResult(ctx, {
        jobId: job.jobId,
        step,
        agentId: OPS.executor,
        status: 'succeeded',
        summary,
        receipts: [receiptFor(claim)],
      });
    };
    await run('search-kb', `${'a'.repeat(MAX_SUMMARY_LENGTH - 1)}\u{1F600} and more`);
    const row = await ctx.db
      .selectFrom('job_steps')
      .select('result_summary')
      .where('job_id', '=', job.jobId)
      .where('step_id', '=', 'search-kb')
      .executeTakeFirstOrThrow();
    expect(row.result_summary).toBe('a'.repeat(MAX_SUMMARY_LENGTH - 1));

    await expect(run('read-runbook', 'done \udc00')).rejects.toMatchObject({ code: 'ERR_VALIDATION' });
  });
});
