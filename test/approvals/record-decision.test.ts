import { afterEach, describe, expect, it } from 'vitest';
import type { ChatMembership } from '../../src/approvals/directory.js';
import {
  decideStep,
  type PostContext,
  type StepDecisionInput,
  withdrawApproval,
} from '../../src/approvals/record-decision.js';
import { AppError } from '../../src/errors.js';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { createJob } from '../../src/jobs/create-job.js';
import { type Actor, endJobByCommand } from '../../src/jobs/revoke-job.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import { receiptFor } from '../helpers/receipts.js';
import { createTestEngine, editJson, OPS, opsJob, U, type TestEngine } from '../helpers/engine.js';

let e: TestEngine | undefined;
afterEach(async () => {
  await e?.close();
  e = undefined;
});

/** ops-oncall's first member is the Mattermost user group; this person is in it only through chat. */
const OPS_ONCALL_MM_GROUP = 'uibxf4oba4dbo6fisi3knuwnjy';
const VIA_GROUP = 'ugrpmember0000000000000001';

const CHANGE = {
  team: 'ro7kuk9yq4x16n1dx5zf41zw5o',
  channel: '764sdesxud1ew5yaqwmgdw4pe9',
  executor: 'agent:change-prod-1',
};

let postCounter = 0;
function newPostId(): string {
  postCounter += 1;
  return `post${String(postCounter).padStart(22, '0')}`;
}

async function threadOf(ctx: EngineContext, jobId: number): Promise<{ channelId: string; rootId: string }> {
  const job = await ctx.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow();
  return { channelId: job.channel_id!, rootId: job.root_post_id! };
}

/** A post in the job's own thread. */
async function inThread(ctx: EngineContext, jobId: number, postId = newPostId()): Promise<PostContext> {
  return { postId, ...(await threadOf(ctx, jobId)) };
}

function approve(ctx: EngineContext, jobId: number, userId: string, extra: Partial<StepDecisionInput> = {}) {
  return decideStep(ctx, { kind: 'approve', jobId, step: 'post-summary', userId, ...extra });
}

function deny(ctx: EngineContext, jobId: number, userId: string, reason = 'not now') {
  return decideStep(ctx, { kind: 'deny', jobId, step: 'post-summary', userId, reason });
}

function endBy(ctx: EngineContext, kind: 'revoke' | 'cancel', jobId: number, actor: Actor, reason = 'stop') {
  return endJobByCommand(ctx, { kind, jobId, actor, reason });
}

const user = (userId: string): Actor => ({ kind: 'user', userId });

async function decisionsOf(ctx: EngineContext) {
  return ctx.db.selectFrom('decisions').selectAll().orderBy('id').execute();
}

async function jobRow(ctx: EngineContext, jobId: number) {
  return ctx.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow();
}

async function stepStatus(ctx: EngineContext, jobId: number, step: string) {
  const row = await ctx.db
    .selectFrom('job_steps')
    .select('status')
    .where('job_id', '=', jobId)
    .where('step_id', '=', step)
    .executeTakeFirstOrThrow();
  return row.status;
}

async function tokensOf(ctx: EngineContext, jobId: number) {
  return ctx.db.selectFrom('tokens').selectAll().where('job_id', '=', jobId).orderBy('step_id').execute();
}

async function eventTypes(ctx: EngineContext, jobId: number) {
  const rows = await ctx.db
    .selectFrom('job_events')
    .select('event_type')
    .where('job_id', '=', jobId)
    .orderBy('seq')
    .execute();
  return rows.map((r) => r.event_type);
}

/** The bundle a job ended with verifies under the bot's key ring and names the job's ending. */
async function expectSealed(ctx: EngineContext, jobId: number, status: string) {
  const job = await jobRow(ctx, jobId);
  expect(job.status).toBe(status);
  expect(job.bundle_id).toMatch(/^pb_/);
  const bundle = await ctx.db
    .selectFrom('bundles')
    .selectAll()
    .where('bundle_id', '=', job.bundle_id!)
    .executeTakeFirstOrThrow();
  expect(bundle.job_id).toBe(jobId);
  expect(
    verifyBundle(JSON.parse(bundle.envelope), {
      trustsSigner: ctx.keyRing.trusts,
      gatewaySigners: new Set(),
    }),
  ).toMatchObject({ ok: true });
  expect((await eventTypes(ctx, jobId)).at(-1)).toBe('job_ended');
}

