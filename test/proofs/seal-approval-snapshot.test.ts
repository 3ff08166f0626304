import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChatMembership } from '../../src/approvals/directory.js';
import type { ChatFacts } from '../../src/ports/chat.js';
import { decideStep } from '../../src/approvals/record-decision.js';
import type { ChatPost } from '../../src/chat/chat-port.js';
import { canonicalJson } from '../../src/crypto/jcs.js';
import { sha256B64u } from '../../src/crypto/hash.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import { approvalRuleFor } from '../../src/policy/approval-rule.js';
import { getVerifiedPolicy } from '../../src/policy/registry.js';
import { approvalPolicyOf } from '../../src/policy/wpc-payload.js';
import { eventHash } from '../../src/proofs/event-chain.js';
import { type ApprovalSnapshot, checkTwoPerson } from '../../src/proofs/two-person.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, editJson, OPS, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { receiptFor } from '../helpers/receipts.js';

interface SealedStep {
  step: string;
  tool: string;
  gate: string;
  approval: ApprovalSnapshot | null;
  approval_unrecorded?: string;
}
interface Sealed {
  event_chain: { event_id: string; event_type: string; event_hash_b64u: string; timestamp: string }[];
  metadata: {
    claw_approvals: {
      policy: { name: string; policy_hash_b64u: string; envelope?: unknown };
      steps: SealedStep[];
    };
    event_payloads: { event_id: string; payload: Record<string, unknown> }[];
  };
}

const STEPS = ['search-kb', 'read-runbook', 'fetch-status', 'post-summary'];
/** ops-oncall's Mattermost user group (policies/groups.json) and people in it only through chat. */
const OPS_ONCALL_MM_GROUP = 'uibxf4oba4dbo6fisi3knuwnjy';
const VIA_GROUP = 'ugrpmember0000000000000001';
const VIA_CHANNEL = 'uchanmember000000000000001';
const SEC_CHANNEL = 'secreviewchannel0000000001';

const opened: TestEngine[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((t) => t.close()));
});

async function engine(opts: Parameters<typeof createTestEngine>[0] = {}) {
  const e = await createTestEngine(opts);
  opened.push(e);
  return e.ctx;
}

/** Claims, redeems and reports every step of the ops job, each with a receipt from the test gateway. */
async function runSteps(ctx: EngineContext, jobId: number) {
  for (const step of STEPS) {
    const c = await claimToken(ctx, { jobId, step, agentId: OPS.executor });
    await redeemToken(ctx, c.token);
    await reportResult(ctx, {
      jobId,
      step,
      agentId: OPS.executor,
      status: 'succeeded',
      summary: `${step} done`,
      receipts: [receiptFor(c)],
    });
  }
}

async function sealed(ctx: EngineContext, jobId: number): Promise<{ env: unknown; p: Sealed }> {
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
  const env = JSON.parse(row.envelope) as { payload: Sealed };
  return { env, p: env.payload };
}

const stepOf = (p: Sealed, step: string) => p.metadata.claw_approvals.steps.find((s) => s.step === step)!;

/** The event of `type` whose payload satisfies `where`, with its payload. */
function eventOf(p: Sealed, type: string, where: (payload: Record<string, unknown>) => boolean) {
  const payloads = new Map(p.metadata.event_payloads.map((x) => [x.event_id, x.payload]));
  const found = p.event_chain.filter((e) => e.event_type === type && where(payloads.get(e.event_id)!));
  expect(found).toHaveLength(1);
  return { event: found[0]!, payload: payloads.get(found[0]!.event_id)! };
}

/** The rule the pinned policy's signed envelope (as `/v1/wpc/:hash` serves it) gives a step. */
async function ruleFromEnvelope(ctx: EngineContext, p: Sealed, tool: string) {
  const envelope = await getVerifiedPolicy(
    ctx.db,
    p.metadata.claw_approvals.policy.policy_hash_b64u,
    ctx.keyRing.trusts,
  );
  expect(sha256B64u(canonicalJson(envelope.payload))).toBe(envelope.payload_hash_b64u);
  expect(envelope.payload_hash_b64u).toBe(p.metadata.claw_approvals.policy.policy_hash_b64u);
  const r = approvalRuleFor(approvalPolicyOf(envelope.payload as never), tool);
  return {
    required_approvals: r.required_approvals,
    allowed_approver_groups: r.allowed_approver_groups,
    distinct_groups: r.distinct_groups,
    allow_requester_approval: r.allow_requester_approval,
  };
}

