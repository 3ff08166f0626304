import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stepInput } from '../../src/mcp/tool-call-step.js';
import { eventually } from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import {
  answerOf,
  connect,
  type McpSession,
  type McpWorld,
  startMcpWorld,
  type Transport,
} from './mcp-world.js';

let world: McpWorld;
beforeAll(async () => {
  world = await startMcpWorld();
}, 120_000);
afterAll(async () => {
  await world?.close();
});

async function lastJobId(): Promise<number> {
  const row = await world.server.runtime.database.db
    .selectFrom('jobs')
    .select((eb) => eb.fn.max('id').as('id'))
    .executeTakeFirst();
  return Number(row?.id ?? 0);
}

async function jobRow(jobId: number) {
  const db = world.server.runtime.database.db;
  const job = await db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow();
  const steps = await db.selectFrom('job_steps').selectAll().where('job_id', '=', jobId).execute();
  const tokens = await db.selectFrom('tokens').selectAll().where('job_id', '=', jobId).execute();
  return { job, steps, tokens };
}

// A gated tool of mattermost-agent-prod (two approvers from distinct groups), with an input
// that needs every form of carrying: plain fields, text with a line break, a float, an object.
const SEND = 'send_message';
const INPUT = {
  channel: 'payments-oncall',
  text: 'Deploy finished.\nLatency is back to normal.',
  urgent: false,
  meta: { ratio: 0.25, tags: ['deploy', 'latency'] },
};

describe.each<Transport>(['stdio', 'http'])(`permission_prompt over %s (${dialectName})`, (via) => {
  let mcp: McpSession;
  beforeAll(async () => {
    mcp = await connect(world, via, {
      key: world.key,
      channel: world.w.channel,
      requester: world.w.ids.grace,
    });
  });
  afterAll(async () => {
    await mcp?.close();
  });

  const prompt = (toolName: string, input: Record<string, unknown>) =>
    mcp.call('permission_prompt', { tool_name: toolName, input, tool_use_id: 'toolu_01' });

  it('allows once two people approve in the thread, with exactly the approved input, and spends the token', async () => {
    const before = await lastJobId();
    const answer = prompt(SEND, INPUT);
    const jobId = await world.nextJob(before);
    const plan = await world.planPost(jobId);
    expect(plan.message).toContain(`APPROVE job:${jobId} step:${SEND}`);
    await world.say('grace', jobId, `CONFIRM job:${jobId}`);
    await world.say('alice', jobId, `APPROVE job:${jobId} step:${SEND}`);
    await world.say('dmitri', jobId, `APPROVE job:${jobId} step:${SEND}`);
    expect(answerOf(await answer)).toEqual({ behavior: 'allow', updatedInput: INPUT });

    const { job, steps, tokens } = await jobRow(jobId);
    // The step is the call: the tool by name, the input as its args, pinned by the plan hash.
    const planned = JSON.parse(job.plan) as { id: string; tool: string; args: Record<string, unknown> }[];
    expect(planned).toHaveLength(1);
    expect(planned[0]).toMatchObject({ id: SEND, tool: SEND });
    expect(stepInput(planned[0]!.args)).toEqual(INPUT);
    expect(steps.map((s) => [s.step_id, s.gate, s.status])).toEqual([[SEND, 'gated', 'claimed']]);
    expect(tokens).toHaveLength(1);
    expect(tokens[0]!.redeemed_at).not.toBeNull();
  });

  it('denies when an approver denies, saying so', async () => {
    const before = await lastJobId();
    const answer = prompt(SEND, { channel: 'payments-oncall', text: 'rollback now' });
    const jobId = await world.nextJob(before);
    await world.say('chioma', jobId, `DENY job:${jobId} step:${SEND} not without a ticket`);
    const denied = answerOf(await answer);
    expect(denied).toEqual({ behavior: 'deny', message: expect.stringContaining(`job:${jobId} is denied`) });
    expect(denied.message).toContain(world.w.ids.chioma);
    expect(denied.message).toMatch(/via chat \(not without a ticket\)$/);
    const { job, tokens } = await jobRow(jobId);
    expect(job.status).toBe('denied');
    expect(tokens).toEqual([]);
  });

  it('allows a tool the policy runs without a gate at once, still as a job whose token is spent', async () => {
    const before = await lastJobId();
    const input = { path: 'runbooks/payments-api.md' };
    expect(answerOf(await prompt('read', input))).toEqual({ behavior: 'allow', updatedInput: input });
    const jobId = await world.nextJob(before);
    const { steps, tokens } = await jobRow(jobId);
    expect(steps.map((s) => [s.step_id, s.gate, s.status])).toEqual([['read', 'auto', 'claimed']]);
    expect(tokens[0]!.redeemed_at).not.toBeNull();
  });

  it('denies a tool the policy denies, and a call it cannot carry, creating no job', async () => {
    const before = await lastJobId();
    const exec = answerOf(await prompt('exec', { command: 'rm -rf /' }));
    expect(exec).toEqual({
      behavior: 'deny',
      message: expect.stringMatching(
        /^claw-approvals refused the call \(ERR_PLAN_DENIED\): step exec: tool exec/,
      ),
    });
    const unknown = answerOf(await prompt('Bash', { command: 'ls' }));
    expect(unknown.message).toMatch(/ERR_PLAN_DENIED.*not on the policy's allow list/);
    const badName = answerOf(await prompt('rm -rf', {}));
    expect(badName.message).toMatch(/cannot put this call before approvers: the tool name/);
    const tooBig = answerOf(await prompt('read', { path: 'x\n'.repeat(40_000) }));
    expect(tooBig.message).toMatch(/too large/);
    expect(await lastJobId()).toBe(before);
  });

  it('denies when nobody decides in time, and closes the job', async () => {
    const quick = await connect(world, via, {
      key: world.key,
      channel: world.w.channel,
      requester: world.w.ids.grace,
      permissionTimeout: 2,
    });
    try {
      const before = await lastJobId();
      const r = answerOf(await quick.call('permission_prompt', { tool_name: SEND, input: { text: 'hi' } }));
      const jobId = await world.nextJob(before);
      expect(r).toEqual({
        behavior: 'deny',
        message: `No decision on job:${jobId} within 2 s; the request is closed.`,
      });
      const { job } = await jobRow(jobId);
      expect(job.status).toBe('cancelled');
      expect(job.end_reason).toContain('no decision within 2 s');
    } finally {
      await quick.close();
    }
  });

  it('closes the job when the client goes away while people have not decided', async () => {
    const leaving = await connect(world, via, {
      key: world.key,
      channel: world.w.channel,
      requester: world.w.ids.grace,
    });
    const before = await lastJobId();
    const pending = leaving
      .call('permission_prompt', { tool_name: SEND, input: { text: 'bye' } })
      .catch((e) => e);
    const jobId = await world.nextJob(before);
    await world.planPost(jobId);
    await leaving.close();
    await pending;
    const ended = await eventually(async () => {
      const { job } = await jobRow(jobId);
      return job.status !== 'open' ? job : undefined;
    }, 'the abandoned job closed');
    expect(ended.status).toBe('cancelled');
    expect(ended.end_reason).toContain('withdrawn');
  });
});