/** A fake chat server whose group memberships a test can change, or make unreachable. */
function fakeChat() {
  const groups = new Map<string, Set<string>>();
  const state = { down: false, failFor: new Set<string>() };
  const chat: ChatMembership = {
    async isGroupMember(userId, groupId) {
      if (state.down || state.failFor.has(userId))
        throw new AppError('ERR_DIRECTORY_UNAVAILABLE', 'chat server unreachable');
      return groups.get(groupId)?.has(userId) ?? false;
    },
    async isChannelMember() {
      if (state.down) throw new AppError('ERR_DIRECTORY_UNAVAILABLE', 'chat server unreachable');
      return false;
    },
  };
  return {
    chat,
    state,
    join: (groupId: string, userId: string) =>
      groups.set(groupId, (groups.get(groupId) ?? new Set()).add(userId)),
    leave: (groupId: string, userId: string) => groups.get(groupId)?.delete(userId),
  };
}

describe('two-person rule (mattermost-agent-prod: ops-oncall + sec-reviewers)', () => {
  it('two approvers from distinct groups meet quorum and mint one CST', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const a1 = await approve(ctx, job.jobId, U.alice);
    expect(a1).toMatchObject({
      accepted: true,
      code: 'APPROVAL_COUNTED',
      replayed: false,
      missing: { approvals: 1, openGroups: ['sec-reviewers'], simulationStep: null },
    });
    expect(await stepStatus(ctx, job.jobId, 'post-summary')).toBe('awaiting_approval');
    const a2 = await approve(ctx, job.jobId, U.chioma);
    expect(a2).toMatchObject({ accepted: true, code: 'QUORUM_MET', step: 'post-summary' });
    expect(a2.minted).toMatchObject({
      step: 'post-summary',
      sub: OPS.executor,
      counted: [
        { userId: U.alice, group: 'ops-oncall' },
        { userId: U.chioma, group: 'sec-reviewers' },
      ],
    });
    expect(await stepStatus(ctx, job.jobId, 'post-summary')).toBe('approved');
    const token = (await tokensOf(ctx, job.jobId)).find((t) => t.step_id === 'post-summary');
    expect(token?.jti).toBe(a2.minted!.jti);
  });

  it('two approvers from the same group do not meet quorum; the open group is named', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    expect((await approve(ctx, job.jobId, U.alice)).code).toBe('APPROVAL_COUNTED');
    const a2 = await approve(ctx, job.jobId, U.bruno);
    expect(a2).toMatchObject({
      accepted: true,
      code: 'APPROVAL_COUNTED',
      missing: { approvals: 1, openGroups: ['sec-reviewers'] },
    });
    expect((await tokensOf(ctx, job.jobId)).map((t) => t.step_id)).not.toContain('post-summary');
    const a3 = await approve(ctx, job.jobId, U.dmitri);
    expect(a3.code).toBe('QUORUM_MET');
    expect(a3.minted!.counted.map((c) => c.group).sort()).toEqual(['ops-oncall', 'sec-reviewers']);
  });

  it('the requester cannot approve or deny their own job', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx, U.bruno);
    await expect(approve(ctx, job.jobId, U.bruno)).resolves.toMatchObject({
      accepted: false,
      code: 'ERR_SELF_APPROVAL',
    });
    await expect(deny(ctx, job.jobId, U.bruno)).resolves.toMatchObject({ code: 'ERR_SELF_APPROVAL' });
    expect((await approve(ctx, job.jobId, U.alice)).code).toBe('APPROVAL_COUNTED');
    expect((await approve(ctx, job.jobId, U.chioma)).code).toBe('QUORUM_MET');
  });

  it('a policy may let the requester approve; then they count like anyone else', async () => {
    e = await createTestEngine({
      edit: (dir) =>
        editJson(dir, 'mattermost-agent-prod.json', (p) => {
          const execution = p.execution as { approval_rule: { allow_requester_approval: boolean } };
          execution.approval_rule.allow_requester_approval = true;
        }),
    });
    const { ctx } = e;
    const job = await opsJob(ctx, U.bruno);
    expect((await approve(ctx, job.jobId, U.bruno)).code).toBe('APPROVAL_COUNTED');
    const q = await approve(ctx, job.jobId, U.chioma);
    expect(q.code).toBe('QUORUM_MET');
    expect(q.minted!.counted).toContainEqual({ userId: U.bruno, group: 'ops-oncall' });
  });

  it('the same person approving twice counts once', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    expect((await approve(ctx, job.jobId, U.alice)).code).toBe('APPROVAL_COUNTED');
    const again = await approve(ctx, job.jobId, U.alice, { post: await inThread(ctx, job.jobId) });
    expect(again).toMatchObject({ accepted: false, code: 'ERR_DUPLICATE_APPROVAL' });
    const live = (await decisionsOf(ctx)).filter((d) => d.outcome === 'accepted');
    expect(live).toHaveLength(1);
    expect(await stepStatus(ctx, job.jobId, 'post-summary')).toBe('awaiting_approval');
  });

  it.each([
    ['an outsider', U.outsider],
    ['a security member who approves nothing', U.erin],
    ['a requester', U.farid],
    ['an approver of another policy', U.priya],
  ])('%s is not eligible', async (_, userId) => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    await expect(approve(ctx, job.jobId, userId)).resolves.toMatchObject({
      accepted: false,
      code: 'ERR_NOT_ELIGIBLE',
    });
    await expect(deny(ctx, job.jobId, userId)).resolves.toMatchObject({ code: 'ERR_NOT_ELIGIBLE' });
    expect(await jobRow(ctx, job.jobId)).toMatchObject({ status: 'open' });
  });
});

