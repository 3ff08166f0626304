import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createAgent, revokeAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import { confirmRequester } from '../../src/approvals/confirm-requester.js';
import { decideStep } from '../../src/approvals/record-decision.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, type TestEngine, U } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';

const ADMIN = 'admin-token-for-tests-0123456789';
const OTHER_AGENT = 'agent:ops-other';

let opened: { e: TestEngine; app: FastifyInstance } | null = null;
afterEach(async () => {
  await opened?.app.close();
  await opened?.e.close();
  opened = null;
});

async function setup() {
  const e = await createTestEngine();
  const { ctx } = e;
  const app = buildApp({
    db: ctx.db,
    keyRing: ctx.keyRing,
    policies: ctx.policies,
    log: silentLogger(),
    engine: ctx,
    adminToken: ADMIN,
  });
  opened = { e, app };
  const ops = await createAgent(ctx.db, { id: OPS.executor, at: ctx.clock() });
  const other = await createAgent(ctx.db, { id: OTHER_AGENT, at: ctx.clock() });
  const call = (method: 'GET' | 'POST', url: string, headers: Record<string, string>, payload?: object) =>
    app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
  return {
    ...e,
    call,
    ops: { authorization: `Bearer ${ops.key}` },
    other: { authorization: `Bearer ${other.key}` },
    admin: { authorization: `Bearer ${ADMIN}` },
  };
}
type Setup = Awaited<ReturnType<typeof setup>>;

async function claim(s: Setup, jobId: number, step: string, headers = s.ops): Promise<string> {
  const res = await s.call('POST', `/v1/jobs/${jobId}/steps/${step}/token`, headers);
  expect(res.statusCode).toBe(200);
  return (res.json() as { token: string }).token;
}

const introspect = async (s: Setup, token: string) =>
  (await s.call('POST', '/v1/tokens/introspect', s.admin, { token })).json() as Record<string, unknown>;

const tokenRow = (s: Setup, jti: string) =>
  s.ctx.db.selectFrom('tokens').selectAll().where('jti', '=', jti).executeTakeFirstOrThrow();

/**
 * Job 1 (the ops runbook, submitted by the ops agent): one token redeemed, one claimed, one
 * minted and never claimed, and the gated step approved and claimed. Job 2 belongs to another
 * agent, whose token is claimed.
 */
async function agentWithLiveTokens(s: Setup) {
  const created = await s.call('POST', '/v1/jobs', s.ops, {
    channel_id: OPS.channel,
    requester_id: U.grace,
    runbook: {
      name: 'service-context',
      params: { service: 'payments-api', query: 'latency spikes', notify_channel: 'payments-oncall' },
    },
  });
  expect(created.statusCode).toBe(201);
  const job = (created.json() as { job_id: number }).job_id;
  const redeemed = await claim(s, job, 'read-runbook');
  expect((await s.call('POST', '/v1/tokens/redeem', s.admin, { token: redeemed })).statusCode).toBe(200);
  const claimed = await claim(s, job, 'search-kb');
  expect((await confirmRequester(s.ctx, { jobId: job, userId: U.grace })).accepted).toBe(true);
  for (const userId of [U.alice, U.chioma]) {
    const d = await decideStep(s.ctx, { kind: 'approve', jobId: job, step: 'post-summary', userId });
    expect(d.accepted).toBe(true);
  }
  const gated = await claim(s, job, 'post-summary');

  const other = await s.call('POST', '/v1/jobs', s.other, {
    channel_id: OPS.channel,
    requester_id: U.grace,
    steps: [{ id: 'look', tool: 'read', args: { path: 'runbooks/payments-api.md' }, summary: 'Read' }],
  });
  expect(other.statusCode).toBe(201);
  const otherJob = (other.json() as { job_id: number }).job_id;
  const otherToken = await claim(s, otherJob, 'look', s.other);

  const tokens = await s.ctx.db
    .selectFrom('tokens')
    .select(['jti', 'step_id'])
    .where('job_id', '=', job)
    .execute();
  const jtiOf = (step: string) => tokens.find((t) => t.step_id === step)!.jti;
  return { job, otherJob, redeemed, claimed, gated, otherToken, jtiOf };
}

