import type { JobView as ClientJobView } from '@claw-approvals/client';
import type { KyselyPlugin } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import type { Db } from '../../src/db/database.js';
import { closeJob } from '../../src/jobs/agent-job-ops.js';
import { findJob } from '../../src/jobs/job-repository.js';
import { decisionFacts, type DecisionRecord, jobView, type JobView } from '../../src/jobs/job-view.js';
import { endJobByCommand, expireDueJobs } from '../../src/jobs/revoke-job.js';
import { revokeToken } from '../../src/tokens/token-lifecycle.js';
import { type ClientWorld, clientWorld, GATED } from '../client/client-world.js';
import { dialectName } from '../helpers/db.js';
import { eventually } from '../helpers/bot-world.js';
import { createTestEngine, editJson, OPS, opsJob, type TestEngine, U } from '../helpers/engine.js';

const AUTO = ['search-kb', 'read-runbook', 'fetch-status'];
const stepOf = (v: JobView | ClientJobView, id: string) => v.steps.find((s) => s.id === id)!;

describe(`who decided, through the API and the sandbox (${dialectName})`, () => {
  let cw: ClientWorld;
  afterEach(async () => {
    await cw.close();
  });

  it('an approval names the two people whose approvals made the quorum, as Mattermost knows them', async () => {
    cw = await clientWorld();
    const { client, w } = cw;
    const job = await cw.submit();
    expect(stepOf(job, GATED).decision).toBeNull();
    for (const id of AUTO)
      expect(stepOf(job, id).decision).toEqual({
        outcome: 'auto',
        by: [],
        reason: null,
        at: expect.any(String),
      });

    const waiting = client.waitForDecision(job, GATED, { timeoutMs: 30_000 });
    waiting.catch(() => undefined);
    await cw.approveInChat(job.job_id);
    const d = await waiting;
    expect(d.outcome).toBe('approved');
    const by = [
      {
        user_id: w.ids.alice,
        username: 'alice',
        groups: ['ops-oncall'],
        via: 'chat',
        at: expect.any(String),
      },
      {
        user_id: w.ids.dmitri,
        username: 'dmitri',
        groups: ['sec-reviewers'],
        via: 'chat',
        at: expect.any(String),
      },
    ];
    expect(d.by).toEqual(by);
    expect(d.step.decision).toEqual({ outcome: 'approved', by, reason: null, at: expect.any(String) });
    const [first, second] = d.by;
    expect(first!.at <= second!.at && second!.at <= d.step.decision!.at).toBe(true);

    // Nothing of a person's post reaches the agent: not its id, not the thread's other posts.
    const root = await cw.planPost(job.job_id);
    const seen = JSON.stringify(await client.getJob(job));
    const posts = w.sandbox.thread(root.id).filter((p) => p.id !== root.id);
    expect(posts.length).toBeGreaterThan(2);
    for (const p of posts) expect(seen).not.toContain(p.id);
  });

  it('approvals withdrawn by an edit or a deletion are not named; refused ones neither', async () => {
    cw = await clientWorld();
    const { client, w } = cw;
    const job = await cw.submit();
    const root = await cw.planPost(job.job_id);
    const approve = `APPROVE job:${job.job_id} step:${GATED}`;
    const counted = async (n: number) =>
      eventually(
        async () => stepOf(await client.getJob(job), GATED).approvals === n,
        `${n} approval(s) counting`,
      );
    w.post('grace', `CONFIRM job:${job.job_id}`, root.id);
    await cw.botSays(job.job_id, `job:${job.job_id} confirmed by its requester`);
    // The requester may not approve: refused, recorded, never named.
    w.post('grace', approve, root.id);
    const alice = w.post('alice', approve, root.id);
    await counted(1);
    w.sandbox.editPost(w.ids.alice, alice.id, `${approve} (on second thought, no)`);
    await counted(0);
    const chioma = w.post('chioma', approve, root.id);
    await counted(1);
    w.sandbox.deletePost(w.ids.chioma, chioma.id);
    await counted(0);

    const waiting = client.waitForDecision(job, GATED, { timeoutMs: 30_000 });
    waiting.catch(() => undefined);
    w.post('bruno', approve, root.id);
    await counted(1);
    w.post('dmitri', approve, root.id);
    const d = await waiting;
    expect(d.outcome).toBe('approved');
    expect(d.by.map((p) => [p.user_id, p.username, p.groups])).toEqual([
      [w.ids.bruno, 'bruno', ['ops-oncall']],
      [w.ids.dmitri, 'dmitri', ['sec-reviewers']],
    ]);
    // (grace is named elsewhere in the view: she is the requester.)
    const named = JSON.stringify((await client.getJob(job)).steps.map((s) => s.decision));
    expect(named).toContain(`"${w.ids.bruno}"`);
    for (const who of [w.ids.alice, w.ids.chioma, w.ids.grace]) expect(named).not.toContain(`"${who}"`);
  });

  it('a denial names the denier and their reason, for the denied step and the steps it stopped', async () => {
    cw = await clientWorld();
    const { client, w } = cw;
    const job = await cw.submit();
    const root = await cw.planPost(job.job_id);
    const waiting = client.waitForDecision(job, GATED, { timeoutMs: 30_000 });
    waiting.catch(() => undefined);
    w.post('chioma', `DENY job:${job.job_id} step:${GATED} not during the freeze`, root.id);
    const d = await waiting;
    const chioma = {
      user_id: w.ids.chioma,
      username: null,
      groups: ['sec-reviewers'],
      via: 'chat',
      at: expect.any(String),
    };
    expect(d).toMatchObject({ outcome: 'denied', by: [chioma] });
    expect(d.step.decision).toEqual({
      outcome: 'denied',
      by: [chioma],
      reason: 'not during the freeze',
      at: expect.any(String),
    });
    // The auto steps were stopped by that denial: they name it too.
    for (const id of AUTO) {
      const stopped = await client.waitForDecision(job, id, { timeoutMs: 0 });
      expect(stopped).toMatchObject({ outcome: 'denied', by: [chioma], step: { status: 'cancelled' } });
      expect(stopped.step.decision!.reason).toBe('not during the freeze');
    }
  });

  it('a revoke names the revoker, with the security group and their reason', async () => {
    cw = await clientWorld();
    const { client, w } = cw;
    const job = await cw.submit();
    const root = await cw.planPost(job.job_id);
    const waiting = client.waitForDecision(job, GATED, { timeoutMs: 30_000 });
    waiting.catch(() => undefined);
    w.post('erin', `REVOKE job:${job.job_id} leaked credentials`, root.id);
    const d = await waiting;
    const erin = {
      user_id: w.ids.erin,
      username: null,
      groups: ['security'],
      via: 'chat',
      at: expect.any(String),
    };
    expect(d).toMatchObject({ outcome: 'revoked', by: [erin] });
    expect(d.step.decision).toEqual({
      outcome: 'revoked',
      by: [erin],
      reason: 'leaked credentials',
      at: expect.any(String),
    });
  });
});