describe('what a decision names', () => {
  it('refuses a step the job does not have, and a step that needs no approval', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    await expect(approve(ctx, job.jobId, U.alice, { step: 'post-summry' })).resolves.toMatchObject({
      accepted: false,
      code: 'ERR_STEP_NOT_FOUND',
    });
    await expect(approve(ctx, job.jobId, U.alice, { step: 'search-kb' })).resolves.toMatchObject({
      accepted: false,
      code: 'ERR_STEP_NOT_GATED',
    });
  });

  it('refuses an unknown job and records it without a job', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    await opsJob(ctx);
    const post = { postId: newPostId(), channelId: OPS.channel, rootId: 'x'.repeat(26) };
    const out = await approve(ctx, 424242, U.alice, { post });
    expect(out).toMatchObject({ accepted: false, code: 'ERR_JOB_NOT_FOUND', jobId: 424242 });
    expect(await decisionsOf(ctx)).toEqual([
      expect.objectContaining({
        id: out.decisionId,
        job_id: null,
        named_job: 424242,
        post_id: post.postId,
        outcome: 'rejected',
        reason_code: 'ERR_JOB_NOT_FOUND',
      }),
    ]);
  });

  it('refuses further decisions on a step once it is minted', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    await approve(ctx, job.jobId, U.alice);
    await approve(ctx, job.jobId, U.chioma);
    await expect(approve(ctx, job.jobId, U.dmitri)).resolves.toMatchObject({ code: 'ERR_STEP_DECIDED' });
    await expect(deny(ctx, job.jobId, U.dmitri)).resolves.toMatchObject({ code: 'ERR_STEP_DECIDED' });
    expect(await jobRow(ctx, job.jobId)).toMatchObject({ status: 'open' });
  });
});

describe('the job must be open', () => {
  it('an approval just before the deadline counts', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    e.clock.advance(3599);
    expect((await approve(ctx, job.jobId, U.alice)).code).toBe('APPROVAL_COUNTED');
  });

  it('a deciding approval in the last half second is recorded, but mints nothing that would outlive the job', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    // Created at …:00.600, deadline …:00.600 an hour later; deciding at …:00.500 leaves no whole second.
    e.clock.advance(0.6);
    const job = await opsJob(ctx);
    await approve(ctx, job.jobId, U.alice);
    e.clock.advance(3599.9);
    const last = await approve(ctx, job.jobId, U.chioma);
    expect(last).toMatchObject({ accepted: true, code: 'APPROVAL_COUNTED' });
    expect(last.minted).toBeUndefined();
    const tokens = await ctx.db
      .selectFrom('tokens')
      .select('step_id')
      .where('job_id', '=', job.jobId)
      .where('step_id', '=', 'post-summary')
      .execute();
    expect(tokens).toHaveLength(0);
    const row = await ctx.db
      .selectFrom('decisions')
      .select('reason_code')
      .where('id', '=', last.decisionId!)
      .executeTakeFirstOrThrow();
    expect(row.reason_code).toBe('APPROVAL_COUNTED');
  });

  it('an approval after expiry is refused and seals the job as expired', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    await approve(ctx, job.jobId, U.alice);
    expect(job.expiresAt.getTime() - ctx.clock().getTime()).toBe(3600_000);
    e.clock.advance(3600);
    const late = await approve(ctx, job.jobId, U.chioma);
    expect(late).toMatchObject({
      accepted: false,
      code: 'ERR_JOB_EXPIRED',
      ended: { jobId: job.jobId, status: 'expired' },
    });
    await expectSealed(ctx, job.jobId, 'expired');
    expect((await jobRow(ctx, job.jobId)).bundle_id).toBe(late.ended!.bundleId);
    expect((await tokensOf(ctx, job.jobId)).every((t) => t.revoked_at !== null && t.compact === null)).toBe(
      true,
    );
    expect(await stepStatus(ctx, job.jobId, 'post-summary')).toBe('cancelled');

    const later = await approve(ctx, job.jobId, U.dmitri);
    expect(later).toMatchObject({ accepted: false, code: 'ERR_JOB_EXPIRED' });
    expect(later.ended).toBeUndefined();
    expect((await decisionsOf(ctx)).map((d) => d.reason_code)).toEqual([
      'APPROVAL_COUNTED',
      'ERR_JOB_EXPIRED',
      'ERR_JOB_EXPIRED',
    ]);
  });

  it('a cancelled job is closed', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    expect((await endBy(ctx, 'cancel', job.jobId, user(U.grace))).code).toBe('JOB_CANCELLED');
    await expect(approve(ctx, job.jobId, U.alice)).resolves.toMatchObject({ code: 'ERR_JOB_CLOSED' });
  });

  it('a revoked job says so', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    expect((await endBy(ctx, 'revoke', job.jobId, user(U.erin))).code).toBe('JOB_REVOKED');
    await expect(approve(ctx, job.jobId, U.alice)).resolves.toMatchObject({ code: 'ERR_JOB_REVOKED' });
    await expect(deny(ctx, job.jobId, U.alice)).resolves.toMatchObject({ code: 'ERR_JOB_REVOKED' });
  });
});

