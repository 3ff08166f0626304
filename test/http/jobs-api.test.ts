import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, revokeAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import { confirmRequester } from '../../src/approvals/confirm-requester.js';
import { decideStep } from '../../src/approvals/record-decision.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, type TestEngine, U } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';
import { receiptFor } from '../helpers/receipts.js';

const ADMIN = 'admin-token-for-tests-0123456789';
const OTHER_AGENT = 'agent:ops-other';
const CLOSED_CHANNEL = 'zzzzzzzzzzzzzzzzzzzzzzzzzz';
const AUTO_STEPS = ['search-kb', 'read-runbook', 'fetch-status'];

type Opened = { e: TestEngine; app: FastifyInstance }[];
const closeAll = async (list: Opened) => {
  for (const { e, app } of list.splice(0)) {
    await app.close();
    await e.close();
  }
};
const opened: Opened = [];
afterEach(() => closeAll(opened));

/** A fresh engine and app with two agents; `list` decides when it is closed. */
async function setup(list: Opened = opened) {
  const e = await createTestEngine();
  const { ctx } = e;
  const app = buildApp({
    db: ctx.db,
    keyRing: ctx.keyRing,
    policies: ctx.policies,
    log: silentLogger(),
    engine: ctx,
    adminToken: ADMIN,
    rateLimits: { perCaller: 1000 },
  });
  list.push({ e, app });
  const ops = await createAgent(ctx.db, { id: OPS.executor, at: ctx.clock() });
  const other = await createAgent(ctx.db, { id: OTHER_AGENT, at: ctx.clock() });
  return {
    ...e,
    app,
    ops: { authorization: `Bearer ${ops.key}` },
    other: { authorization: `Bearer ${other.key}` },
  };
}

const runbookBody = (over: Record<string, unknown> = {}) => ({
  channel_id: OPS.channel,
  requester_id: U.grace,
  runbook: {
    name: 'service-context',
    params: { service: 'payments-api', query: 'latency spikes', notify_channel: 'payments-oncall' },
  },
  ...over,
});

interface View {
  id: string;
  job_id: number;
  version: number;
  status: string;
  bundle_id: string | null;
  steps: {
    id: string;
    gate: string;
    status: string;
    approvals: number;
    required_approvals: number;
    token: { jti: string; claimable: boolean } | null;
  }[];
}

/** A job the agent submits for grace, who then confirms it (as she would in its thread). */
async function createViaApi(s: Awaited<ReturnType<typeof setup>>): Promise<View> {
  const res = await s.app.inject({ method: 'POST', url: '/v1/jobs', headers: s.ops, payload: runbookBody() });
  expect(res.statusCode).toBe(201);
  const { job_id: jobId } = res.json() as View;
  const confirmed = await confirmRequester(s.ctx, { jobId, userId: U.grace });
  expect(confirmed.code).toBe('REQUESTER_CONFIRMED');
  return (await s.app.inject({ url: `/v1/jobs/${jobId}`, headers: s.ops })).json() as View;
}

const claim = (s: Awaited<ReturnType<typeof setup>>, jobId: number, step: string, headers = s.ops) =>
  s.app.inject({ method: 'POST', url: `/v1/jobs/${jobId}/steps/${step}/token`, headers });

const result = (
  s: Awaited<ReturnType<typeof setup>>,
  jobId: number,
  step: string,
  payload: Record<string, unknown> = { status: 'succeeded' },
) => s.app.inject({ method: 'POST', url: `/v1/jobs/${jobId}/steps/${step}/result`, headers: s.ops, payload });

/** Claims a step and reports it succeeded with a gateway receipt bound to the claim. */
const claimAndSucceed = async (s: Awaited<ReturnType<typeof setup>>, jobId: number, step: string) => {
  const claimed = await claim(s, jobId, step);
  expect(claimed.statusCode).toBe(200);
  const { run_id: runId, event_hash_b64u: eventHash } = claimed.json() as Record<string, string>;
  return result(s, jobId, step, {
    status: 'succeeded',
    receipts: [receiptFor({ runId: runId!, eventHash: eventHash! })],
  });
};