describe(`revoking an agent (${dialectName})`, () => {
  it('revokes every token of the agent minted or claimed and not redeemed, with its key, in one go', async () => {
    const s = await setup();
    const t = await agentWithLiveTokens(s);
    for (const token of [t.claimed, t.gated, t.otherToken]) {
      expect(await introspect(s, token)).toMatchObject({ active: true });
    }

    const r = await revokeAgent(s.ctx, { id: OPS.executor, actor: 'oncall-lead', reason: 'key leaked' });
    expect(r.agent.revoked_at).toEqual(s.ctx.clock());
    expect(r.tokens.map((x) => x.jti).sort()).toEqual(
      [t.jtiOf('search-kb'), t.jtiOf('fetch-status'), t.jtiOf('post-summary')].sort(),
    );
    expect(r.tokens.every((x) => x.jobId === t.job)).toBe(true);
    // The job waited on steps whose tokens are gone: it ends as revoked, its bundle sealed.
    expect(r.jobsEnded).toEqual([t.job]);

    // The claimed tokens now say why they are dead, and cannot be redeemed.
    for (const token of [t.claimed, t.gated]) {
      expect(await introspect(s, token)).toMatchObject({ active: false, code: 'ERR_TOKEN_REVOKED' });
      const redeem = await s.call('POST', '/v1/tokens/redeem', s.admin, { token });
      expect(redeem.statusCode).toBe(401);
      expect(redeem.json()).toMatchObject({ error: { code: 'ERR_TOKEN_REVOKED' } });
    }
    for (const step of ['search-kb', 'fetch-status', 'post-summary']) {
      const row = await tokenRow(s, t.jtiOf(step));
      expect(row.revoked_at).not.toBeNull();
      expect(row.compact).toBeNull();
    }
    // A redeemed token is history, not a live credential: left as it was.
    expect(await tokenRow(s, t.jtiOf('read-runbook'))).toMatchObject({
      revoked_at: null,
      redeemed_at: expect.any(Date),
    });
    // Another agent's token is untouched, and so is its key.
    expect(await introspect(s, t.otherToken)).toMatchObject({ active: true });
    expect((await s.call('GET', '/v1/jobs', s.other)).statusCode).toBe(200);
    const refused = await s.call('GET', '/v1/jobs', s.ops);
    expect(refused.statusCode).toBe(401);
    expect(refused.json()).toMatchObject({ error: { code: 'ERR_UNAUTHENTICATED' } });
  });

  it("records each revocation in the job's event chain, names the agent, and seals the bundle", async () => {
    const s = await setup();
    const t = await agentWithLiveTokens(s);
    const r = await revokeAgent(s.ctx, { id: OPS.executor, actor: 'oncall-lead', reason: 'key leaked' });
    const events = await s.ctx.db
      .selectFrom('job_events')
      .select(['event_type', 'payload'])
      .where('job_id', '=', t.job)
      .orderBy('seq')
      .execute();
    const payloads = events.map((e) => ({
      type: e.event_type,
      payload: JSON.parse(e.payload) as Record<string, unknown>,
    }));
    const revokedJtis = payloads.filter((e) => e.type === 'token_revoked').map((e) => e.payload.jti);
    expect([...revokedJtis].sort()).toEqual(r.tokens.map((x) => x.jti).sort());
    // The first token is revoked by the operator for the agent; the job's end revokes the rest with it.
    expect(payloads.find((e) => e.type === 'token_revoked')?.payload).toMatchObject({
      reason: `agent ${OPS.executor} revoked: key leaked`,
      by: 'admin:oncall-lead',
    });
    expect(payloads.at(-1)).toMatchObject({ type: 'job_ended', payload: { status: 'revoked' } });
    expect(String(payloads.at(-1)?.payload.reason)).toContain(`agent ${OPS.executor} revoked: key leaked`);
    const job = await s.ctx.db
      .selectFrom('jobs')
      .select(['status', 'bundle_id'])
      .where('id', '=', t.job)
      .executeTakeFirstOrThrow();
    expect(job.status).toBe('revoked');
    expect(job.bundle_id).toMatch(/^pb_/);
  });

  it("revoking again finds nothing left; another agent's tokens are never part of it", async () => {
    const s = await setup();
    const t = await agentWithLiveTokens(s);
    const first = await revokeAgent(s.ctx, { id: OTHER_AGENT, actor: 'oncall-lead' });
    expect(first.tokens).toEqual([{ jti: expect.any(String), jobId: t.otherJob }]);
    expect(await introspect(s, t.otherToken)).toMatchObject({ active: false, code: 'ERR_TOKEN_REVOKED' });
    const again = await revokeAgent(s.ctx, { id: OTHER_AGENT, actor: 'oncall-lead' });
    expect(again).toEqual({ agent: first.agent, tokens: [], jobsEnded: [] });
    // The ops agent's tokens were never part of it.
    expect(await introspect(s, t.claimed)).toMatchObject({ active: true });
  });

  it('an unknown agent is ERR_AGENT_NOT_FOUND and revokes nothing', async () => {
    const s = await setup();
    const t = await agentWithLiveTokens(s);
    await expect(revokeAgent(s.ctx, { id: 'agent:nobody', actor: 'x' })).rejects.toMatchObject({
      code: 'ERR_AGENT_NOT_FOUND',
    });
    expect(await introspect(s, t.claimed)).toMatchObject({ active: true });
  });

  it("ends the agent's open jobs that hold no live token, so no token is ever minted for it again", async () => {
    const s = await setup();
    const created = await s.call('POST', '/v1/jobs', s.ops, {
      channel_id: OPS.channel,
      requester_id: U.grace,
      runbook: {
        name: 'service-context',
        params: { service: 'payments-api', query: 'latency spikes', notify_channel: 'payments-oncall' },
      },
    });
    const job = (created.json() as { job_id: number }).job_id;
    // Every auto step's token used up: nothing of the agent's is live in this job.
    for (const step of ['read-runbook', 'search-kb']) {
      const token = await claim(s, job, step);
      expect((await s.call('POST', '/v1/tokens/redeem', s.admin, { token })).statusCode).toBe(200);
    }
    expect((await confirmRequester(s.ctx, { jobId: job, userId: U.grace })).accepted).toBe(true);

    const revoked = await revokeAgent(s.ctx, {
      id: OPS.executor,
      actor: 'oncall-lead',
      reason: 'key leaked',
    });
    expect(revoked.jobsEnded).toEqual([job]);
    const row = await s.ctx.db
      .selectFrom('jobs')
      .select(['status', 'bundle_id'])
      .where('id', '=', job)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe('revoked');
    expect(row.bundle_id).toMatch(/^pb_/);
    for (const userId of [U.alice, U.chioma]) {
      const d = await decideStep(s.ctx, { kind: 'approve', jobId: job, step: 'post-summary', userId });
      expect(d).toMatchObject({ accepted: false, code: 'ERR_JOB_REVOKED' });
    }
    const gated = await s.ctx.db
      .selectFrom('tokens')
      .select('jti')
      .where('job_id', '=', job)
      .where('step_id', '=', 'post-summary')
      .execute();
    expect(gated).toEqual([]);
  });
});
