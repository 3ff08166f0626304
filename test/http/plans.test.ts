import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import { decideStep } from '../../src/approvals/record-decision.js';
import { argsHash, argsJson, statusMessage } from '../../src/presenter/messages.js';
import { planMessage } from '../helpers/plan-board.js';
import { jcsHashB64u } from '../../src/crypto/hash.js';
import { createJob } from '../../src/jobs/create-job.js';
import { jobView } from '../../src/jobs/job-view.js';
import { planHash } from '../../src/jobs/plan.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, editJson, OPS, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';

const opened: { e: TestEngine; app: FastifyInstance }[] = [];
afterEach(async () => {
  for (const { e, app } of opened.splice(0)) {
    await app.close();
    await e.close();
  }
});

async function setup() {
  const e = await createTestEngine();
  const app = buildApp({
    db: e.ctx.db,
    keyRing: e.ctx.keyRing,
    policies: e.ctx.policies,
    log: silentLogger(),
    engine: e.ctx,
  });
  opened.push({ e, app });
  const ops = await createAgent(e.ctx.db, { id: OPS.executor, at: e.ctx.clock() });
  return { ...e, app, ops: { authorization: `Bearer ${ops.key}` } };
}

/** Arguments that no plan post could hold, with everything that must not render. */
const hostile = '``` @channel <@fn5tnqd3rq1k6a6rjes4egzp8n> [x](https://evil.example) ';
const LONG_ARGS = Object.fromEntries(
  ['part_a', 'part_b', 'part_c', 'part_d', 'part_e'].map((k) => [
    k,
    `${hostile}${'latency report '.repeat(250)}`,
  ]),
);

/** An agent-submitted plan whose gated step carries LONG_ARGS. */
async function apiJob(s: Awaited<ReturnType<typeof setup>>) {
  return createJob(s.ctx, {
    origin: { kind: 'api', agentId: OPS.executor, channelId: OPS.channel },
    requesterId: U.grace,
    steps: [
      { id: 'search-kb', tool: 'search', args: { query: 'latency' }, summary: 'search' },
      { id: 'post-summary', tool: 'send_message', args: LONG_ARGS, summary: 'post the report' },
    ],
  });
}