describe(`who decided, from the engine's record (${dialectName})`, () => {
  let e: TestEngine;
  afterEach(async () => {
    await e.close();
  });

  const view = async (jobId: number, db: Db = e.ctx.db) =>
    jobView(db, (await findJob(e.ctx.db, jobId))!, e.ctx);
  const gated = async (jobId: number) => stepOf(await view(jobId), GATED).decision;
  const at = () => e.ctx.clock().toISOString();

  it('names a button click and an API decision by how they came, and nobody’s username when Mattermost was not asked', async () => {
    e = await createTestEngine({
      edit: (dir) =>
        editJson(dir, 'mattermost-agent-prod.json', (p) => {
          (p.execution as Record<string, unknown>).approval_methods = ['phrase', 'button'];
        }),
    });
    const { jobId } = await opsJob(e.ctx);
    const job = (await findJob(e.ctx.db, jobId))!;
    const t0 = at();
    const clicked = await decideStep(e.ctx, {
      kind: 'approve',
      jobId,
      step: GATED,
      userId: U.alice,
      button: {
        postId: job.root_post_id!,
        channelId: OPS.channel,
        planHash: job.plan_hash_b64u,
        policyHash: job.policy_hash_b64u,
      },
    });
    expect(clicked.code).toBe('APPROVAL_COUNTED');
    // Refused decisions are recorded but never named.
    expect((await decideStep(e.ctx, { kind: 'approve', jobId, step: GATED, userId: U.outsider })).code).toBe(
      'ERR_NOT_ELIGIBLE',
    );
    expect(await gated(jobId)).toBeNull();
    e.clock.advance(7);
    const t1 = at();
    expect((await decideStep(e.ctx, { kind: 'approve', jobId, step: GATED, userId: U.dmitri })).code).toBe(
      'QUORUM_MET',
    );
    expect(await gated(jobId)).toEqual({
      outcome: 'approved',
      by: [
        { user_id: U.alice, username: null, groups: ['ops-oncall'], via: 'button', at: t0 },
        { user_id: U.dmitri, username: null, groups: ['sec-reviewers'], via: 'api', at: t1 },
      ],
      reason: null,
      at: t1,
    });
  });

  it('an expiry names nobody, for the waiting step and the approved ones it stopped', async () => {
    e = await createTestEngine();
    const { jobId } = await opsJob(e.ctx);
    const job = (await findJob(e.ctx.db, jobId))!;
    e.clock.advance((job.expires_at.getTime() - e.ctx.clock().getTime()) / 1000 + 1);
    expect((await expireDueJobs(e.ctx)).map((x) => x.jobId)).toEqual([jobId]);
    const v = await view(jobId);
    for (const s of v.steps)
      expect(s.decision).toEqual({ outcome: 'expired', by: [], reason: 'approval window elapsed', at: at() });
  });

  it('a revoke by an operator names `admin:<name>` through the API', async () => {
    e = await createTestEngine();
    const { jobId } = await opsJob(e.ctx);
    await endJobByCommand(e.ctx, {
      kind: 'revoke',
      jobId,
      actor: { kind: 'admin', name: 'ops-lead' },
      reason: 'incident 42',
    });
    expect(await gated(jobId)).toEqual({
      outcome: 'revoked',
      by: [{ user_id: 'admin:ops-lead', username: null, groups: [], via: 'api', at: at() }],
      reason: 'incident 42',
      at: at(),
    });
  });

  it('a cancel names the canceller: in the thread (chat), or by the slash command (no post)', async () => {
    e = await createTestEngine();
    const inThread = await opsJob(e.ctx);
    const root = (await findJob(e.ctx.db, inThread.jobId))!.root_post_id!;
    const cancelled = await endJobByCommand(e.ctx, {
      kind: 'cancel',
      jobId: inThread.jobId,
      actor: { kind: 'user', userId: U.chioma },
      reason: 'duplicate of job:1',
      post: { postId: 'c'.repeat(26), channelId: OPS.channel, rootId: root },
    });
    expect(cancelled.code).toBe('JOB_CANCELLED');
    expect(await gated(inThread.jobId)).toEqual({
      outcome: 'cancelled',
      by: [{ user_id: U.chioma, username: null, groups: ['security'], via: 'chat', at: at() }],
      reason: 'duplicate of job:1',
      at: at(),
    });
    const bySlash = await opsJob(e.ctx);
    await endJobByCommand(e.ctx, {
      kind: 'cancel',
      jobId: bySlash.jobId,
      actor: { kind: 'user', userId: U.grace },
      reason: 'cancelled with the slash command',
    });
    expect((await gated(bySlash.jobId))!.by).toEqual([
      { user_id: U.grace, username: null, groups: [], via: 'command', at: at() },
    ]);
  });

  it('a token revoked by its agent names the agent; a job its agent closed names nobody', async () => {
    e = await createTestEngine();
    const { jobId } = await opsJob(e.ctx);
    await decideStep(e.ctx, { kind: 'approve', jobId, step: GATED, userId: U.alice });
    await decideStep(e.ctx, { kind: 'approve', jobId, step: GATED, userId: U.dmitri });
    const jti = stepOf(await view(jobId), GATED).token!.jti;
    e.clock.advance(3);
    await revokeToken(e.ctx, { jti, reason: 'wrong target', actor: { agentId: OPS.executor } });
    const revoked = await gated(jobId);
    expect(revoked).toMatchObject({
      outcome: 'revoked',
      by: [{ user_id: OPS.executor, username: null, groups: [], via: 'api', at: at() }],
      reason: expect.stringContaining('wrong target'),
    });

    const closed = await opsJob(e.ctx);
    await closeJob(e.ctx, { jobId: closed.jobId, agentId: OPS.executor, reason: 'not needed' });
    expect(await gated(closed.jobId)).toMatchObject({ outcome: 'cancelled', by: [] });
  });

  it('reads who decided in one query for the whole job, however many steps and decisions', async () => {
    e = await createTestEngine();
    let queries = 0;
    const counting: KyselyPlugin = {
      transformQuery: (args) => {
        queries += 1;
        return args.node;
      },
      transformResult: async (args) => args.result,
    };
    const db = e.ctx.db.withPlugin(counting);
    // Without the engine, the view does not count approvals against the directory.
    const count = async (jobId: number) => {
      queries = 0;
      await jobView(db, (await findJob(e.ctx.db, jobId))!);
      return queries;
    };
    const { jobId } = await opsJob(e.ctx);
    const fresh = await count(jobId);
    await decideStep(e.ctx, { kind: 'approve', jobId, step: GATED, userId: U.alice });
    await decideStep(e.ctx, { kind: 'approve', jobId, step: GATED, userId: U.dmitri });
    await endJobByCommand(e.ctx, {
      kind: 'revoke',
      jobId,
      actor: { kind: 'user', userId: U.erin },
      reason: 'r',
    });
    expect(await count(jobId)).toBe(fresh);
    // Steps, tokens, and the deciding records.
    expect(fresh).toBe(3);
  });
});

