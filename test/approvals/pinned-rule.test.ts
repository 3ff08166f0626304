import { afterEach, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import { canonicalJson } from '../../src/crypto/jcs.js';
import type { EngineContext } from '../../src/jobs/context.js';
import type { ApprovalRule } from '../../src/policy/types.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { captureLogger } from '../helpers/log.js';

let e: TestEngine | undefined;
afterEach(async () => {
  await e?.close();
  e = undefined;
});

const STEP = 'post-summary';

async function storedRule(ctx: EngineContext, jobId: number): Promise<ApprovalRule> {
  const row = await ctx.db
    .selectFrom('job_steps')
    .select('rule')
    .where('job_id', '=', jobId)
    .where('step_id', '=', STEP)
    .executeTakeFirstOrThrow();
  return JSON.parse(row.rule!) as ApprovalRule;
}

async function tamper(
  ctx: EngineContext,
  jobId: number,
  set: { rule?: string | null; gate?: 'auto' | 'gated'; simulation_step?: string | null },
) {
  await ctx.db
    .updateTable('job_steps')
    .set(set)
    .where('job_id', '=', jobId)
    .where('step_id', '=', STEP)
    .execute();
}

async function tokenCount(ctx: EngineContext, jobId: number): Promise<number> {
  return (
    await ctx.db
      .selectFrom('tokens')
      .select('jti')
      .where('job_id', '=', jobId)
      .where('step_id', '=', STEP)
      .execute()
  ).length;
}

describe(`the rule applied is the pinned policy's, not the stored row's (${dialectName})`, () => {
  it('one approval does not mint after job_steps.rule was edited to required_approvals: 1', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const rule = await storedRule(ctx, job.jobId);
    expect(rule.required_approvals).toBe(2);
    await tamper(ctx, job.jobId, { rule: canonicalJson({ ...rule, required_approvals: 1 }) });

    const d = await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: STEP, userId: U.alice });
    expect(d).toMatchObject({ accepted: false, code: 'ERR_STEP_RULE_MISMATCH' });
    expect(await tokenCount(ctx, job.jobId)).toBe(0);
    const rows = await ctx.db.selectFrom('decisions').selectAll().where('job_id', '=', job.jobId).execute();
    expect(rows).toMatchObject([
      { outcome: 'rejected', reason_code: 'ERR_STEP_RULE_MISMATCH', user_id: U.alice },
    ]);
  });

  it('an approval counted before the edit does not let the next one mint on the edited rule', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    expect(
      (await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: STEP, userId: U.alice })).code,
    ).toBe('APPROVAL_COUNTED');
    // Loosened to "anyone in any group, requester included": the policy still says ops-oncall + sec-reviewers.
    const rule = await storedRule(ctx, job.jobId);
    await tamper(ctx, job.jobId, {
      rule: canonicalJson({ ...rule, distinct_groups: false, allow_requester_approval: true }),
    });
    const d = await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: STEP, userId: U.bruno });
    expect(d).toMatchObject({ accepted: false, code: 'ERR_STEP_RULE_MISMATCH' });
    expect(await tokenCount(ctx, job.jobId)).toBe(0);
  });

  it('a gated step edited to look auto (no rule) is refused, not minted, and the mismatch is logged as an error', async () => {
    const log = captureLogger();
    e = await createTestEngine({ log: log.log });
    const { ctx } = e;
    const job = await opsJob(ctx);
    await tamper(ctx, job.jobId, { rule: null, gate: 'auto' });
    const d = await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: STEP, userId: U.alice });
    expect(d).toMatchObject({ accepted: false, code: 'ERR_STEP_RULE_MISMATCH' });
    expect(await tokenCount(ctx, job.jobId)).toBe(0);
    const errors = log
      .lines()
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.level === 50);
    expect(errors).toContainEqual(
      expect.objectContaining({
        jobId: job.jobId,
        step: STEP,
        msg: expect.stringContaining('pinned policy'),
      }),
    );
  });

  it('an untouched row decides as before: two approvals mint', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: STEP, userId: U.alice });
    const d = await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: STEP, userId: U.chioma });
    expect(d.code).toBe('QUORUM_MET');
    expect(await tokenCount(ctx, job.jobId)).toBe(1);
  });
});