describe('thread and replay', () => {
  it('a decision counts only in the job thread', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const other = await opsJob(ctx);
    const here = await threadOf(ctx, job.jobId);
    const elsewhere = await threadOf(ctx, other.jobId);
    const wrongRoot = { postId: newPostId(), channelId: here.channelId, rootId: elsewhere.rootId };
    const ownRoot = { postId: newPostId(), channelId: here.channelId, rootId: 'n'.repeat(26) };
    const wrongChannel = {
      postId: newPostId(),
      channelId: 'acshgfaj95444smnfg94nxbtmm',
      rootId: here.rootId,
    };
    for (const post of [wrongRoot, ownRoot, wrongChannel]) {
      await expect(approve(ctx, job.jobId, U.alice, { post })).resolves.toMatchObject({
        accepted: false,
        code: 'ERR_WRONG_THREAD',
      });
    }
    await expect(deny(ctx, job.jobId, U.chioma)).resolves.toMatchObject({ code: 'STEP_DENIED' });
    // The other job saw nothing of it.
    expect(await stepStatus(ctx, other.jobId, 'post-summary')).toBe('awaiting_approval');
  });

  it('replaying a post changes nothing and answers replayed', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const post = await inThread(ctx, job.jobId);
    const first = await approve(ctx, job.jobId, U.alice, { post });
    expect(first).toMatchObject({ code: 'APPROVAL_COUNTED', replayed: false });
    const decisions = await decisionsOf(ctx);
    const events = await eventTypes(ctx, job.jobId);

    const again = await approve(ctx, job.jobId, U.alice, { post });
    expect(again).toMatchObject({
      accepted: true,
      code: 'APPROVAL_COUNTED',
      replayed: true,
      decisionId: first.decisionId,
    });
    // The post id alone decides: another author or step under that id is still the same post.
    expect(await approve(ctx, job.jobId, U.chioma, { post })).toMatchObject({ replayed: true });
    expect(await decisionsOf(ctx)).toEqual(decisions);
    expect(await eventTypes(ctx, job.jobId)).toEqual(events);
    expect(await stepStatus(ctx, job.jobId, 'post-summary')).toBe('awaiting_approval');
  });

  it('replaying a rejected post answers with its original code', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const post = await inThread(ctx, job.jobId);
    await approve(ctx, job.jobId, U.outsider, { post });
    expect(await approve(ctx, job.jobId, U.outsider, { post })).toMatchObject({
      accepted: false,
      code: 'ERR_NOT_ELIGIBLE',
      replayed: true,
    });
    expect(await decisionsOf(ctx)).toHaveLength(1);
  });

  it('replaying a REVOKE post changes nothing', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const post = await inThread(ctx, job.jobId);
    const input = { kind: 'revoke' as const, jobId: job.jobId, actor: user(U.erin), reason: 'leak', post };
    expect(await endJobByCommand(ctx, input)).toMatchObject({ code: 'JOB_REVOKED', replayed: false });
    expect(await endJobByCommand(ctx, input)).toMatchObject({ code: 'JOB_REVOKED', replayed: true });
    expect(await decisionsOf(ctx)).toHaveLength(1);
  });
});

