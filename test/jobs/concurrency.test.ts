import { afterEach, describe, expect, it } from 'vitest';
import { decideStep, type DecisionOutcome, type PostContext } from '../../src/approvals/record-decision.js';
import { claimToken } from '../../src/jobs/agent-job-ops.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { endJobByCommand } from '../../src/jobs/revoke-job.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import { createTestEngine, editJson, OPS, opsJob, U, type TestEngine } from '../helpers/engine.js';

/**
 * SPEC section 2: "Concurrent approvals mint exactly one CST", and single redemption. Under
 * PostgreSQL these calls really race over a connection pool; under PGlite they queue for its
 * one connection, which still interleaves them at transaction boundaries.
 */

let e: TestEngine | undefined;
afterEach(async () => {
  await e?.close();
  e = undefined;
});

const EXTRA = 24;
/** Extra Mattermost user ids (26 lowercase alphanumerics) for each approver group. */
const extraOps = Array.from({ length: EXTRA }, (_, i) => `opsx${String(i).padStart(22, '0')}`);
const extraSec = Array.from({ length: EXTRA }, (_, i) => `secx${String(i).padStart(22, '0')}`);

async function crowdedEngine(): Promise<TestEngine> {
  return createTestEngine({
    edit: (dir) =>
      editJson(dir, 'groups.json', (g) => {
        const groups = g.groups as Record<string, { members: { user_id?: string; note?: string }[] }>;
        groups['ops-oncall']!.members.push(...extraOps.map((id) => ({ user_id: id, note: 'test on-call' })));
        groups['sec-reviewers']!.members.push(
          ...extraSec.map((id) => ({ user_id: id, note: 'test reviewer' })),
        );
      }),
  });
}

const approve = (ctx: EngineContext, jobId: number, userId: string, post?: PostContext) =>
  decideStep(ctx, { kind: 'approve', jobId, step: 'post-summary', userId, ...(post ? { post } : {}) });

function countCodes(outcomes: readonly DecisionOutcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) counts[o.code] = (counts[o.code] ?? 0) + 1;
  return counts;
}

async function stepTokens(ctx: EngineContext, jobId: number, step = 'post-summary') {
  return ctx.db
    .selectFrom('tokens')
    .selectAll()
    .where('job_id', '=', jobId)
    .where('step_id', '=', step)
    .execute();
}

async function acceptedApprovals(ctx: EngineContext, jobId: number) {
  return ctx.db
    .selectFrom('decisions')
    .selectAll()
    .where('job_id', '=', jobId)
    .where('kind', '=', 'approve')
    .where('outcome', '=', 'accepted')
    .execute();
}

async function events(ctx: EngineContext, jobId: number, type: string) {
  return ctx.db
    .selectFrom('job_events')
    .select('payload')
    .where('job_id', '=', jobId)
    .where('event_type', '=', type)
    .execute();
}

async function thread(ctx: EngineContext, jobId: number, postId: string): Promise<PostContext> {
  const job = await ctx.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow();
  return { postId, channelId: job.channel_id!, rootId: job.root_post_id! };
}