describe(`GET /v1/plans/:plan_hash_b64u (${dialectName})`, () => {
  it('serves the whole plan with every argument, its hash and its job, privately', async () => {
    const s = await setup();
    const job = await apiJob(s);
    const res = await s.app.inject({ url: `/v1/plans/${job.planHash}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toMatch(/^private\b/);
    const body = res.json() as {
      plan_hash_b64u: string;
      steps: {
        id: string;
        tool: string;
        args: Record<string, string | number | boolean>;
        args_sha256_b64u: string;
        summary: string;
      }[];
      jobs: { id: string; job_id: number; status: string; policy_hash_b64u: string }[];
    };
    expect(body.plan_hash_b64u).toBe(job.planHash);
    const gated = body.steps.find((st) => st.id === 'post-summary')!;
    expect(gated).toMatchObject({ tool: 'send_message', args: LONG_ARGS });
    expect(gated.args_sha256_b64u).toBe(jcsHashB64u(LONG_ARGS));
    // What the client got hashes to the hash it asked for: the plan is the one approved.
    expect(planHash(body.steps.map(({ id, tool, args, summary }) => ({ id, tool, args, summary })))).toBe(
      job.planHash,
    );
    expect(body.jobs).toEqual([
      expect.objectContaining({
        id: `job:${job.jobId}`,
        job_id: job.jobId,
        status: 'open',
        policy_hash_b64u: job.policyHash,
      }),
    ]);
  });

  it('the plan post links to it when the arguments are too long, with their SHA-256', async () => {
    const s = await setup();
    const job = await apiJob(s);
    const post = planMessage(
      { ...job, requesterId: U.grace, runbook: null, assertedBy: OPS.executor },
      'https://claw.example.test/',
    );
    expect(post.length).toBeLessThan(16_383);
    const url = `https://claw.example.test/v1/plans/${job.planHash}`;
    expect(post).toContain(url);
    const step = job.steps.find((st) => st.id === 'post-summary')!;
    expect(post).toContain(`\`${argsHash(step.args)}\``);
    expect(post).toContain('(truncated)');
    // The link serves the arguments the hash is over.
    const res = await s.app.inject({ url: new URL(url).pathname });
    const served = (res.json() as { steps: { id: string; args: Record<string, unknown> }[] }).steps;
    expect(argsHash(served.find((st) => st.id === 'post-summary')!.args)).toBe(argsHash(step.args));
  });

  it('answers 404 ERR_NOT_FOUND for an unknown plan and 400 ERR_VALIDATION for a malformed hash', async () => {
    const s = await setup();
    await apiJob(s);
    const unknown = await s.app.inject({ url: `/v1/plans/${jcsHashB64u(['no such plan'])}` });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ error: { code: 'ERR_NOT_FOUND' } });
    const malformed = await s.app.inject({ url: '/v1/plans/not-a-hash' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json()).toMatchObject({ error: { code: 'ERR_VALIDATION' } });
  });

  it('refuses a stored plan that no longer matches its hash (ERR_INTERNAL), rather than serve it', async () => {
    const s = await setup();
    const job = await apiJob(s);
    await s.ctx.db
      .updateTable('jobs')
      .set({
        plan: JSON.stringify([
          { id: 'post-summary', tool: 'send_message', args: { text: 'other' }, summary: 's' },
        ]),
      })
      .where('id', '=', job.jobId)
      .execute();
    const res = await s.app.inject({ url: `/v1/plans/${job.planHash}` });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toMatchObject({ error: { code: 'ERR_INTERNAL' } });
  });
});

describe(`approvals that still count (${dialectName})`, () => {
  const approvalsOf = async (s: Awaited<ReturnType<typeof setup>>, jobId: number) => {
    const res = await s.app.inject({ url: `/v1/jobs/${jobId}`, headers: s.ops });
    expect(res.statusCode).toBe(200);
    return (res.json() as { steps: { id: string; approvals: number | null }[] }).steps.find(
      (st) => st.id === 'post-summary',
    )!.approvals;
  };

  it('GET /v1/jobs/:id stops counting an approver removed from their group', async () => {
    const s = await setup();
    const job = await opsJob(s.ctx);
    const d = await decideStep(s.ctx, {
      kind: 'approve',
      jobId: job.jobId,
      step: 'post-summary',
      userId: U.alice,
    });
    expect(d.code).toBe('APPROVAL_COUNTED');
    expect(await approvalsOf(s, job.jobId)).toBe(1);

    // alice leaves ops-oncall: her recorded approval no longer counts towards the quorum.
    await editJson(s.policiesDir, 'groups.json', (g) => {
      const groups = g.groups as Record<string, { members: { user_id?: string }[] }>;
      const oncall = groups['ops-oncall']!;
      oncall.members = oncall.members.filter((m) => m.user_id !== U.alice);
    });
    await s.ctx.policies.reload();
    expect(await approvalsOf(s, job.jobId)).toBe(0);
  });

  it('says unknown (null) when membership cannot be checked, never a stale count', async () => {
    const s = await setup();
    const job = await opsJob(s.ctx);
    await decideStep(s.ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice });
    s.ctx.directory = {
      groupsOf: () => Promise.reject(new Error('Mattermost is unreachable')),
      membershipsOf: () => Promise.reject(new Error('Mattermost is unreachable')),
    };
    expect(await approvalsOf(s, job.jobId)).toBeNull();

    const row = await s.ctx.db
      .selectFrom('jobs')
      .selectAll()
      .where('id', '=', job.jobId)
      .executeTakeFirstOrThrow();
    const status = statusMessage(await jobView(s.ctx.db, row, s.ctx));
    expect(status).toContain('| `post-summary` | gated | awaiting_approval | unknown/2 |');
    expect(status).toContain('Approvals show as unknown while group membership cannot be checked.');
  });

  it('status shows each gated step’s tool and full arguments as JSON that parses back exactly', async () => {
    const s = await setup();
    const job = await opsJob(s.ctx);
    const row = await s.ctx.db
      .selectFrom('jobs')
      .selectAll()
      .where('id', '=', job.jobId)
      .executeTakeFirstOrThrow();
    const status = statusMessage(await jobView(s.ctx.db, row, s.ctx));
    const step = job.steps.find((st) => st.id === 'post-summary')!;
    expect(status).toContain('**`post-summary`** runs `send_message` with:');
    expect(status).toContain(`\`\`\`json\n${argsJson(step.args)}\n\`\`\``);
    expect(JSON.parse(argsJson(step.args))).toEqual(step.args);
  });
});