describe('every decision is recorded', () => {
  it('keeps a row with its reason code for accepted and rejected decisions alike', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const outcomes = [
      await approve(ctx, job.jobId, U.outsider),
      await approve(ctx, job.jobId, U.grace),
      await approve(ctx, job.jobId, U.alice, { step: 'nope' }),
      await approve(ctx, job.jobId, U.alice, { step: 'read-runbook' }),
      await approve(ctx, job.jobId, U.alice),
      await approve(ctx, job.jobId, U.alice),
      await approve(ctx, job.jobId, U.chioma),
      await approve(ctx, job.jobId, U.dmitri),
      await approve(ctx, 999, U.alice),
    ];
    const rows = await decisionsOf(ctx);
    expect(rows.map((d) => [d.user_id, d.outcome, d.reason_code])).toEqual([
      [U.outsider, 'rejected', 'ERR_NOT_ELIGIBLE'],
      [U.grace, 'rejected', 'ERR_NOT_ELIGIBLE'],
      [U.alice, 'rejected', 'ERR_STEP_NOT_FOUND'],
      [U.alice, 'rejected', 'ERR_STEP_NOT_GATED'],
      [U.alice, 'accepted', 'APPROVAL_COUNTED'],
      [U.alice, 'rejected', 'ERR_DUPLICATE_APPROVAL'],
      [U.chioma, 'accepted', 'APPROVAL_COUNTED'],
      [U.dmitri, 'rejected', 'ERR_STEP_DECIDED'],
      [U.alice, 'rejected', 'ERR_JOB_NOT_FOUND'],
    ]);
    expect(rows.map((d) => d.id)).toEqual(outcomes.map((o) => o.decisionId));
    expect(outcomes.map((o) => o.code)).toEqual([
      'ERR_NOT_ELIGIBLE',
      'ERR_NOT_ELIGIBLE',
      'ERR_STEP_NOT_FOUND',
      'ERR_STEP_NOT_GATED',
      'APPROVAL_COUNTED',
      'ERR_DUPLICATE_APPROVAL',
      'QUORUM_MET',
      'ERR_STEP_DECIDED',
      'ERR_JOB_NOT_FOUND',
    ]);
    expect(JSON.parse(rows[6]!.groups)).toEqual(['sec-reviewers']);
    // Rejections on an open job enter its event chain too.
    const events = await eventTypes(ctx, job.jobId);
    expect(events.filter((t) => t === 'approval_rejected')).toHaveLength(6);
    expect(events.filter((t) => t === 'approval_recorded')).toHaveLength(2);
  });
});

describe('edited or deleted approval posts', () => {
  it('an approval withdrawn before minting no longer counts', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const post = await inThread(ctx, job.jobId);
    await approve(ctx, job.jobId, U.alice, { post });
    expect(await withdrawApproval(ctx, { postId: post.postId, why: 'edited' })).toMatchObject({
      withdrawn: true,
      jobId: job.jobId,
      step: 'post-summary',
    });
    const a2 = await approve(ctx, job.jobId, U.chioma, { post: await inThread(ctx, job.jobId) });
    expect(a2).toMatchObject({
      code: 'APPROVAL_COUNTED',
      missing: { approvals: 1, openGroups: ['ops-oncall'] },
    });
    expect(await withdrawApproval(ctx, { postId: post.postId, why: 'deleted' })).toMatchObject({
      withdrawn: false,
      reason: 'already withdrawn',
    });
    // Approving again in a new post counts afresh.
    const a3 = await approve(ctx, job.jobId, U.alice, { post: await inThread(ctx, job.jobId) });
    expect(a3.code).toBe('QUORUM_MET');
    expect(await eventTypes(ctx, job.jobId)).toContain('approval_withdrawn');
  });

  it('an edit after minting is too late', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const p1 = await inThread(ctx, job.jobId);
    const p2 = await inThread(ctx, job.jobId);
    await approve(ctx, job.jobId, U.alice, { post: p1 });
    expect((await approve(ctx, job.jobId, U.chioma, { post: p2 })).code).toBe('QUORUM_MET');
    for (const postId of [p1.postId, p2.postId]) {
      expect(await withdrawApproval(ctx, { postId, why: 'deleted' })).toMatchObject({
        withdrawn: false,
        reason: 'the step was already decided',
      });
    }
    expect((await decisionsOf(ctx)).every((d) => d.withdrawn_at === null)).toBe(true);
    expect(await stepStatus(ctx, job.jobId, 'post-summary')).toBe('approved');
  });

  it('only a counted approval can be withdrawn', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const rejected = await inThread(ctx, job.jobId);
    await approve(ctx, job.jobId, U.outsider, { post: rejected });
    for (const postId of [rejected.postId, newPostId()]) {
      expect(await withdrawApproval(ctx, { postId, why: 'edited' })).toMatchObject({
        withdrawn: false,
        reason: 'no counted approval on this post',
      });
    }
  });
});