describe('decisionFacts', () => {
  const rec = (event_type: string, payload: object, extra: Partial<DecisionRecord> = {}): DecisionRecord => ({
    event_type,
    payload: JSON.stringify(payload),
    timestamp: '2026-11-21T10:00:00.000Z',
    decision_id: null,
    post_id: null,
    groups: null,
    ...extra,
  });

  it('names only the approvals a mint counted, with the usernames its record holds', () => {
    const facts = decisionFacts([
      rec('approval_recorded', { decision_id: 1, step: 's', user_id: 'a', post_id: 'p1' }),
      rec('approval_recorded', { decision_id: 2, step: 's', user_id: 'b', post_id: 'p2' }),
      rec('approval_recorded', { decision_id: 3, step: 's', user_id: 'c', post_id: null, method: 'button' }),
      rec('token_minted', {
        step: 's',
        counted: [
          { user_id: 'c', group: 'g2', decision_id: 3 },
          { user_id: 'a', group: 'g1', decision_id: 1 },
        ],
        approval: {
          approvers: [
            { user_id: 'a', username: 'ann' },
            { user_id: 'c', username: 'cy' },
          ],
        },
      }),
    ]);
    expect(facts.minted.get('s')!.by.map((d) => [d.user_id, d.username, d.groups, d.via])).toEqual([
      ['a', 'ann', ['g1'], 'chat'],
      ['c', 'cy', ['g2'], 'button'],
    ]);
  });

  it('takes a revoke decision’s groups and post only from the decision the event names', () => {
    const ended = (decisionId: number) =>
      decisionFacts([
        rec(
          'job_revoked',
          { reason: 'r', user_id: 'u', decision_id: 9 },
          { decision_id: decisionId, post_id: 'p', groups: '["security"]' },
        ),
      ]).ender;
    expect(ended(9)).toMatchObject({ user_id: 'u', groups: ['security'], via: 'chat' });
    expect(ended(8)).toMatchObject({ user_id: 'u', groups: [], via: 'api' });
  });
});
