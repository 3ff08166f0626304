import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import { decideStep } from '../../src/approvals/record-decision.js';
import { createJob } from '../../src/jobs/create-job.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, editJson, OPS, type TestEngine, U } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';
import { gatewayReceipt, receiptFor } from '../helpers/receipts.js';
import { newKey } from '../helpers/state.js';

const CHANGE = {
  team: 'ro7kuk9yq4x16n1dx5zf41zw5o',
  channel: '764sdesxud1ew5yaqwmgdw4pe9',
  executor: 'agent:change-prod-1',
};

const opened: { e: TestEngine; app: FastifyInstance }[] = [];
afterEach(async () => {
  for (const { e, app } of opened.splice(0)) {
    await app.close();
    await e.close();
  }
});

async function setup(opts: Parameters<typeof createTestEngine>[0] = {}) {
  const e = await createTestEngine(opts);
  const { ctx } = e;
  const app = buildApp({
    db: ctx.db,
    keyRing: ctx.keyRing,
    policies: ctx.policies,
    log: silentLogger(),
    engine: ctx,
    adminToken: 'admin-token-for-tests-0123456789',
  });
  opened.push({ e, app });
  const headers: Record<string, Record<string, string>> = {};
  for (const id of [OPS.executor, CHANGE.executor]) {
    const { key } = await createAgent(ctx.db, { id, at: ctx.clock() });
    headers[id] = { authorization: `Bearer ${key}` };
  }
  const as = (agent: string) => ({
    create: async (payload: Record<string, unknown>) => {
      const res = await app.inject({ method: 'POST', url: '/v1/jobs', headers: headers[agent], payload });
      expect(res.statusCode).toBe(201);
      return (res.json() as { job_id: number }).job_id;
    },
    claim: async (jobId: number, step: string) => {
      const res = await app.inject({
        method: 'POST',
        url: `/v1/jobs/${jobId}/steps/${step}/token`,
        headers: headers[agent],
      });
      expect(res.statusCode).toBe(200);
      const body = res.json() as { run_id: string; event_hash_b64u: string };
      return { runId: body.run_id, eventHash: body.event_hash_b64u };
    },
    result: (jobId: number, step: string, payload: Record<string, unknown>) =>
      app.inject({
        method: 'POST',
        url: `/v1/jobs/${jobId}/steps/${step}/result`,
        headers: headers[agent],
        payload,
      }),
  });
  return { ...e, app, ops: as(OPS.executor), change: as(CHANGE.executor) };
}

type Setup = Awaited<ReturnType<typeof setup>>;

const errorOf = (res: { statusCode: number; json: () => unknown }) => [
  res.statusCode,
  (res.json() as { error: { code: string } }).error.code,
];

const opsJobBody = {
  channel_id: OPS.channel,
  requester_id: U.grace,
  runbook: {
    name: 'service-context',
    params: { service: 'payments-api', query: 'latency spikes', notify_channel: 'payments-oncall' },
  },
};

const prodChangeBody = {
  channel_id: CHANGE.channel,
  requester_id: U.farid,
  runbook: {
    name: 'prod-change',
    params: { change_id: 'CHG0031337', review_bundle_id: 'pb_AAAAAAAAAAAAAAAAAAAAAA' },
  },
};

async function stepState(s: Setup, jobId: number, step: string) {
  const row = await s.ctx.db
    .selectFrom('job_steps')
    .select('status')
    .where('job_id', '=', jobId)
    .where('step_id', '=', step)
    .executeTakeFirstOrThrow();
  const events = await s.ctx.db
    .selectFrom('job_events')
    .select('event_type')
    .where('job_id', '=', jobId)
    .orderBy('seq')
    .execute();
  const receipts = await s.ctx.db
    .selectFrom('gateway_receipts')
    .select('position')
    .where('job_id', '=', jobId)
    .execute();
  return { status: row.status, events: events.map((e) => e.event_type), receipts: receipts.length };
}

async function mintedSteps(s: Setup, jobId: number): Promise<string[]> {
  const rows = await s.ctx.db.selectFrom('tokens').select('step_id').where('job_id', '=', jobId).execute();
  return rows.map((r) => r.step_id).sort();
}