describe('DENY, REVOKE and cancel', () => {
  it('a DENY from an eligible approver ends the job as denied, with its bundle', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    await approve(ctx, job.jobId, U.alice);
    const d = await deny(ctx, job.jobId, U.dmitri, 'wrong channel');
    expect(d).toMatchObject({ accepted: true, code: 'STEP_DENIED', ended: { status: 'denied' } });
    await expectSealed(ctx, job.jobId, 'denied');
    expect(await stepStatus(ctx, job.jobId, 'post-summary')).toBe('denied');
    expect(await stepStatus(ctx, job.jobId, 'search-kb')).toBe('cancelled');
    const tokens = await tokensOf(ctx, job.jobId);
    expect(tokens.map((t) => t.step_id)).not.toContain('post-summary');
    expect(tokens.every((t) => t.revoked_at !== null)).toBe(true);
    expect((await decisionsOf(ctx)).at(-1)).toMatchObject({
      kind: 'deny',
      user_id: U.dmitri,
      outcome: 'accepted',
      reason_code: 'STEP_DENIED',
      reason: 'wrong channel',
    });
    await expect(approve(ctx, job.jobId, U.chioma)).resolves.toMatchObject({ code: 'ERR_JOB_CLOSED' });
  });

  it('only the security group may REVOKE, and REVOKE revokes every token', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    await approve(ctx, job.jobId, U.alice);
    await approve(ctx, job.jobId, U.chioma);
    for (const who of [U.alice, U.grace, U.dmitri, U.outsider]) {
      await expect(endBy(ctx, 'revoke', job.jobId, user(who))).resolves.toMatchObject({
        accepted: false,
        code: 'ERR_NOT_ELIGIBLE',
      });
    }
    expect((await jobRow(ctx, job.jobId)).status).toBe('open');
    const r = await endBy(ctx, 'revoke', job.jobId, user(U.erin), 'suspicious');
    expect(r).toMatchObject({ accepted: true, code: 'JOB_REVOKED', ended: { status: 'revoked' } });
    await expectSealed(ctx, job.jobId, 'revoked');
    const tokens = await tokensOf(ctx, job.jobId);
    expect(tokens).toHaveLength(4);
    expect(tokens.every((t) => t.revoked_at !== null && t.compact === null)).toBe(true);
    expect(await stepStatus(ctx, job.jobId, 'post-summary')).toBe('revoked');
    await expect(endBy(ctx, 'revoke', job.jobId, user(U.chioma))).resolves.toMatchObject({
      code: 'ERR_JOB_REVOKED',
    });
  });

  it('chioma (security) and an operator may revoke too', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const j1 = await opsJob(ctx);
    const j2 = await opsJob(ctx);
    expect((await endBy(ctx, 'revoke', j1.jobId, user(U.chioma))).code).toBe('JOB_REVOKED');
    expect((await endBy(ctx, 'revoke', j2.jobId, { kind: 'admin', name: 'ops' })).code).toBe('JOB_REVOKED');
    expect((await decisionsOf(ctx)).map((d) => d.user_id)).toEqual([U.chioma, 'admin:ops']);
  });

  it('the requester (or security) may cancel; nobody else', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    for (const who of [U.alice, U.farid, U.outsider]) {
      await expect(endBy(ctx, 'cancel', job.jobId, user(who))).resolves.toMatchObject({
        code: 'ERR_NOT_ELIGIBLE',
      });
    }
    const c = await endBy(ctx, 'cancel', job.jobId, user(U.grace), 'changed my mind');
    expect(c).toMatchObject({ accepted: true, code: 'JOB_CANCELLED', ended: { status: 'cancelled' } });
    await expectSealed(ctx, job.jobId, 'cancelled');
    expect((await tokensOf(ctx, job.jobId)).every((t) => t.revoked_at !== null)).toBe(true);
    await expect(endBy(ctx, 'cancel', job.jobId, user(U.grace))).resolves.toMatchObject({
      code: 'ERR_JOB_CLOSED',
    });

    const other = await opsJob(ctx);
    expect((await endBy(ctx, 'cancel', other.jobId, user(U.erin))).code).toBe('JOB_CANCELLED');
  });

  it('REVOKE of an unknown job is refused and recorded', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    await expect(endBy(ctx, 'revoke', 77, user(U.erin))).resolves.toMatchObject({
      code: 'ERR_JOB_NOT_FOUND',
    });
    expect(await decisionsOf(ctx)).toEqual([
      expect.objectContaining({
        job_id: null,
        named_job: 77,
        kind: 'revoke',
        reason_code: 'ERR_JOB_NOT_FOUND',
      }),
    ]);
  });
});