const approveBoth = async (s: Awaited<ReturnType<typeof setup>>, jobId: number) => {
  for (const userId of [U.alice, U.chioma]) {
    const d = await decideStep(s.ctx, { kind: 'approve', jobId, step: 'post-summary', userId });
    expect(d.accepted).toBe(true);
  }
};

const errorOf = (res: { statusCode: number; json: () => unknown }) => [
  res.statusCode,
  (res.json() as { error: { code: string } }).error.code,
];

describe(`agent jobs API (${dialectName})`, () => {
  describe('authentication', () => {
    it('refuses a missing, malformed, unknown or revoked bearer key with 401 ERR_UNAUTHENTICATED', async () => {
      const s = await setup();
      const attempts: Record<string, string>[] = [
        {},
        { authorization: 'Basic abc' },
        { authorization: 'Bearer ' },
        { authorization: `Bearer cak_${'A'.repeat(43)}` },
        { authorization: `Bearer ${ADMIN}` },
      ];
      for (const headers of attempts) {
        expect(errorOf(await s.app.inject({ url: '/v1/jobs', headers }))).toEqual([
          401,
          'ERR_UNAUTHENTICATED',
        ]);
        const post = await s.app.inject({ method: 'POST', url: '/v1/jobs', headers, payload: runbookBody() });
        expect(errorOf(post)).toEqual([401, 'ERR_UNAUTHENTICATED']);
      }
      expect(await s.ctx.db.selectFrom('jobs').select('id').execute()).toEqual([]);

      expect((await s.app.inject({ url: '/v1/jobs', headers: s.ops })).statusCode).toBe(200);
      await revokeAgent(s.ctx, { id: OPS.executor, actor: 'tests' });
      expect(errorOf(await s.app.inject({ url: '/v1/jobs', headers: s.ops }))).toEqual([
        401,
        'ERR_UNAUTHENTICATED',
      ]);
      const post = await s.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: s.ops,
        payload: runbookBody(),
      });
      expect(errorOf(post)).toEqual([401, 'ERR_UNAUTHENTICATED']);
      // The other agent is unaffected.
      expect((await s.app.inject({ url: '/v1/jobs', headers: s.other })).statusCode).toBe(200);
    });
  });

  describe('POST /v1/jobs', () => {
    it('creates a runbook job: 201 with steps and gates, never a token value', async () => {
      const s = await setup();
      const res = await s.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: s.ops,
        payload: runbookBody(),
      });
      expect(res.statusCode).toBe(201);
      const view = res.json() as View;
      expect(view).toMatchObject({
        id: `job:${view.job_id}`,
        status: 'open',
        origin: 'api',
        channel_id: OPS.channel,
        root_post_id: null,
        requester_id: U.grace,
        executor: OPS.executor,
        runbook: 'service-context',
        policy: { name: 'mattermost-agent-prod' },
        bundle_id: null,
      });
      expect(view.version).toBeGreaterThan(0);
      expect(view.steps.map((st) => [st.id, st.gate, st.status, st.required_approvals])).toEqual([
        ['search-kb', 'auto', 'approved', 0],
        ['read-runbook', 'auto', 'approved', 0],
        ['fetch-status', 'auto', 'approved', 0],
        ['post-summary', 'gated', 'awaiting_approval', 2],
      ]);
      expect(view.steps[3]).toMatchObject({
        approver_groups: ['ops-oncall', 'sec-reviewers'],
        distinct_groups: true,
        approvals: 0,
        token: null,
      });
      const tokens = await s.ctx.db
        .selectFrom('tokens')
        .selectAll()
        .where('job_id', '=', view.job_id)
        .execute();
      expect(tokens).toHaveLength(3);
      for (const t of tokens) {
        expect(t.compact).not.toBeNull();
        expect(res.body).not.toContain(t.compact!);
        expect(res.body).not.toContain(t.token_hash);
        expect(view.steps.find((st) => st.id === t.step_id)!.token).toEqual({
          jti: t.jti,
          expires_at: t.expires_at.toISOString(),
          claimable: true,
        });
      }
      // No compact JWS anywhere in the body.
      expect(res.body).not.toMatch(/eyJ[\w-]*\.[\w-]+\.[\w-]+/);
      expect(res.body).not.toMatch(/"token":"/);
    });

    it('creates a job from explicit steps for the agent itself', async () => {
      const s = await setup();
      const res = await s.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: s.other,
        payload: {
          channel_id: OPS.channel,
          requester_id: U.grace,
          steps: [{ id: 'look', tool: 'read', args: { path: 'runbooks/x.md' }, summary: 'Read the runbook' }],
        },
      });
      expect(res.statusCode).toBe(201);
      expect(res.json()).toMatchObject({
        executor: OTHER_AGENT,
        runbook: null,
        steps: [{ id: 'look', tool: 'read', gate: 'auto', args: { path: 'runbooks/x.md' } }],
      });
    });

    describe('schema refusals', () => {
      const shared: Opened = [];
      let s: Awaited<ReturnType<typeof setup>>;
      beforeAll(async () => {
        s = await setup(shared);
      });
      afterAll(() => closeAll(shared));

      it.each([
        ['an extra property', runbookBody({ priority: 'high' })],
        [
          'an extra runbook property',
          runbookBody({ runbook: { name: 'service-context', params: {}, x: 1 } }),
        ],
        ['a malformed channel id', runbookBody({ channel_id: 'Town-Square' })],
        ['a malformed requester id', runbookBody({ requester_id: '@grace' })],
        ['no requester', { channel_id: OPS.channel, runbook: { name: 'service-context' } }],
        [
          'an oversized step summary',
          runbookBody({ runbook: undefined, steps: [{ id: 'a', tool: 'read', summary: 's'.repeat(501) }] }),
        ],
        [
          'too many steps',
          runbookBody({
            runbook: undefined,
            steps: Array.from({ length: 33 }, (_, i) => ({ id: `s${i}`, tool: 'read', summary: 'read' })),
          }),
        ],
        ['an empty step list', runbookBody({ runbook: undefined, steps: [] })],
        [
          'a nested param value',
          runbookBody({ runbook: { name: 'service-context', params: { service: { a: 1 } } } }),
        ],
      ])('refuses %s with 400 ERR_VALIDATION and creates nothing', async (_why, payload) => {
        const res = await s.app.inject({ method: 'POST', url: '/v1/jobs', headers: s.ops, payload });
        expect(errorOf(res)).toEqual([400, 'ERR_VALIDATION']);
        expect(await s.ctx.db.selectFrom('jobs').select('id').execute()).toEqual([]);
      });
    });

    it('refuses a body over the limit with 413 ERR_PAYLOAD_TOO_LARGE', async () => {
      const s = await setup();
      const res = await s.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: { ...s.ops, 'content-type': 'application/json' },
        payload: JSON.stringify(runbookBody({ padding: 'x'.repeat(70 * 1024) })),
      });
      expect(errorOf(res)).toEqual([413, 'ERR_PAYLOAD_TOO_LARGE']);
    });

    it('refuses a plan with a denied tool with 422 ERR_PLAN_DENIED', async () => {
      const s = await setup();
      const res = await s.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: s.ops,
        payload: runbookBody({
          runbook: undefined,
          steps: [
            { id: 'look', tool: 'read', summary: 'Read the runbook' },
            { id: 'fix', tool: 'exec', args: { cmd: 'systemctl restart payments' }, summary: 'Restart' },
          ],
        }),
      });
      expect(errorOf(res)).toEqual([422, 'ERR_PLAN_DENIED']);
      expect(res.json().error.message).toContain('fix');
      expect(await s.ctx.db.selectFrom('jobs').select('id').execute()).toEqual([]);
    });

    it('refuses a channel no policy allows with 403 ERR_CHANNEL_CLOSED', async () => {
      const s = await setup();
      const res = await s.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: s.ops,
        payload: runbookBody({ channel_id: CLOSED_CHANNEL }),
      });
      expect(errorOf(res)).toEqual([403, 'ERR_CHANNEL_CLOSED']);
      const team = await s.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: s.ops,
        payload: runbookBody({ team_id: 'zzzzzzzzzzzzzzzzzzzzzzzzzz' }),
      });
      expect(errorOf(team)).toEqual([403, 'ERR_CHANNEL_CLOSED']);
    });

    it('refuses a requester outside the requester groups with 403 ERR_NOT_A_REQUESTER', async () => {
      const s = await setup();
      for (const requester of [U.outsider, U.alice]) {
        const res = await s.app.inject({
          method: 'POST',
          url: '/v1/jobs',
          headers: s.ops,
          payload: runbookBody({ requester_id: requester }),
        });
        expect(errorOf(res)).toEqual([403, 'ERR_NOT_A_REQUESTER']);
      }
    });

    it("refuses an agent running another agent's runbook with 403 ERR_FORBIDDEN", async () => {
      const s = await setup();
      const res = await s.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: s.other,
        payload: runbookBody(),
      });
      expect(errorOf(res)).toEqual([403, 'ERR_FORBIDDEN']);
      expect(res.json().error.message).toContain(OPS.executor);
      expect(await s.ctx.db.selectFrom('jobs').select('id').execute()).toEqual([]);
    });

    it('refuses unknown runbook params with 400 ERR_PLAN_INVALID', async () => {
      const s = await setup();
      const res = await s.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: s.ops,
        payload: runbookBody({ runbook: { name: 'service-context', params: { service: 'payments-api' } } }),
      });
      expect(errorOf(res)).toEqual([400, 'ERR_PLAN_INVALID']);
    });
  });

  describe('reading jobs', () => {
    it("an agent sees only its own jobs: another agent's job is 404 ERR_JOB_NOT_FOUND", async () => {
      const s = await setup();
      const mine = await createViaApi(s);
      const theirs = await s.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: s.other,
        payload: {
          channel_id: OPS.channel,
          requester_id: U.grace,
          steps: [{ id: 'look', tool: 'read', summary: 'Read' }],
        },
      });
      expect(theirs.statusCode).toBe(201);
      const theirId = (theirs.json() as View).job_id;

      expect((await s.app.inject({ url: `/v1/jobs/${mine.job_id}`, headers: s.ops })).json()).toMatchObject({
        id: mine.id,
      });
      expect(errorOf(await s.app.inject({ url: `/v1/jobs/${theirId}`, headers: s.ops }))).toEqual([
        404,
        'ERR_JOB_NOT_FOUND',
      ]);
      expect(errorOf(await s.app.inject({ url: `/v1/jobs/${mine.job_id}`, headers: s.other }))).toEqual([
        404,
        'ERR_JOB_NOT_FOUND',
      ]);
      // Missing and foreign look the same.
      expect(errorOf(await s.app.inject({ url: '/v1/jobs/999999', headers: s.ops }))).toEqual([
        404,
        'ERR_JOB_NOT_FOUND',
      ]);
      expect(errorOf(await claim(s, mine.job_id, 'search-kb', s.other))).toEqual([404, 'ERR_JOB_NOT_FOUND']);
      const list = (await s.app.inject({ url: '/v1/jobs', headers: s.ops })).json() as { jobs: View[] };
      expect(list.jobs.map((j) => j.job_id)).toEqual([mine.job_id]);
      const theirList = (await s.app.inject({ url: '/v1/jobs', headers: s.other })).json() as {
        jobs: View[];
      };
      expect(theirList.jobs.map((j) => j.job_id)).toEqual([theirId]);
    });

    describe('query refusals', () => {
      const shared: Opened = [];
      let s: Awaited<ReturnType<typeof setup>>;
      beforeAll(async () => {
        s = await setup(shared);
      });
      afterAll(() => closeAll(shared));

      it.each([
        ['a non-numeric id', '/v1/jobs/abc'],
        ['a job:N id', '/v1/jobs/job:1'],
        ['a zero id', '/v1/jobs/0'],
        ['a wait beyond the maximum', '/v1/jobs/1?wait=31'],
        ['an unknown query parameter', '/v1/jobs/1?verbose=1'],
        ['ready=2', '/v1/jobs?ready=2'],
        ['a negative wait', '/v1/jobs/1?wait=-1'],
        ['a fractional wait', '/v1/jobs?ready=1&wait=1.5'],
        ['a repeated wait', '/v1/jobs?wait=1&wait=2'],
        ['a non-numeric after', '/v1/jobs/1?wait=1&after=x'],
      ])('refuses %s with 400 ERR_VALIDATION', async (_why, url) => {
        expect(errorOf(await s.app.inject({ url, headers: s.ops }))).toEqual([400, 'ERR_VALIDATION']);
      });
    });

    it('GET /v1/jobs?ready=1 lists only open jobs with a claimable step', async () => {
      const s = await setup();
      const a = await createViaApi(s);
      const b = await createViaApi(s);
      const ready = async () =>
        (
          (await s.app.inject({ url: '/v1/jobs?ready=1', headers: s.ops })).json() as { jobs: View[] }
        ).jobs.map((j) => j.job_id);
      expect(await ready()).toEqual([a.job_id, b.job_id]);
      // Run job a's auto steps: it then waits for approvals only.
      for (const step of AUTO_STEPS) {
        expect((await claimAndSucceed(s, a.job_id, step)).statusCode).toBe(200);
      }
      expect(await ready()).toEqual([b.job_id]);
      const all = (await s.app.inject({ url: '/v1/jobs', headers: s.ops })).json() as { jobs: View[] };
      expect(all.jobs.map((j) => j.job_id)).toEqual([a.job_id, b.job_id]);
      await approveBoth(s, a.job_id);
      expect(await ready()).toEqual([a.job_id, b.job_id]);
      // Closed jobs are not listed.
      const close = await s.app.inject({ method: 'POST', url: `/v1/jobs/${b.job_id}/close`, headers: s.ops });
      expect(close.statusCode).toBe(200);
      expect(await ready()).toEqual([a.job_id]);
    });

    it('a long-poll on a job returns when an approval lands, with the change in it', async () => {
      const s = await setup();
      const job = await createViaApi(s);
      // wait=30 is the test's own time limit: only an early wake-up lets this test finish.
      const pending = s.app.inject({
        url: `/v1/jobs/${job.job_id}?wait=30&after=${job.version}`,
        headers: s.ops,
      });
      const d = await decideStep(s.ctx, {
        kind: 'approve',
        jobId: job.job_id,
        step: 'post-summary',
        userId: U.alice,
      });
      expect(d.code).toBe('APPROVAL_COUNTED');
      const res = await pending;
      expect(res.statusCode).toBe(200);
      const view = res.json() as View;
      expect(view.version).toBeGreaterThan(job.version);
      expect(view.steps.find((st) => st.id === 'post-summary')).toMatchObject({
        status: 'awaiting_approval',
        approvals: 1,
      });
    });

    it('a long-poll that names an older version answers at once with the current job', async () => {
      const s = await setup();
      const job = await createViaApi(s);
      await approveBoth(s, job.job_id);
      const res = await s.app.inject({ url: `/v1/jobs/${job.job_id}?wait=30&after=0`, headers: s.ops });
      expect(res.statusCode).toBe(200);
      expect((res.json() as View).steps.find((st) => st.id === 'post-summary')).toMatchObject({
        status: 'approved',
        approvals: 2,
        token: { claimable: true },
      });
    });

    it('a long-poll for ready jobs returns when quorum makes a step claimable', async () => {
      const s = await setup();
      const job = await createViaApi(s);
      for (const step of AUTO_STEPS) {
        expect((await claimAndSucceed(s, job.job_id, step)).statusCode).toBe(200);
      }
      const pending = s.app.inject({ url: '/v1/jobs?ready=1&wait=30', headers: s.ops });
      await approveBoth(s, job.job_id);
      const res = await pending;
      expect(res.statusCode).toBe(200);
      const jobs = (res.json() as { jobs: View[] }).jobs;
      expect(jobs.map((j) => j.job_id)).toEqual([job.job_id]);
      expect(jobs[0]!.steps.find((st) => st.id === 'post-summary')!.status).toBe('approved');
    });
  });

  describe('the requester an agent names', () => {
    it('must confirm before approvals count; only they can, once; a deny needs no confirmation', async () => {
      const s = await setup();
      const res = await s.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: s.ops,
        payload: runbookBody(),
      });
      const { job_id: jobId } = res.json() as View;
      const early = await decideStep(s.ctx, {
        kind: 'approve',
        jobId,
        step: 'post-summary',
        userId: U.alice,
      });
      expect(early).toMatchObject({ accepted: false, code: 'ERR_REQUESTER_UNCONFIRMED' });
      const view = (await s.app.inject({ url: `/v1/jobs/${jobId}`, headers: s.ops })).json() as View;
      expect(view.steps.find((st) => st.id === 'post-summary')).toMatchObject({ approvals: 0 });

      expect(await confirmRequester(s.ctx, { jobId, userId: U.alice })).toMatchObject({
        accepted: false,
        code: 'ERR_NOT_THE_REQUESTER',
      });
      expect(await confirmRequester(s.ctx, { jobId, userId: U.grace })).toMatchObject({
        accepted: true,
        code: 'REQUESTER_CONFIRMED',
      });
      expect(await confirmRequester(s.ctx, { jobId, userId: U.grace })).toMatchObject({
        accepted: false,
        code: 'ERR_ALREADY_CONFIRMED',
      });
      await approveBoth(s, jobId);
      expect((await claim(s, jobId, 'post-summary')).statusCode).toBe(200);

      // A DENY blocks at once: refusing work never needs the requester's word.
      const other = await s.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: s.ops,
        payload: runbookBody(),
      });
      const otherId = (other.json() as View).job_id;
      const deny = await decideStep(s.ctx, {
        kind: 'deny',
        jobId: otherId,
        step: 'post-summary',
        userId: U.alice,
        reason: 'not asked for',
      });
      expect(deny).toMatchObject({ accepted: true, code: 'STEP_DENIED' });
    });
  });

  describe('claiming, reporting and closing', () => {
    it('hands out a step token once, with cache-control no-store', async () => {
      const s = await setup();
      const job = await createViaApi(s);
      const first = await claim(s, job.job_id, 'search-kb');
      expect(first.statusCode).toBe(200);
      expect(first.headers['cache-control']).toBe('no-store');
      const body = first.json();
      const row = await s.ctx.db
        .selectFrom('tokens')
        .selectAll()
        .where('job_id', '=', job.job_id)
        .where('step_id', '=', 'search-kb')
        .executeTakeFirstOrThrow();
      expect(body).toEqual({
        token: expect.stringMatching(/^eyJ[\w-]+\.[\w-]+\.[\w-]+$/),
        jti: row.jti,
        expires_at: row.expires_at.toISOString(),
        run_id: `job:${job.job_id}`,
        event_hash_b64u: expect.stringMatching(/^[\w-]{43}$/),
      });
      // The stored copy is gone; the claim is an event of the chain.
      expect(row.compact).toBeNull();
      const claimed = await s.ctx.db
        .selectFrom('job_events')
        .select('event_type')
        .where('event_hash_b64u', '=', body.event_hash_b64u)
        .executeTakeFirstOrThrow();
      expect(claimed.event_type).toBe('token_claimed');

      const second = await claim(s, job.job_id, 'search-kb');
      expect(errorOf(second)).toEqual([409, 'ERR_TOKEN_ALREADY_CLAIMED']);
      expect(second.body).not.toContain(body.token);
      const view = (await s.app.inject({ url: `/v1/jobs/${job.job_id}`, headers: s.ops })).json() as View;
      expect(view.steps[0]).toMatchObject({ status: 'claimed', token: { jti: row.jti, claimable: false } });
    });

    it('refuses a claim before approval with 409 ERR_STEP_STATE and an unknown step with 404', async () => {
      const s = await setup();
      const job = await createViaApi(s);
      expect(errorOf(await claim(s, job.job_id, 'post-summary'))).toEqual([409, 'ERR_STEP_STATE']);
      await decideStep(s.ctx, { kind: 'approve', jobId: job.job_id, step: 'post-summary', userId: U.alice });
      expect(errorOf(await claim(s, job.job_id, 'post-summary'))).toEqual([409, 'ERR_STEP_STATE']);
      expect(errorOf(await claim(s, job.job_id, 'no-such-step'))).toEqual([404, 'ERR_STEP_NOT_FOUND']);
      expect(errorOf(await claim(s, job.job_id, 'Bad Step'))).toEqual([400, 'ERR_VALIDATION']);
      await decideStep(s.ctx, { kind: 'approve', jobId: job.job_id, step: 'post-summary', userId: U.chioma });
      expect((await claim(s, job.job_id, 'post-summary')).statusCode).toBe(200);
    });

    it('reports results, completes the job and serves its sealed bundle byte for byte', async () => {
      const s = await setup();
      const job = await createViaApi(s);
      expect(errorOf(await result(s, job.job_id, 'search-kb'))).toEqual([409, 'ERR_STEP_STATE']);
      await approveBoth(s, job.job_id);
      const steps = [...AUTO_STEPS, 'post-summary'];
      let last: Record<string, unknown> = {};
      for (const step of steps) {
        const claimed = await claim(s, job.job_id, step);
        expect(claimed.statusCode).toBe(200);
        const { run_id: runId, event_hash_b64u: eventHash } = claimed.json() as Record<string, string>;
        const res = await result(s, job.job_id, step, {
          status: 'succeeded',
          summary: `${step} ok`,
          receipts: [receiptFor({ runId: runId!, eventHash: eventHash! })],
        });
        expect(res.statusCode).toBe(200);
        last = res.json();
        if (step !== 'post-summary') {
          expect(last).toEqual({
            step,
            status: 'succeeded',
            receipts: [{ receipt_id: expect.any(String), verified: true, failure: null }],
            job_status: 'open',
            bundle_id: null,
          });
          expect(errorOf(await result(s, job.job_id, step))).toEqual([409, 'ERR_STEP_STATE']);
        }
      }
      expect(last).toMatchObject({ step: 'post-summary', job_status: 'completed' });
      const bundleId = last.bundle_id as string;
      expect(bundleId).toMatch(/^pb_/);

      const view = (await s.app.inject({ url: `/v1/jobs/${job.job_id}`, headers: s.ops })).json() as View;
      expect(view).toMatchObject({ status: 'completed', bundle_id: bundleId });
      expect(errorOf(await claim(s, job.job_id, 'search-kb'))).toEqual([409, 'ERR_JOB_CLOSED']);

      const row = await s.ctx.db
        .selectFrom('bundles')
        .selectAll()
        .where('bundle_id', '=', bundleId)
        .executeTakeFirstOrThrow();
      // The bundle link needs no agent key: the id is the capability.
      const res = await s.app.inject({ url: `/v1/bundles/${bundleId}` });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      // A capability link: no shared cache may keep it, and it is never sniffed or passed on.
      expect(res.headers['cache-control']).toMatch(/^private\b/);
      expect(res.headers['cache-control']).not.toContain('public');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      expect(res.rawPayload.equals(Buffer.from(row.envelope, 'utf8'))).toBe(true);
      expect(res.body).toBe(row.envelope);
      expect(
        verifyBundle(JSON.parse(res.body), {
          trustsSigner: s.ctx.keyRing.trusts,
          gatewaySigners: s.ctx.gatewaySigners,
        }),
      ).toMatchObject({ ok: true, bundleId });
    });

    it('carries gateway receipts in a result and says which could not be verified', async () => {
      const s = await setup();
      const job = await createViaApi(s);
      const claimed = await claim(s, job.job_id, 'search-kb');
      expect(claimed.statusCode).toBe(200);
      const { run_id: runId, event_hash_b64u: eventHash } = claimed.json() as Record<string, string>;
      const receipt = {
        envelope_version: '1',
        envelope_type: 'gateway_receipt',
        payload: { receipt_id: 'r1' },
      };
      const good = receiptFor({ runId: runId!, eventHash: eventHash! });
      const res = await result(s, job.job_id, 'search-kb', {
        status: 'succeeded',
        receipts: [receipt, good],
      });
      expect(res.statusCode).toBe(200);
      expect(res.json().receipts).toEqual([
        { receipt_id: 'r1', verified: false, failure: expect.any(String) },
        { receipt_id: expect.any(String), verified: true, failure: null },
      ]);
      const tooMany = await result(s, job.job_id, 'read-runbook', {
        status: 'succeeded',
        receipts: Array.from({ length: 101 }, () => ({})),
      });
      expect(errorOf(tooMany)).toEqual([400, 'ERR_VALIDATION']);
    });

    it('a failed step ends the job as failed', async () => {
      const s = await setup();
      const job = await createViaApi(s);
      expect((await claim(s, job.job_id, 'search-kb')).statusCode).toBe(200);
      const res = await result(s, job.job_id, 'search-kb', { status: 'failed', summary: 'index down' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({
        status: 'failed',
        job_status: 'failed',
        bundle_id: expect.stringMatching(/^pb_/),
      });
      expect(errorOf(await result(s, job.job_id, 'read-runbook'))).toEqual([409, 'ERR_JOB_CLOSED']);
    });

    it('closing an unfinished job cancels it, seals its bundle and refuses a second close', async () => {
      const s = await setup();
      const job = await createViaApi(s);
      const res = await s.app.inject({
        method: 'POST',
        url: `/v1/jobs/${job.job_id}/close`,
        headers: s.ops,
        payload: { reason: 'no longer needed' },
      });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({
        job_status: 'cancelled',
        bundle_id: expect.stringMatching(/^pb_/),
        reason: expect.stringContaining('no longer needed'),
      });
      const again = await s.app.inject({
        method: 'POST',
        url: `/v1/jobs/${job.job_id}/close`,
        headers: s.ops,
      });
      expect(errorOf(again)).toEqual([409, 'ERR_JOB_CLOSED']);
      const foreign = await s.app.inject({
        method: 'POST',
        url: `/v1/jobs/${job.job_id}/close`,
        headers: s.other,
      });
      expect(errorOf(foreign)).toEqual([404, 'ERR_JOB_NOT_FOUND']);
      const view = (await s.app.inject({ url: `/v1/jobs/${job.job_id}`, headers: s.ops })).json() as View;
      expect(view).toMatchObject({ status: 'cancelled', bundle_id: res.json().bundle_id });
      expect(view.steps.every((st) => st.token === null || !st.token.claimable)).toBe(true);
    });

    it('a bare POST (no body) closes with the default reason', async () => {
      const s = await setup();
      const job = await createViaApi(s);
      const res = await s.app.inject({ method: 'POST', url: `/v1/jobs/${job.job_id}/close`, headers: s.ops });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({
        job_status: 'cancelled',
        reason: 'closed by its agent (4 step(s) had not run)',
      });
      const bad = await s.app.inject({
        method: 'POST',
        url: `/v1/jobs/${job.job_id}/close`,
        headers: s.ops,
        payload: { reason: 'x', extra: 1 },
      });
      expect(errorOf(bad)).toEqual([400, 'ERR_VALIDATION']);
    });
  });

  describe('GET /v1/bundles/:id', () => {
    const shared: Opened = [];
    let s: Awaited<ReturnType<typeof setup>>;
    beforeAll(async () => {
      s = await setup(shared);
    });
    afterAll(() => closeAll(shared));

    it.each([
      ['an unknown id', `pb_${'A'.repeat(22)}`],
      ['a malformed id', 'not-a-bundle'],
      ['a too short id', 'pb_abc'],
      ['an id with a bad character', `pb_${'A'.repeat(21)}.`],
    ])('answers %s with 404 ERR_BUNDLE_NOT_FOUND', async (_why, id) => {
      expect(errorOf(await s.app.inject({ url: `/v1/bundles/${id}` }))).toEqual([
        404,
        'ERR_BUNDLE_NOT_FOUND',
      ]);
    });
  });
});
