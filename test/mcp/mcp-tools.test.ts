import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { receiptFor } from '../helpers/receipts.js';
import { dialectName } from '../helpers/db.js';
import {
  answerOf,
  connect,
  errorText,
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

const STEP = 'post-summary';
const AUTO = ['search-kb', 'read-runbook', 'fetch-status'];
const PARAMS = { service: 'payments-api', query: 'latency spikes', notify_channel: 'payments-oncall' };
const TOKEN = /eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/;

/** Every text a session's tools answered, to check that no key or token leaked into any but claim_token's. */
function texts(r: { content: { type: string; text?: string }[] }): string {
  return r.content.map((c) => c.text ?? '').join('\n');
}

describe.each<Transport>(['stdio', 'http'])(`MCP tools over %s (${dialectName})`, (via) => {
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

  it('lists its tools with their input schemas', async () => {
    const { tools } = await mcp.client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([
      'claim_token',
      'close_job',
      'job_status',
      'permission_prompt',
      'report_result',
      'request_approval',
      'wait_for_decision',
    ]);
    const prompt = tools.find((t) => t.name === 'permission_prompt')!;
    expect(prompt.inputSchema.required).toEqual(['tool_name', 'input']);
    expect(Object.keys(prompt.inputSchema.properties ?? {}).sort()).toEqual([
      'input',
      'tool_name',
      'tool_use_id',
    ]);
    const wait = tools.find((t) => t.name === 'wait_for_decision')!;
    expect(wait.inputSchema.required).toEqual(['job', 'step']);
  });

  it('runs a whole job: request, auto steps, two approvals in the thread, claim, report; no token outside claim_token', async () => {
    const requested = await mcp.call('request_approval', { runbook: 'service-context', params: PARAMS });
    expect(requested.isError).toBeFalsy();
    const job = answerOf(requested);
    const jobId = job.job_id as number;
    const plan = await world.planPost(jobId);
    expect(job).toMatchObject({
      job: `job:${jobId}`,
      status: 'open',
      policy: 'mattermost-agent-prod',
      thread: `${world.w.sandbox.url}/_redirect/pl/${plan.id}`,
      gated: [{ step: STEP, tool: 'send_message', required_approvals: 2, status: 'awaiting_approval' }],
      auto: AUTO.map((step) => ({ step, status: 'approved', claimable: true })),
    });
    expect(job.next).toContain(`"CONFIRM job:${jobId}"`);
    expect(job.next).toContain(`"APPROVE job:${jobId} step:${STEP}"`);

    const seen: string[] = [texts(requested)];
    for (const step of AUTO) {
      const claim = await mcp.call('claim_token', { job: jobId, step });
      const token = answerOf(claim);
      expect(token.token).toMatch(TOKEN);
      const receipt = receiptFor({
        runId: token.run_id as string,
        eventHash: token.event_hash_b64u as string,
      });
      const reported = await mcp.call('report_result', {
        job: `job:${jobId}`,
        step,
        status: 'succeeded',
        receipts: [receipt],
      });
      expect(answerOf(reported)).toMatchObject({ step, status: 'succeeded', job_status: 'open' });
      seen.push(texts(reported));
    }
    const early = await mcp.call('wait_for_decision', { job: jobId, step: STEP, timeout_seconds: 0 });
    expect(answerOf(early)).toMatchObject({ decision: 'pending', step_status: 'awaiting_approval' });

    const waiting = mcp.call('wait_for_decision', { job: jobId, step: STEP, timeout_seconds: 60 });
    await world.say('grace', jobId, `CONFIRM job:${jobId}`);
    await world.say('alice', jobId, `APPROVE job:${jobId} step:${STEP}`);
    await world.say('dmitri', jobId, `APPROVE job:${jobId} step:${STEP}`);
    const decided = await waiting;
    expect(answerOf(decided)).toMatchObject({
      job: `job:${jobId}`,
      step: STEP,
      decision: 'approved',
      step_status: 'approved',
      approvals: 2,
      required_approvals: 2,
      token_claimable: true,
      reason: null,
      decision_reason: null,
      decided_by_text: '@alice (ops-oncall) and @dmitri (sec-reviewers) via chat',
    });
    expect((answerOf(decided).decided_by as { user_id: string }[]).map((d) => d.user_id)).toEqual([
      world.w.ids.alice,
      world.w.ids.dmitri,
    ]);
    const token = answerOf(await mcp.call('claim_token', { job: jobId, step: STEP }));
    const again = await mcp.call('claim_token', { job: jobId, step: STEP });
    expect(errorText(again)).toMatch(/^ERR_TOKEN_ALREADY_CLAIMED: /);
    const done = await mcp.call('report_result', {
      job: jobId,
      step: STEP,
      status: 'succeeded',
      summary: 'posted',
      receipts: [receiptFor({ runId: token.run_id as string, eventHash: token.event_hash_b64u as string })],
    });
    expect(answerOf(done)).toMatchObject({ status: 'succeeded', job_status: 'completed' });
    expect(answerOf(done).bundle_id).toMatch(/^pb_/);
    const status = await mcp.call('job_status', { job: jobId });
    expect(answerOf(status)).toMatchObject({ status: 'completed', thread: job.thread });
    seen.push(texts(decided), texts(status), texts(done), texts(early), texts(again));
    for (const text of seen) {
      expect(text).not.toMatch(TOKEN);
      expect(text).not.toContain(world.key);
    }
  });

  it('answers denied, naming who denied, once an approver denies in the thread', async () => {
    const job = answerOf(await mcp.call('request_approval', { runbook: 'service-context', params: PARAMS }));
    const jobId = job.job_id as number;
    const waiting = mcp.call('wait_for_decision', { job: jobId, step: STEP, timeout_seconds: 60 });
    await world.say('alice', jobId, `DENY job:${jobId} step:${STEP} not during the freeze`);
    const decided = answerOf(await waiting);
    expect(decided).toMatchObject({ decision: 'denied', job_status: 'denied', step_status: 'denied' });
    expect(decided.reason).toContain(world.w.ids.alice);
    expect(decided).toMatchObject({
      decision_reason: 'not during the freeze',
      decided_by: [{ user_id: world.w.ids.alice, via: 'chat' }],
    });
    const claim = await mcp.call('claim_token', { job: jobId, step: STEP });
    expect(errorText(claim)).toMatch(/^ERR_(JOB_CLOSED|STEP_STATE): /);
  });

  it('answers pending when nobody decides within the timeout, and the job stays open', async () => {
    const job = answerOf(await mcp.call('request_approval', { runbook: 'service-context', params: PARAMS }));
    const decided = answerOf(
      await mcp.call('wait_for_decision', { job: job.job, step: STEP, timeout_seconds: 1 }),
    );
    expect(decided).toMatchObject({
      decision: 'pending',
      job_status: 'open',
      step_status: 'awaiting_approval',
    });
    const closed = answerOf(await mcp.call('close_job', { job: job.job, reason: 'not needed' }));
    expect(closed).toMatchObject({ job_status: 'cancelled' });
  });

  it('answers the API code as a tool error, for wrong input and for what the API refuses', async () => {
    const missing = await mcp.call('job_status', { job: 999_999 });
    expect(errorText(missing)).toMatch(/^ERR_JOB_NOT_FOUND: /);
    expect(missing.structuredContent).toEqual({
      error: { code: 'ERR_JOB_NOT_FOUND', message: expect.any(String) },
    });
    const unknownStep = await mcp.call('wait_for_decision', { job: 1, step: 'nope', timeout_seconds: 0 });
    expect(errorText(unknownStep)).toMatch(/^ERR_(STEP|JOB)_NOT_FOUND: /);
    const both = await mcp.call('request_approval', {
      runbook: 'service-context',
      steps: [{ id: 'a', tool: 'read', summary: 'x' }],
    });
    expect(errorText(both)).toMatch(/^ERR_VALIDATION: give either runbook/);
    const badRunbook = await mcp.call('request_approval', { runbook: 'nope' });
    expect(errorText(badRunbook)).toMatch(/^ERR_PLAN_INVALID: unknown runbook "nope"/);
    const denied = await mcp.call('request_approval', {
      steps: [{ id: 'x', tool: 'exec', args: { cmd: 'id' }, summary: 'run id' }],
    });
    expect(errorText(denied)).toMatch(/^ERR_PLAN_DENIED: step x: tool exec is on the policy's deny list/);
    const schema = await mcp.call('wait_for_decision', { job: 'job:x', step: STEP });
    expect(schema.isError).toBe(true);
  });

  it('refuses a bad key with the API code, and never shows the key', async () => {
    const badKey = `${world.key.slice(0, -4)}AAAA`;
    if (via === 'stdio') {
      const bad = await connect(world, via, { key: badKey });
      try {
        const r = await bad.call('job_status', { job: 1 });
        expect(errorText(r)).toBe('ERR_UNAUTHENTICATED: unknown or revoked agent key');
        // The answer (stdout) and the log line (stderr) travel on two pipes: either may arrive first.
        await vi.waitFor(() => expect(bad.stderr()).toContain('ERR_UNAUTHENTICATED'), { timeout: 10_000 });
        expect(bad.stderr()).not.toContain(badKey);
      } finally {
        await bad.close();
      }
      expect(mcp.stderr()).not.toContain(world.key);
      expect(mcp.transportErrors).toEqual([]);
    } else {
      await expect(connect(world, via, { key: badKey })).rejects.toMatchObject({ code: 401 });
      const res = await fetch(`${world.server.url}/mcp`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${badKey}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({
        error: { code: 'ERR_UNAUTHENTICATED', message: 'unknown or revoked agent key' },
      });
    }
    expect(world.serverLog()).not.toContain(world.key);
  });
});