describe(`require_gateway_receipts is enforced on results (${dialectName})`, () => {
  it('a success without a verified receipt bound to the step claim is refused with 422 ERR_RECEIPTS_REQUIRED and changes nothing', async () => {
    const s = await setup();
    const jobId = await s.ops.create(opsJobBody);
    const claim = await s.ops.claim(jobId, 'search-kb');
    const before = await stepState(s, jobId, 'search-kb');
    expect(before.status).toBe('claimed');

    const otherClaim = await s.ops.claim(jobId, 'read-runbook');
    const stranger = newKey();
    const refused: Record<string, unknown[]> = {
      'no receipt at all': [],
      'an unsigned receipt': [{ envelope_version: '1', envelope_type: 'gateway_receipt', payload: {} }],
      'a receipt from a gateway nobody trusts': [
        gatewayReceipt(stranger, { run_id: claim.runId, event_hash_b64u: claim.eventHash }, 'rcpt_x'),
      ],
      "a receipt bound to another step's claim": [receiptFor(otherClaim)],
      'a receipt bound to another run': [receiptFor({ runId: 'job:999999', eventHash: claim.eventHash })],
    };
    for (const [what, receipts] of Object.entries(refused)) {
      const res = await s.ops.result(jobId, 'search-kb', { status: 'succeeded', summary: 'done', receipts });
      expect([what, ...errorOf(res)]).toEqual([what, 422, 'ERR_RECEIPTS_REQUIRED']);
      expect(await stepState(s, jobId, 'search-kb')).toEqual({
        ...before,
        events: [...before.events, 'token_claimed'],
      });
    }

    const ok = await s.ops.result(jobId, 'search-kb', {
      status: 'succeeded',
      summary: 'done',
      receipts: [receiptFor(claim)],
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ status: 'succeeded', receipts: [{ verified: true }] });
    expect((await stepState(s, jobId, 'search-kb')).status).toBe('succeeded');
  });

  it('a failure needs no receipt', async () => {
    const s = await setup();
    const jobId = await s.ops.create(opsJobBody);
    await s.ops.claim(jobId, 'search-kb');
    const res = await s.ops.result(jobId, 'search-kb', { status: 'failed', summary: 'index down' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'failed', job_status: 'failed' });
  });

  it('the gated agent cannot unlock its dangerous step by reporting its own simulation as succeeded', async () => {
    const s = await setup();
    // Requested in chat (an API job's approvals would first wait for its requester to confirm).
    const { jobId } = await createJob(s.ctx, {
      origin: {
        kind: 'mattermost',
        teamId: CHANGE.team,
        channelId: CHANGE.channel,
        rootPostId: 'rootpostprodchange00000001',
      },
      requesterId: U.farid,
      runbook: prodChangeBody.runbook,
    });
    expect(await mintedSteps(s, jobId)).toEqual(['simulate']);
    for (const userId of [U.priya, U.rosa]) {
      const d = await decideStep(s.ctx, { kind: 'approve', jobId, step: 'approve-change', userId });
      expect(d.missing?.simulationStep).toBe('simulate');
    }
    const claim = await s.change.claim(jobId, 'simulate');

    const selfReported = await s.change.result(jobId, 'simulate', {
      status: 'succeeded',
      summary: 'all good',
    });
    expect(errorOf(selfReported)).toEqual([422, 'ERR_RECEIPTS_REQUIRED']);
    expect(await mintedSteps(s, jobId)).toEqual(['simulate']);
    expect((await stepState(s, jobId, 'approve-change')).status).toBe('awaiting_approval');

    const evidenced = await s.change.result(jobId, 'simulate', {
      status: 'succeeded',
      summary: 'all good',
      receipts: [receiptFor(claim)],
    });
    expect(evidenced.statusCode).toBe(200);
    expect(await mintedSteps(s, jobId)).toEqual(['approve-change', 'simulate']);
  });

  it('a policy that does not require receipts takes the agent at its word', async () => {
    const s = await setup({
      edit: (dir) =>
        editJson(dir, 'mattermost-agent-prod.json', (p) => {
          (p.attestation as Record<string, unknown>).require_gateway_receipts = false;
        }),
    });
    const jobId = await s.ops.create(opsJobBody);
    await s.ops.claim(jobId, 'search-kb');
    const res = await s.ops.result(jobId, 'search-kb', { status: 'succeeded', summary: 'done' });
    expect(res.statusCode).toBe(200);
  });
});