/** Mattermost as the engine re-reads it at quorum time: approval posts as posted, accounts active. */
function chatFacts(posts: Map<string, ChatPost>, usernames: Record<string, string>): ChatFacts {
  return {
    post: async (id) => posts.get(id) ?? null,
    freshUser: async (id) => ({ id, username: usernames[id] ?? `user-${id}`, is_bot: false, delete_at: 0 }),
  };
}

function approvalPost(id: string, userId: string, jobId: number, rootId: string): ChatPost {
  return {
    id,
    create_at: 1,
    update_at: 1,
    edit_at: 0,
    delete_at: 0,
    user_id: userId,
    channel_id: OPS.channel,
    root_id: rootId,
    original_id: '',
    message: `APPROVE job:${jobId} step:post-summary`,
    type: '',
    props: {},
  };
}

describe(`each gated step seals the two-person snapshot taken at its mint (${dialectName})`, () => {
  it('listed approvers: the rule of the signed policy, the requester, who counted for which group and how', async () => {
    const ctx = await engine();
    const job = await opsJob(ctx);
    for (const userId of [U.alice, U.chioma])
      await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId });
    await runSteps(ctx, job.jobId);
    const { env, p } = await sealed(ctx, job.jobId);

    const mint = eventOf(p, 'token_minted', (x) => x.step === 'post-summary');
    const approved = (user: string) => eventOf(p, 'approval_recorded', (x) => x.user_id === user).event;
    const gated = stepOf(p, 'post-summary');
    expect(gated.approval).toEqual({
      rule: await ruleFromEnvelope(ctx, p, gated.tool),
      requester_id: U.grace,
      evaluated_at: mint.event.timestamp,
      mint_event_hash_b64u: mint.event.event_hash_b64u,
      approvers: [
        {
          user_id: U.alice,
          username: null,
          post_id: null,
          approval_event_hash_b64u: approved(U.alice).event_hash_b64u,
          counted_for: 'ops-oncall',
          found_in: [{ group: 'ops-oncall', via: 'user_id', ref: U.alice }],
        },
        {
          user_id: U.chioma,
          username: null,
          post_id: null,
          approval_event_hash_b64u: approved(U.chioma).event_hash_b64u,
          counted_for: 'sec-reviewers',
          found_in: [{ group: 'sec-reviewers', via: 'user_id', ref: U.chioma }],
        },
      ],
    });
    expect(gated.approval!.rule).toEqual({
      required_approvals: 2,
      allowed_approver_groups: ['ops-oncall', 'sec-reviewers'],
      distinct_groups: true,
      allow_requester_approval: false,
    });
    // The same record is in the chained token_minted payload (hashed into the chain).
    const { mint_event_hash_b64u: _, ...record } = gated.approval!;
    expect(mint.payload.approval).toEqual(record);
    expect(checkTwoPerson(gated.approval!)).toBeNull();
    // Steps that needed no approval say so.
    for (const s of ['search-kb', 'read-runbook', 'fetch-status']) {
      expect(stepOf(p, s)).toMatchObject({ gate: 'auto', approval: null });
      expect(stepOf(p, s)).not.toHaveProperty('approval_unrecorded');
      expect(eventOf(p, 'token_minted', (x) => x.step === s).payload.approval).toBeNull();
    }
    // The policy is named by hash, not embedded: clawverify caps payload.metadata at 16 KiB.
    expect(p.metadata.claw_approvals.policy).toEqual({
      name: 'mattermost-agent-prod',
      policy_hash_b64u: job.policyHash,
    });
    expect(
      verifyBundle(env, { trustsSigner: ctx.keyRing.trusts, gatewaySigners: ctx.gatewaySigners }),
    ).toMatchObject({ ok: true });
  });

  it('approvers found through Mattermost: the group or channel that matched, their posts and usernames', async () => {
    const members = new Map([
      [OPS_ONCALL_MM_GROUP, VIA_GROUP],
      [SEC_CHANNEL, VIA_CHANNEL],
    ]);
    const membership: ChatMembership = {
      isGroupMember: async (userId, group) => members.get(group) === userId,
      isChannelMember: async (userId, channel) => members.get(channel) === userId,
    };
    const posts = new Map<string, ChatPost>();
    const ctx = await engine({
      chat: membership,
      facts: chatFacts(posts, { [VIA_GROUP]: 'ursula.group', [VIA_CHANNEL]: 'victor.channel' }),
      edit: (dir) =>
        editJson(dir, 'groups.json', (g) => {
          const groups = g.groups as Record<string, { members: Record<string, string>[] }>;
          groups['sec-reviewers']!.members.push({ mattermost_channel: SEC_CHANNEL });
        }),
    });
    const job = await opsJob(ctx);
    const root = (
      await ctx.db
        .selectFrom('jobs')
        .select('root_post_id')
        .where('id', '=', job.jobId)
        .executeTakeFirstOrThrow()
    ).root_post_id!;
    for (const [i, userId] of [VIA_CHANNEL, VIA_GROUP].entries()) {
      const post = approvalPost(`approvalpost${String(i).padStart(14, '0')}`, userId, job.jobId, root);
      posts.set(post.id, post);
      const d = await decideStep(ctx, {
        kind: 'approve',
        jobId: job.jobId,
        step: 'post-summary',
        userId,
        post: { postId: post.id, channelId: OPS.channel, rootId: root },
      });
      expect(d.code).toBe(i === 0 ? 'APPROVAL_COUNTED' : 'QUORUM_MET');
    }
    await runSteps(ctx, job.jobId);
    const { p } = await sealed(ctx, job.jobId);
    const snapshot = stepOf(p, 'post-summary').approval!;
    expect(
      snapshot.approvers.map((a) => [a.user_id, a.username, a.post_id, a.counted_for, a.found_in]),
    ).toEqual([
      [
        VIA_CHANNEL,
        'victor.channel',
        'approvalpost00000000000000',
        'sec-reviewers',
        [{ group: 'sec-reviewers', via: 'mattermost_channel', ref: SEC_CHANNEL }],
      ],
      [
        VIA_GROUP,
        'ursula.group',
        'approvalpost00000000000001',
        'ops-oncall',
        [{ group: 'ops-oncall', via: 'mattermost_group', ref: OPS_ONCALL_MM_GROUP }],
      ],
    ]);
    expect(checkTwoPerson(snapshot)).toBeNull();
  });

  it('a person in both groups is recorded in both, counted for one, and the other approver fills the other', async () => {
    const ctx = await engine({
      edit: (dir) =>
        editJson(dir, 'groups.json', (g) => {
          const groups = g.groups as Record<string, { members: Record<string, string>[] }>;
          groups['ops-oncall']!.members.push({ user_id: U.chioma });
        }),
    });
    const job = await opsJob(ctx);
    for (const userId of [U.chioma, U.alice])
      await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId });
    await runSteps(ctx, job.jobId);
    const { p } = await sealed(ctx, job.jobId);
    const snapshot = stepOf(p, 'post-summary').approval!;
    expect(snapshot.approvers.map((a) => [a.user_id, a.counted_for, a.found_in.map((m) => m.group)])).toEqual(
      [
        [U.chioma, 'sec-reviewers', ['ops-oncall', 'sec-reviewers']],
        [U.alice, 'ops-oncall', ['ops-oncall']],
      ],
    );
    expect(checkTwoPerson(snapshot)).toBeNull();
  });

  it('a policy that lets the requester approve: the requester is recorded among the approvers and the check accepts it', async () => {
    const ctx = await engine({
      edit: (dir) =>
        editJson(dir, 'mattermost-agent-prod.json', (policy) => {
          const execution = policy.execution as { approval_rule: Record<string, unknown> };
          execution.approval_rule.allow_requester_approval = true;
        }),
    });
    // bruno requests (he is in mattermost-agent-requesters) and, being ops-oncall, approves.
    const job = await opsJob(ctx, U.bruno);
    for (const userId of [U.bruno, U.dmitri])
      await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId });
    await runSteps(ctx, job.jobId);
    const { p } = await sealed(ctx, job.jobId);
    const gated = stepOf(p, 'post-summary');
    const snapshot = gated.approval!;
    expect(snapshot.rule).toEqual({
      ...(await ruleFromEnvelope(ctx, p, gated.tool)),
      allow_requester_approval: true,
    });
    expect(snapshot.requester_id).toBe(U.bruno);
    expect(snapshot.approvers.map((a) => [a.user_id, a.counted_for])).toEqual([
      [U.bruno, 'ops-oncall'],
      [U.dmitri, 'sec-reviewers'],
    ]);
    expect(checkTwoPerson(snapshot)).toBeNull();
    // The same approvals under a rule that excludes the requester would not stand.
    expect(
      checkTwoPerson({ ...snapshot, rule: { ...snapshot.rule, allow_requester_approval: false } }),
    ).toMatchObject({
      reason: 'APPROVAL_BY_REQUESTER',
    });
  });

  it('a gated step that was denied, never minted, seals approval null', async () => {
    const ctx = await engine();
    const job = await opsJob(ctx);
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice });
    const d = await decideStep(ctx, {
      kind: 'deny',
      jobId: job.jobId,
      step: 'post-summary',
      userId: U.chioma,
    });
    expect(d.ended?.status).toBe('denied');
    const { p } = await sealed(ctx, job.jobId);
    expect(stepOf(p, 'post-summary')).toMatchObject({ gate: 'gated', approval: null });
    expect(stepOf(p, 'post-summary')).not.toHaveProperty('approval_unrecorded');
  });

  it('a step minted before snapshots were recorded seals approval null with the reason, and the bundle still verifies', async () => {
    const ctx = await engine();
    const job = await opsJob(ctx);
    for (const userId of [U.alice, U.chioma])
      await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId });
    await forgetSnapshots(ctx, job.jobId);
    await runSteps(ctx, job.jobId);
    const { env, p } = await sealed(ctx, job.jobId);
    expect(eventOf(p, 'token_minted', (x) => x.step === 'post-summary').payload).not.toHaveProperty(
      'approval',
    );
    expect(stepOf(p, 'post-summary')).toMatchObject({
      gate: 'gated',
      approval: null,
      approval_unrecorded: 'MINTED_BEFORE_SNAPSHOTS',
    });
    expect(
      verifyBundle(env, { trustsSigner: ctx.keyRing.trusts, gatewaySigners: ctx.gatewaySigners }),
    ).toMatchObject({ ok: true });
  });
});