describe('concurrent approvals', () => {
  it('20 concurrent deciding approvals for one step mint exactly one token', async () => {
    e = await crowdedEngine();
    const { ctx } = e;
    for (let round = 0; round < 5; round += 1) {
      const job = await opsJob(ctx);
      expect((await approve(ctx, job.jobId, U.alice)).code).toBe('APPROVAL_COUNTED');
      // alice fills ops-oncall, so each of these completes the quorum on its own: the first to
      // take the job lock mints, and every later one finds the step already approved.
      const deciders = extraSec.slice(0, 20);
      const outcomes = await Promise.all(deciders.map((id) => approve(ctx, job.jobId, id)));
      expect(countCodes(outcomes)).toEqual({ QUORUM_MET: 1, ERR_STEP_DECIDED: 19 });
      const winner = outcomes.find((o) => o.code === 'QUORUM_MET')!;

      const tokens = await stepTokens(ctx, job.jobId);
      expect(tokens).toHaveLength(1);
      expect(tokens[0]!.jti).toBe(winner.minted!.jti);
      expect(await events(ctx, job.jobId, 'token_minted')).toHaveLength(4); // 3 auto steps + this one
      const accepted = await acceptedApprovals(ctx, job.jobId);
      expect(accepted.map((d) => d.user_id).sort()).toEqual(
        [U.alice, deciders[outcomes.indexOf(winner)]!].sort(),
      );
    }
  });

  it('20 concurrent first approvals from both groups mint exactly one token', async () => {
    e = await crowdedEngine();
    const { ctx } = e;
    for (let round = 0; round < 3; round += 1) {
      const job = await opsJob(ctx);
      const deciders = extraOps.slice(0, 10).flatMap((o, i) => [o, extraSec[i]!]);
      const outcomes = await Promise.all(deciders.map((id) => approve(ctx, job.jobId, id)));
      const codes = countCodes(outcomes);
      expect(codes.QUORUM_MET).toBe(1);
      expect(
        Object.keys(codes).every((c) => ['QUORUM_MET', 'APPROVAL_COUNTED', 'ERR_STEP_DECIDED'].includes(c)),
      ).toBe(true);
      // Whatever the order, approvals counted before quorum all come from the group that
      // happened to arrive first; the first approval of the other group then mints.
      const counted = deciders.filter((_, i) => outcomes[i]!.code === 'APPROVAL_COUNTED');
      const minter = deciders[outcomes.findIndex((o) => o.code === 'QUORUM_MET')]!;
      expect(counted.length).toBeGreaterThanOrEqual(1);
      const firstGroup = counted[0]!.slice(0, 4);
      expect(counted.every((id) => id.startsWith(firstGroup))).toBe(true);
      expect(minter.startsWith(firstGroup)).toBe(false);

      expect(await stepTokens(ctx, job.jobId)).toHaveLength(1);
      const accepted = await acceptedApprovals(ctx, job.jobId);
      expect(accepted).toHaveLength(counted.length + 1);
      const minted = outcomes.find((o) => o.code === 'QUORUM_MET')!.minted!;
      expect(minted.counted.map((c) => c.group).sort()).toEqual(['ops-oncall', 'sec-reviewers']);
    }
  });

  it('concurrent approvals by one person in distinct posts count once', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const posts = await Promise.all(
      Array.from({ length: 10 }, (_, i) => thread(ctx, job.jobId, `dupe${String(i).padStart(22, '0')}`)),
    );
    const outcomes = await Promise.all(posts.map((post) => approve(ctx, job.jobId, U.alice, post)));
    expect(countCodes(outcomes)).toEqual({ APPROVAL_COUNTED: 1, ERR_DUPLICATE_APPROVAL: 9 });
    expect(await acceptedApprovals(ctx, job.jobId)).toHaveLength(1);
    expect((await approve(ctx, job.jobId, U.chioma)).code).toBe('QUORUM_MET');
  });

  it('the same post delivered concurrently (two replicas) is decided once', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const post = await thread(ctx, job.jobId, 'samepost000000000000000001');
    const outcomes = await Promise.all(
      Array.from({ length: 5 }, () => approve(ctx, job.jobId, U.alice, post)),
    );
    expect(outcomes.filter((o) => !o.replayed)).toHaveLength(1);
    expect(outcomes.every((o) => o.code === 'APPROVAL_COUNTED')).toBe(true);
    expect(new Set(outcomes.map((o) => o.decisionId)).size).toBe(1);
    const rows = await ctx.db
      .selectFrom('decisions')
      .selectAll()
      .where('post_id', '=', post.postId)
      .execute();
    expect(rows).toHaveLength(1);
    expect(await events(ctx, job.jobId, 'approval_recorded')).toHaveLength(1);
  });

  it('the same post naming an unknown job, delivered concurrently, is recorded once', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const post = { postId: 'samepost000000000000000002', channelId: OPS.channel, rootId: 'r'.repeat(26) };
    const outcomes = await Promise.all(Array.from({ length: 5 }, () => approve(ctx, 9999, U.alice, post)));
    expect(outcomes.filter((o) => !o.replayed)).toHaveLength(1);
    expect(outcomes.every((o) => o.code === 'ERR_JOB_NOT_FOUND')).toBe(true);
    expect(await ctx.db.selectFrom('decisions').selectAll().execute()).toHaveLength(1);
  });

  it('a REVOKE racing the deciding approval leaves no live token', async () => {
    e = await crowdedEngine();
    const { ctx } = e;
    for (let round = 0; round < 3; round += 1) {
      const job = await opsJob(ctx);
      await approve(ctx, job.jobId, U.alice);
      const [approval, revoke] = await Promise.all([
        approve(ctx, job.jobId, U.chioma),
        endJobByCommand(ctx, {
          kind: 'revoke',
          jobId: job.jobId,
          actor: { kind: 'user', userId: U.erin },
          reason: 'x',
        }),
      ]);
      expect(revoke.code).toBe('JOB_REVOKED');
      expect(['QUORUM_MET', 'ERR_JOB_REVOKED']).toContain(approval.code);
      const tokens = await ctx.db.selectFrom('tokens').selectAll().where('job_id', '=', job.jobId).execute();
      expect(tokens).toHaveLength(approval.code === 'QUORUM_MET' ? 4 : 3);
      expect(tokens.every((t) => t.revoked_at !== null && t.compact === null)).toBe(true);
    }
  });
});

describe('concurrent token use', () => {
  it('of concurrent redemptions of one token exactly one succeeds', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    for (const step of ['search-kb', 'read-runbook', 'fetch-status']) {
      const { token } = await claimToken(ctx, { jobId: job.jobId, step, agentId: OPS.executor });
      const results = await Promise.allSettled(Array.from({ length: 10 }, () => redeemToken(ctx, token)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(rejected).toHaveLength(9);
      for (const r of rejected) expect(r.reason).toMatchObject({ code: 'ERR_TOKEN_REPLAYED' });
    }
    expect(await events(ctx, job.jobId, 'token_redeemed')).toHaveLength(3);
  });

  it('of two concurrent redemptions exactly one succeeds, every time', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    for (let round = 0; round < 5; round += 1) {
      const job = await opsJob(ctx);
      const { token } = await claimToken(ctx, { jobId: job.jobId, step: 'search-kb', agentId: OPS.executor });
      const [a, b] = await Promise.allSettled([redeemToken(ctx, token), redeemToken(ctx, token)]);
      const statuses = [a.status, b.status].sort();
      expect(statuses).toEqual(['fulfilled', 'rejected']);
      const loser = [a, b].find((r): r is PromiseRejectedResult => r.status === 'rejected')!;
      expect(loser.reason).toMatchObject({ code: 'ERR_TOKEN_REPLAYED' });
    }
  });

  it('of concurrent claims of one token exactly one gets it', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () =>
        claimToken(ctx, { jobId: job.jobId, step: 'search-kb', agentId: OPS.executor }),
      ),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((x): x is PromiseRejectedResult => x.status === 'rejected')) {
      expect(r.reason).toMatchObject({ code: 'ERR_TOKEN_ALREADY_CLAIMED' });
    }
    expect(await events(ctx, job.jobId, 'token_claimed')).toHaveLength(1);
  });
});
