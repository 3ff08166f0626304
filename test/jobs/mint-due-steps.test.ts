import { afterEach, describe, expect, it } from 'vitest';
import type { ChatFacts } from '../../src/ports/chat.js';
import { decideStep } from '../../src/approvals/record-decision.js';
import { ChatError } from '../../src/ports/chat-error.js';
import type { ChatPost } from '../../src/chat/chat-port.js';
import { claimToken, mintDueSteps, reportResult } from '../../src/jobs/agent-job-ops.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { createJob } from '../../src/jobs/create-job.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, type TestEngine, U } from '../helpers/engine.js';
import { receiptFor } from '../helpers/receipts.js';

const CHANGE = {
  team: 'ro7kuk9yq4x16n1dx5zf41zw5o',
  channel: '764sdesxud1ew5yaqwmgdw4pe9',
  executor: 'agent:change-prod-1',
};
const STEP = 'approve-change';

let e: TestEngine | undefined;
afterEach(async () => {
  await e?.close();
  e = undefined;
});

/** Mattermost as the engine re-reads it: posts a test can delete, and a switch to make it unreachable. */
function fakeMattermost() {
  const posts = new Map<string, ChatPost>();
  const state = { down: false };
  const unreachable = () => new ChatError('unavailable', 'Mattermost error 503', 503);
  const facts: ChatFacts = {
    async post(id) {
      if (state.down) throw unreachable();
      return posts.get(id) ?? null;
    },
    async freshUser(id) {
      if (state.down) throw unreachable();
      return { id, username: id, is_bot: false, delete_at: 0 };
    },
  };
  return { facts, posts, state };
}

let n = 0;
async function approveInChat(
  ctx: EngineContext,
  mm: ReturnType<typeof fakeMattermost>,
  jobId: number,
  rootId: string,
  userId: string,
) {
  n += 1;
  const post: ChatPost = {
    id: `approvalpost${String(n).padStart(14, '0')}`,
    create_at: 1,
    update_at: 1,
    edit_at: 0,
    delete_at: 0,
    user_id: userId,
    channel_id: CHANGE.channel,
    root_id: rootId,
    original_id: '',
    message: `APPROVE job:${jobId} step:${STEP}`,
    type: '',
    props: {},
  };
  mm.posts.set(post.id, post);
  const d = await decideStep(ctx, {
    kind: 'approve',
    jobId,
    step: STEP,
    userId,
    post: { postId: post.id, channelId: CHANGE.channel, rootId },
  });
  expect(d.code).toBe('APPROVAL_COUNTED');
  return post;
}

/** A prod-change job with both approvals of approve-change in chat, waiting for its simulation. */
async function approvedProdChange(ctx: EngineContext, mm: ReturnType<typeof fakeMattermost>) {
  const rootId = 'rootpostprodchange00000001';
  const job = await createJob(ctx, {
    origin: { kind: 'mattermost', teamId: CHANGE.team, channelId: CHANGE.channel, rootPostId: rootId },
    requesterId: U.farid,
    runbook: {
      name: 'prod-change',
      params: { change_id: 'CHG0031337', review_bundle_id: 'pb_AAAAAAAAAAAAAAAAAAAAAA' },
    },
  });
  const posts = [];
  for (const userId of [U.priya, U.rosa]) posts.push(await approveInChat(ctx, mm, job.jobId, rootId, userId));
  const claim = await claimToken(ctx, { jobId: job.jobId, step: 'simulate', agentId: CHANGE.executor });
  return { jobId: job.jobId, claim, posts };
}

async function tokenSteps(ctx: EngineContext, jobId: number) {
  const rows = await ctx.db.selectFrom('tokens').select('step_id').where('job_id', '=', jobId).execute();
  return rows.map((r) => r.step_id).sort();
}

describe(`mintDueSteps: a mint Mattermost could not confirm is retried (${dialectName})`, () => {
  it('a simulation reported while Mattermost is down is recorded; the sweep mints once Mattermost answers', async () => {
    const mm = fakeMattermost();
    e = await createTestEngine({ facts: mm.facts });
    const { ctx } = e;
    const { jobId, claim } = await approvedProdChange(ctx, mm);

    mm.state.down = true;
    const r = await reportResult(ctx, {
      jobId,
      step: 'simulate',
      agentId: CHANGE.executor,
      status: 'succeeded',
      receipts: [receiptFor(claim)],
    });
    expect(r).toMatchObject({ status: 'succeeded', minted: [] });
    const sim = await ctx.db
      .selectFrom('job_steps')
      .select('status')
      .where('job_id', '=', jobId)
      .where('step_id', '=', 'simulate')
      .executeTakeFirstOrThrow();
    expect(sim.status).toBe('succeeded');
    expect(await tokenSteps(ctx, jobId)).toEqual(['simulate']);

    expect(await mintDueSteps(ctx)).toEqual([]);
    expect(await tokenSteps(ctx, jobId)).toEqual(['simulate']);

    mm.state.down = false;
    expect(await mintDueSteps(ctx)).toEqual([{ jobId, step: STEP }]);
    expect(await tokenSteps(ctx, jobId)).toEqual([STEP, 'simulate']);
    expect(await mintDueSteps(ctx)).toEqual([]);
  });

  it('the sweep re-reads the approvals too: one deleted meanwhile is withdrawn and nothing is minted', async () => {
    const mm = fakeMattermost();
    e = await createTestEngine({ facts: mm.facts });
    const { ctx } = e;
    const { jobId, claim, posts } = await approvedProdChange(ctx, mm);
    mm.state.down = true;
    await reportResult(ctx, {
      jobId,
      step: 'simulate',
      agentId: CHANGE.executor,
      status: 'succeeded',
      receipts: [receiptFor(claim)],
    });
    mm.state.down = false;
    mm.posts.delete(posts[0]!.id);

    expect(await mintDueSteps(ctx)).toEqual([]);
    expect(await tokenSteps(ctx, jobId)).toEqual(['simulate']);
    const withdrawn = await ctx.db
      .selectFrom('decisions')
      .select(['post_id', 'withdrawn_reason'])
      .where('job_id', '=', jobId)
      .where('withdrawn_at', 'is not', null)
      .execute();
    expect(withdrawn).toEqual([{ post_id: posts[0]!.id, withdrawn_reason: 'post deleted' }]);
    const told = await ctx.db
      .selectFrom('outbox')
      .select(['dedupe_key', 'message'])
      .where('dedupe_key', '=', `withdrawn:${posts[0]!.id}`)
      .execute();
    expect(told).toHaveLength(1);
  });
});