describe('membership is checked again at quorum time', () => {
  it('an approver who left the group before quorum no longer counts', async () => {
    const chat = fakeChat();
    chat.join(OPS_ONCALL_MM_GROUP, VIA_GROUP);
    e = await createTestEngine({ chat: chat.chat });
    const { ctx } = e;
    const job = await opsJob(ctx);
    const a1 = await approve(ctx, job.jobId, VIA_GROUP);
    expect(a1).toMatchObject({ code: 'APPROVAL_COUNTED', missing: { openGroups: ['sec-reviewers'] } });
    expect(JSON.parse((await decisionsOf(ctx))[0]!.groups)).toEqual(['ops-oncall']);

    chat.leave(OPS_ONCALL_MM_GROUP, VIA_GROUP);
    const a2 = await approve(ctx, job.jobId, U.chioma);
    expect(a2).toMatchObject({
      accepted: true,
      code: 'APPROVAL_COUNTED',
      missing: { approvals: 1, openGroups: ['ops-oncall'] },
    });
    expect(await stepStatus(ctx, job.jobId, 'post-summary')).toBe('awaiting_approval');

    const a3 = await approve(ctx, job.jobId, U.alice);
    expect(a3.code).toBe('QUORUM_MET');
    expect(a3.minted!.counted.map((c) => c.userId).sort()).toEqual([U.alice, U.chioma].sort());
  });

  it('a member through the chat group counts while they are in it', async () => {
    const chat = fakeChat();
    chat.join(OPS_ONCALL_MM_GROUP, VIA_GROUP);
    e = await createTestEngine({ chat: chat.chat });
    const { ctx } = e;
    const job = await opsJob(ctx);
    await approve(ctx, job.jobId, U.chioma);
    const a2 = await approve(ctx, job.jobId, VIA_GROUP);
    expect(a2.code).toBe('QUORUM_MET');
    expect(a2.minted!.counted).toContainEqual({ userId: VIA_GROUP, group: 'ops-oncall' });
  });

  it('without a chat connection, chat-delegated membership matches nobody', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    await expect(approve(ctx, job.jobId, VIA_GROUP)).resolves.toMatchObject({ code: 'ERR_NOT_ELIGIBLE' });
  });

  it('a directory that cannot answer fails the decision and records nothing', async () => {
    const chat = fakeChat();
    e = await createTestEngine({ chat: chat.chat });
    const { ctx } = e;
    const job = await opsJob(ctx);
    await approve(ctx, job.jobId, U.chioma);
    const before = { decisions: await decisionsOf(ctx), events: await eventTypes(ctx, job.jobId) };

    chat.state.down = true;
    await expect(approve(ctx, job.jobId, U.alice)).rejects.toMatchObject({
      code: 'ERR_DIRECTORY_UNAVAILABLE',
    });
    await expect(
      approve(ctx, job.jobId, U.alice, { post: await inThread(ctx, job.jobId) }),
    ).rejects.toMatchObject({ code: 'ERR_DIRECTORY_UNAVAILABLE' });
    expect(await decisionsOf(ctx)).toEqual(before.decisions);
    expect(await eventTypes(ctx, job.jobId)).toEqual(before.events);
    expect(await stepStatus(ctx, job.jobId, 'post-summary')).toBe('awaiting_approval');

    chat.state.down = false;
    expect((await approve(ctx, job.jobId, U.alice)).code).toBe('QUORUM_MET');
  });

  it('a directory failing while quorum is evaluated also records nothing', async () => {
    const chat = fakeChat();
    e = await createTestEngine({ chat: chat.chat });
    const { ctx } = e;
    const job = await opsJob(ctx);
    expect((await approve(ctx, job.jobId, U.dmitri)).code).toBe('APPROVAL_COUNTED');
    const before = await decisionsOf(ctx);
    // alice's own eligibility can be established; dmitri's membership, re-checked for quorum, cannot.
    chat.state.failFor.add(U.dmitri);
    await expect(approve(ctx, job.jobId, U.alice)).rejects.toMatchObject({
      code: 'ERR_DIRECTORY_UNAVAILABLE',
    });
    expect(await decisionsOf(ctx)).toEqual(before);
    expect(await tokensOf(ctx, job.jobId)).toHaveLength(3);
    expect(await stepStatus(ctx, job.jobId, 'post-summary')).toBe('awaiting_approval');
  });
});

