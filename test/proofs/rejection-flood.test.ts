import { afterEach, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { endJobByCommand } from '../../src/jobs/revoke-job.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, opsJob, type TestEngine, U } from '../helpers/engine.js';

let e: TestEngine | undefined;
afterEach(async () => {
  await e?.close();
  e = undefined;
});

const FLOOD = 1500;

/** `n` refused APPROVE posts by the outsider in the job's thread, then the requester cancels. */
async function floodedJob(ctx: EngineContext, n: number) {
  const job = await opsJob(ctx);
  const row = await ctx.db
    .selectFrom('jobs')
    .selectAll()
    .where('id', '=', job.jobId)
    .executeTakeFirstOrThrow();
  const postIds: string[] = [];
  for (let i = 0; i < n; i++) {
    const postId = `flood${String(job.jobId).padStart(4, '0')}${String(i).padStart(17, '0')}`;
    postIds.push(postId);
    const d = await decideStep(ctx, {
      kind: 'approve',
      jobId: job.jobId,
      step: 'post-summary',
      userId: U.outsider,
      post: { postId, channelId: OPS.channel, rootId: row.root_post_id! },
    });
    expect(d.code).toBe('ERR_NOT_ELIGIBLE');
  }
  // One refusal of another kind by a member: it keeps its own event.
  await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'search-kb', userId: U.alice });
  const ended = await endJobByCommand(ctx, {
    kind: 'cancel',
    jobId: job.jobId,
    actor: { kind: 'user', userId: U.grace },
    reason: 'flooded',
  });
  expect(ended.accepted).toBe(true);
  const sealed = await ctx.db
    .selectFrom('bundles')
    .selectAll()
    .where('job_id', '=', job.jobId)
    .executeTakeFirstOrThrow();
  const events = await ctx.db
    .selectFrom('job_events')
    .select(['event_type', 'payload'])
    .where('job_id', '=', job.jobId)
    .orderBy('seq')
    .execute();
  return {
    jobId: job.jobId,
    postIds,
    text: sealed.envelope,
    events: events.map((x) => ({
      type: x.event_type,
      payload: JSON.parse(x.payload) as Record<string, unknown>,
    })),
  };
}

describe(`a flood of refused attempts cannot grow the event chain (${dialectName})`, () => {
  it(`${FLOOD} refused approvals by one person keep ${FLOOD} decisions but seal a small bundle that verifies`, async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const small = await floodedJob(ctx, 2);
    const flood = await floodedJob(ctx, FLOOD);

    const decisions = await ctx.db
      .selectFrom('decisions')
      .select('id')
      .where('job_id', '=', flood.jobId)
      .where('user_id', '=', U.outsider)
      .where('outcome', '=', 'rejected')
      .execute();
    expect(decisions).toHaveLength(FLOOD);

    const rejected = flood.events.filter((x) => x.type === 'approval_rejected');
    expect(rejected.map((x) => [x.payload.user_id, x.payload.code])).toEqual([
      [U.outsider, 'ERR_NOT_ELIGIBLE'],
      [U.alice, 'ERR_STEP_NOT_GATED'],
    ]);
    expect(rejected[0]!.payload.post_id).toBe(flood.postIds[0]);
    const summaries = flood.events.filter((x) => x.type === 'approval_rejections_summarized');
    expect(summaries).toMatchObject([
      {
        payload: {
          user_id: U.outsider,
          code: 'ERR_NOT_ELIGIBLE',
          count: FLOOD,
          first: { post_id: flood.postIds[0] },
          last: { post_id: flood.postIds.at(-1) },
        },
      },
    ]);
    expect(flood.events.at(-1)!.type).toBe('job_ended');

    // The same bundle as for two refusals, give or take the digits of the count and ids.
    expect(flood.text.length).toBeLessThan(small.text.length + 200);
    for (const { text } of [small, flood]) {
      expect(
        verifyBundle(JSON.parse(text), {
          trustsSigner: ctx.keyRing.trusts,
          gatewaySigners: ctx.gatewaySigners,
        }),
      ).toMatchObject({ ok: true });
    }
  }, 300_000);
});