/**
 * Makes the job's chain look as an earlier version wrote it: `token_minted` payloads without
 * the `approval` key, every hash recomputed as that version would have chained them. The table
 * is append-only, so this goes around its trigger, as only a migration of old data could.
 */
async function forgetSnapshots(ctx: EngineContext, jobId: number): Promise<void> {
  await ctx.db.transaction().execute(async (trx) => {
    const rows = await trx
      .selectFrom('job_events')
      .selectAll()
      .where('job_id', '=', jobId)
      .orderBy('seq')
      .execute();
    await sql`alter table job_events disable trigger job_events_append_only`.execute(trx);
    let prev: string | null = null;
    for (const row of rows) {
      const payload = JSON.parse(row.payload) as Record<string, unknown>;
      if (row.event_type === 'token_minted') delete payload.approval;
      const text = canonicalJson(payload);
      const header = {
        event_id: row.event_id,
        run_id: `job:${jobId}`,
        event_type: row.event_type,
        timestamp: row.timestamp,
        payload_hash_b64u: sha256B64u(text),
        prev_hash_b64u: prev,
      };
      const hash = eventHash(header);
      await trx
        .updateTable('job_events')
        .set({
          payload: text,
          payload_hash_b64u: header.payload_hash_b64u,
          prev_hash_b64u: prev,
          event_hash_b64u: hash,
        })
        .where('job_id', '=', jobId)
        .where('seq', '=', row.seq)
        .execute();
      prev = hash;
    }
    await sql`alter table job_events enable trigger job_events_append_only`.execute(trx);
  });
}