describe('simulate-first (change-mgmt-prod-approval, prod-change)', () => {
  async function prodChange(ctx: EngineContext) {
    return createJob(ctx, {
      origin: { kind: 'mattermost', teamId: CHANGE.team, channelId: CHANGE.channel, rootPostId: newPostId() },
      requesterId: U.farid,
      runbook: {
        name: 'prod-change',
        params: { change_id: 'CHG0031337', review_bundle_id: 'pb_AAAAAAAAAAAAAAAAAAAAAA' },
      },
    });
  }
  const approveChange = (ctx: EngineContext, jobId: number, userId: string) =>
    decideStep(ctx, { kind: 'approve', jobId, step: 'approve-change', userId });

  it('approvals do not mint until the simulation has succeeded', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await prodChange(ctx);
    expect(job.minted.map((m) => m.step)).toEqual(['simulate']);
    expect(job.steps.map((s) => s.simulationStep)).toEqual([null, 'simulate', 'simulate', 'simulate']);

    expect((await approveChange(ctx, job.jobId, U.priya)).code).toBe('APPROVAL_COUNTED');
    const a2 = await approveChange(ctx, job.jobId, U.rosa);
    expect(a2).toMatchObject({
      accepted: true,
      code: 'APPROVAL_COUNTED',
      missing: { approvals: 0, openGroups: [], simulationStep: 'simulate' },
    });
    expect((await tokensOf(ctx, job.jobId)).map((t) => t.step_id)).toEqual(['simulate']);

    const claim = await claimToken(ctx, { jobId: job.jobId, step: 'simulate', agentId: CHANGE.executor });
    expect((await tokensOf(ctx, job.jobId)).map((t) => t.step_id)).toEqual(['simulate']);
    expect(await stepStatus(ctx, job.jobId, 'approve-change')).toBe('awaiting_approval');

    const r = await reportResult(ctx, {
      jobId: job.jobId,
      step: 'simulate',
      agentId: CHANGE.executor,
      status: 'succeeded',
      receipts: [receiptFor(claim)],
    });
    expect(r.minted).toEqual(['approve-change']);
    expect((await tokensOf(ctx, job.jobId)).map((t) => t.step_id)).toEqual(['approve-change', 'simulate']);
    expect(await stepStatus(ctx, job.jobId, 'approve-change')).toBe('approved');
    // Steps without their approvals stay waiting.
    expect(await stepStatus(ctx, job.jobId, 'execute')).toBe('awaiting_approval');
  });

  it('after the simulation succeeded, quorum mints at once', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await prodChange(ctx);
    const claim = await claimToken(ctx, { jobId: job.jobId, step: 'simulate', agentId: CHANGE.executor });
    await reportResult(ctx, {
      jobId: job.jobId,
      step: 'simulate',
      agentId: CHANGE.executor,
      status: 'succeeded',
      receipts: [receiptFor(claim)],
    });
    await approveChange(ctx, job.jobId, U.rosa);
    expect((await approveChange(ctx, job.jobId, U.priya)).code).toBe('QUORUM_MET');
  });

  it('a failed simulation mints nothing and fails the job', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await prodChange(ctx);
    await approveChange(ctx, job.jobId, U.priya);
    await approveChange(ctx, job.jobId, U.rosa);
    await claimToken(ctx, { jobId: job.jobId, step: 'simulate', agentId: CHANGE.executor });
    const r = await reportResult(ctx, {
      jobId: job.jobId,
      step: 'simulate',
      agentId: CHANGE.executor,
      status: 'failed',
    });
    expect(r.minted).toEqual([]);
    expect(r.ended?.status).toBe('failed');
    expect((await tokensOf(ctx, job.jobId)).map((t) => t.step_id)).toEqual(['simulate']);
    await expectSealed(ctx, job.jobId, 'failed');
  });
});
