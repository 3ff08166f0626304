import { ClawClient } from '@claw-approvals/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expireDueJobs } from '../../src/jobs/revoke-job.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import {
  ApprovalGate,
  type GateAnswer,
  type GateDeps,
  type ToolCallContext,
  type ToolCallEvent,
} from '../../integrations/openclaw/src/approval-gate.js';
import { callBindings } from '../../integrations/openclaw/src/bindings.js';
import type { GateConfig } from '../../integrations/openclaw/src/config.js';
import { jcsSha256B64u } from '../../integrations/openclaw/src/jcs.js';
import { pinnedPolicyLoader } from '../../integrations/openclaw/src/policy.js';
import { eventually } from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { receiptFor } from '../helpers/receipts.js';
import {
  type ClawServer,
  closedPort,
  eventOf,
  jobCount,
  jobRow,
  SEND,
  startClawServer,
  stepRow,
  tokenRow,
} from './claw-world.js';

let s: ClawServer;
beforeAll(async () => {
  s = await startClawServer();
});
afterAll(async () => {
  await s.close();
});

/** Timers the test fires by hand: no test waits for a wall-clock timeout of the gate. */
function manualTimers() {
  const timers: { fn: () => void; cleared: boolean }[] = [];
  return {
    timers,
    setTimer: (fn: () => void) => {
      const t = { fn, cleared: false };
      timers.push(t);
      return t;
    },
    clearTimer: (t: unknown) => {
      (t as { cleared: boolean }).cleared = true;
    },
  };
}

function gateWith(
  over: Partial<GateConfig> = {},
  clock = manualTimers(),
  deps: Pick<Partial<GateDeps>, 'policy' | 'now' | 'deadlineMs' | 'client'> = {},
) {
  const config: GateConfig = {
    serverUrl: s.url,
    agentKey: s.agentKey,
    channelId: s.w.channel,
    policyHash: s.policyHash,
    requesterId: s.w.ids.grace,
    approvalTimeoutMs: 30_000,
    resultTimeoutMs: 60_000,
    ...over,
  };
  const logs: string[] = [];
  const gate = new ApprovalGate({
    config,
    client: new ClawClient({ baseUrl: config.serverUrl, agentKey: config.agentKey, timeoutMs: 5_000 }),
    policy: pinnedPolicyLoader({
      serverUrl: config.serverUrl,
      policyHash: config.policyHash,
      timeoutMs: 5_000,
    }),
    log: { info: (m) => logs.push(m), warn: (m) => logs.push(m) },
    setTimer: clock.setTimer,
    clearTimer: clock.clearTimer,
    ...deps,
  });
  return { gate, logs, clock };
}

let calls = 0;
function call(toolName: string, params: Record<string, unknown>): ToolCallEvent {
  calls += 1;
  return { toolName, params, toolCallId: `call-${calls}` };
}

const blockReason = (a: GateAnswer) => (a && 'block' in a ? a.blockReason : undefined);

/** Runs a gated call through approval; resolves with what the gate answered and the job. */
async function approvedCall(gate: ApprovalGate, event: ToolCallEvent, ctx: ToolCallContext = {}) {
  const answer = gate.beforeToolCall(event, ctx);
  const plan = await s.nextPlan();
  await s.approve(plan);
  return { answer: await answer, jobId: plan.jobId };
}

describe(`the OpenClaw plugin's gate against the real server and sandbox (${dialectName})`, () => {
  it('lets a tool the pinned policy does not gate through untouched, without a job', async () => {
    const { gate } = gateWith();
    const before = await jobCount(s.w);
    expect(await gate.beforeToolCall(call('search', { query: 'latency' }), {})).toBeUndefined();
    expect(
      await gate.beforeToolCall(call('http_get', { url: 'https://status.example' }), {}),
    ).toBeUndefined();
    expect(await jobCount(s.w)).toBe(before);
  });

  it('blocks a tool the policy denies or does not allow, without a job', async () => {
    const { gate } = gateWith();
    const before = await jobCount(s.w);
    expect(blockReason(await gate.beforeToolCall(call('exec', { command: 'id' }), {}))).toBe(
      'claw-approvals: exec is denied by policy mattermost-agent-prod',
    );
    expect(blockReason(await gate.beforeToolCall(call('write_file', { path: '/etc/x' }), {}))).toContain(
      'denied by policy',
    );
    expect(blockReason(await gate.beforeToolCall(call('apply_patch', { patch: 'x' }), {}))).toBe(
      'claw-approvals: apply_patch is not on the allowlist of policy mattermost-agent-prod',
    );
    expect(await jobCount(s.w)).toBe(before);
  });

  it('runs an approved call with exactly the approved input, and reports success with a gateway receipt', async () => {
    const { gate } = gateWith();
    const params = { channel: 'payments-oncall', text: 'Deploy of payments-api finished' };
    const event = call(SEND, params);
    const { answer, jobId } = await approvedCall(gate, event);
    expect(answer).toEqual({ params });
    const token = await tokenRow(s.w, jobId);
    expect(token?.claimed_at).not.toBeNull();
    expect(token?.redeemed_at).not.toBeNull();
    expect((await stepRow(s.w, jobId)).status).toBe('claimed');
    // What a gateway binds its receipt to, found by the call's id.
    const binding = callBindings().get(event.toolCallId!)!;
    const claim = await eventOf(s.w, jobId, 'token_claimed');
    expect(binding).toMatchObject({ job_id: jobId, step: SEND, run_id: `job:${jobId}` });
    expect(claim).toBeDefined();

    const receipt = receiptFor({ runId: binding.run_id, eventHash: binding.event_hash_b64u });
    await gate.afterToolCall({
      toolName: SEND,
      toolCallId: event.toolCallId,
      result: { content: [], details: { claw_gateway_receipts: [receipt] } },
      durationMs: 12,
    });
    const job = await jobRow(s.w, jobId);
    expect(job.status).toBe('completed');
    expect((await stepRow(s.w, jobId)).result_summary).toBe('OpenClaw: send_message ran in 12 ms');
    expect(callBindings().has(event.toolCallId!)).toBe(false);
    const bundle = await s.w.d.db
      .selectFrom('bundles')
      .select('envelope')
      .where('bundle_id', '=', job.bundle_id!)
      .executeTakeFirstOrThrow();
    const verdict = verifyBundle(JSON.parse(bundle.envelope), {
      trustsSigner: s.b.engine.keyRing.trusts,
      gatewaySigners: s.b.engine.gatewaySigners,
    });
    expect(verdict).toMatchObject({ ok: true, receipts: 1 });
  });

  it('shows approvers the whole input (nested and multi-line values as JSON text) and binds it by hash', async () => {
    const { gate } = gateWith();
    const params = {
      channel: 'payments-oncall',
      text: 'line one\nline two',
      mentions: ['alice', 'chioma'],
      retry: 2,
    };
    const { answer, jobId } = await approvedCall(gate, call(SEND, params));
    expect(answer).toEqual({ params });
    const plan = await s.w.d.db
      .selectFrom('jobs')
      .select('plan_hash_b64u')
      .where('id', '=', jobId)
      .executeTakeFirstOrThrow();
    const res = await fetch(`${s.url}/v1/plans/${plan.plan_hash_b64u}`);
    const served = (await res.json()) as { steps: { args: Record<string, unknown>; summary: string }[] };
    expect(served.steps[0]!.args).toEqual({
      channel: 'payments-oncall',
      text: '"line one\\nline two"',
      mentions: '["alice","chioma"]',
      retry: 2,
    });
    expect(served.steps[0]!.summary).toContain(`input JCS SHA-256 ${jcsSha256B64u(params)}`);
  });

  it('closes the job when a receipt-requiring policy gets a success without a receipt', async () => {
    const { gate } = gateWith();
    const event = call(SEND, { channel: 'payments-oncall', text: 'no receipt' });
    const { jobId } = await approvedCall(gate, event);
    await gate.afterToolCall({ toolName: SEND, toolCallId: event.toolCallId, result: { content: [] } });
    const job = await jobRow(s.w, jobId);
    expect(job.status).toBe('cancelled');
    expect(job.end_reason).toContain('requires a verified gateway receipt');
    expect(job.end_reason).toContain('send_message ran');
    expect((await stepRow(s.w, jobId)).status).toBe('cancelled');
  });

  it('reports a failed call as failed', async () => {
    const { gate } = gateWith();
    const event = call(SEND, { channel: 'payments-oncall', text: 'will fail' });
    const { jobId } = await approvedCall(gate, event);
    await gate.afterToolCall({ toolName: SEND, toolCallId: event.toolCallId, error: 'channel not found' });
    expect(await jobRow(s.w, jobId)).toMatchObject({ status: 'failed' });
    expect((await stepRow(s.w, jobId)).result_summary).toBe(
      'OpenClaw: send_message failed: channel not found',
    );
  });

  it('closes the job when the host never reports the outcome of a call it let run', async () => {
    const clock = manualTimers();
    const { gate } = gateWith({}, clock);
    const { jobId } = await approvedCall(
      gate,
      call(SEND, { channel: 'payments-oncall', text: 'unreported' }),
    );
    expect(gate.running).toBe(1);
    expect(clock.timers).toHaveLength(1);
    clock.timers[0]!.fn();
    await eventually(async () => (await jobRow(s.w, jobId)).status === 'cancelled', 'the job closed');
    expect((await jobRow(s.w, jobId)).end_reason).toContain('OpenClaw reported no outcome within 60 s');
    expect(gate.running).toBe(0);
  });

  it('ignores outcomes of calls it did not let run (an ungated call, a stranger id)', async () => {
    const { gate, logs } = gateWith();
    const before = await jobCount(s.w);
    await gate.afterToolCall({ toolName: 'search', toolCallId: 'never-seen', result: {} });
    await gate.afterToolCall({ toolName: SEND, result: {} });
    expect(await jobCount(s.w)).toBe(before);
    expect(logs).toEqual([]);
  });

  it('blocks a denied call with the reason, and never runs it', async () => {
    const { gate } = gateWith();
    const answer = gate.beforeToolCall(call(SEND, { channel: 'payments-oncall', text: 'deny me' }), {});
    const plan = await s.nextPlan();
    await s.bound(plan);
    s.w.post('alice', `DENY job:${plan.jobId} step:${SEND} wrong channel`, plan.post.id);
    const reason = blockReason(await answer);
    // Who denied, in which group and how, then their own words.
    expect(reason).toBe(
      `claw-approvals: job:${plan.jobId} send_message denied by ${s.w.ids.alice} (ops-oncall) via chat: wrong channel`,
    );
    expect(await tokenRow(s.w, plan.jobId)).toBeUndefined();
  });

  it('blocks a call whose job the security group revokes while it waits', async () => {
    const { gate } = gateWith();
    const answer = gate.beforeToolCall(call(SEND, { channel: 'payments-oncall', text: 'revoke me' }), {});
    const plan = await s.nextPlan();
    await s.bound(plan);
    s.w.post('erin', `REVOKE job:${plan.jobId} suspicious request`, plan.post.id);
    expect(blockReason(await answer)).toMatch(
      new RegExp(
        `^claw-approvals: job:${plan.jobId} send_message revoked by ${s.w.ids.erin} \\(security\\) via chat: .*suspicious request`,
      ),
    );
    expect(await jobRow(s.w, plan.jobId)).toMatchObject({ status: 'revoked' });
  });

  it('blocks a call whose approval window elapses', async () => {
    const { gate } = gateWith();
    const answer = gate.beforeToolCall(call(SEND, { channel: 'payments-oncall', text: 'too late' }), {});
    const plan = await s.nextPlan();
    await s.w.d.db
      .updateTable('jobs')
      .set({ expires_at: new Date(Date.now() - 1_000) })
      .where('id', '=', plan.jobId)
      .execute();
    expect((await expireDueJobs(s.b.engine)).map((x) => x.jobId)).toEqual([plan.jobId]);
    expect(blockReason(await answer)).toBe(
      `claw-approvals: job:${plan.jobId} send_message expired: approval window elapsed`,
    );
  });

  it('blocks and closes the job when nobody decides within its own wait', async () => {
    const { gate } = gateWith({ approvalTimeoutMs: 1_500 });
    const answer = gate.beforeToolCall(call(SEND, { channel: 'payments-oncall', text: 'nobody home' }), {});
    const plan = await s.nextPlan();
    expect(blockReason(await answer)).toBe(
      `claw-approvals: job:${plan.jobId} send_message: no decision within 2 s`,
    );
    const job = await jobRow(s.w, plan.jobId);
    expect(job.status).toBe('cancelled');
    expect(job.end_reason).toMatch(/^no decision within 2 s/);
  });

  it('blocks and closes the job when OpenClaw cancels the call while it waits', async () => {
    const { gate } = gateWith();
    const abort = new AbortController();
    const answer = gate.beforeToolCall(call(SEND, { channel: 'payments-oncall', text: 'cancelled' }), {
      abortSignal: abort.signal,
    });
    const plan = await s.nextPlan();
    abort.abort();
    expect(blockReason(await answer)).toBe(
      `claw-approvals: job:${plan.jobId}: the tool call was cancelled while waiting for approval`,
    );
    expect(await jobRow(s.w, plan.jobId)).toMatchObject({ status: 'cancelled' });
  });

  it('closes the job when OpenClaw cancels the call while it is being submitted', async () => {
    const abort = new AbortController();
    // The job is created, and only then, before its answer reaches the gate, the call is cancelled.
    const client = new ClawClient({
      baseUrl: s.url,
      agentKey: s.agentKey,
      timeoutMs: 5_000,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (init?.method === 'POST' && String(input).endsWith('/v1/jobs')) abort.abort();
        return res;
      },
    });
    const { gate } = gateWith({}, manualTimers(), { client });
    const answer = gate.beforeToolCall(call(SEND, { channel: 'payments-oncall', text: 'cancelled early' }), {
      abortSignal: abort.signal,
    });
    const plan = await s.nextPlan();
    expect(blockReason(await answer)).toBe(
      `claw-approvals: job:${plan.jobId}: the tool call was cancelled while waiting for approval`,
    );
    expect(await jobRow(s.w, plan.jobId)).toMatchObject({ status: 'cancelled' });
  });

  it('does not let one approval run a second, identical call (each call is its own job)', async () => {
    const { gate } = gateWith();
    const params = { channel: 'payments-oncall', text: 'once only' };
    const first = await approvedCall(gate, call(SEND, params));
    expect(first.answer).toEqual({ params });
    const again = gate.beforeToolCall(call(SEND, params), {});
    const plan = await s.nextPlan();
    expect(plan.jobId).not.toBe(first.jobId);
    await s.bound(plan);
    s.w.post('alice', `DENY job:${plan.jobId} step:${SEND} already sent`, plan.post.id);
    expect(blockReason(await again)).toContain('denied');
  });

  it('names the Mattermost user who asked as the requester, else the configured one, else blocks', async () => {
    const { gate } = gateWith();
    const asked = gate.beforeToolCall(call(SEND, { channel: 'payments-oncall', text: 'for farid' }), {
      requester: { channel: 'mattermost', senderId: s.w.ids.farid },
    });
    const plan = await s.nextPlan();
    const row = await s.w.d.db
      .selectFrom('jobs')
      .select('requester_id')
      .where('id', '=', plan.jobId)
      .executeTakeFirstOrThrow();
    expect(row.requester_id).toBe(s.w.ids.farid);
    await s.bound(plan);
    s.w.post('alice', `DENY job:${plan.jobId} step:${SEND} test over`, plan.post.id);
    expect(blockReason(await asked)).toContain('denied');

    // Another channel's sender id is not a Mattermost user: the configured requester stands in.
    const nobody = gateWith({ requesterId: undefined }).gate;
    const before = await jobCount(s.w);
    expect(
      blockReason(
        await nobody.beforeToolCall(call(SEND, { text: 'x' }), {
          requester: { channel: 'discord', senderId: '42' },
        }),
      ),
    ).toBe('claw-approvals: no Mattermost requester for this call, and no requesterId is configured');
    expect(await jobCount(s.w)).toBe(before);
  });

  it('blocks input that cannot be shown whole, without a job', async () => {
    const { gate } = gateWith();
    const before = await jobCount(s.w);
    const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, i]));
    expect(blockReason(await gate.beforeToolCall(call(SEND, many), {}))).toBe(
      'claw-approvals: send_message has 33 inputs; at most 32 can be shown for approval',
    );
    expect(blockReason(await gate.beforeToolCall(call(SEND, { text: 'x'.repeat(4001) }), {}))).toBe(
      'claw-approvals: input text of send_message is 4001 characters; at most 4000 can be shown for approval',
    );
    expect(blockReason(await gate.beforeToolCall(call(SEND, { ratio: Number.NaN }), {}))).toBe(
      'claw-approvals: the input of send_message has no JSON form, so it cannot be approved',
    );
    expect(await jobCount(s.w)).toBe(before);
  });

  it('blocks input with a __proto__ field, which the step would not show but the tool would get, without a job', async () => {
    const { gate } = gateWith();
    const before = await jobCount(s.w);
    const params = JSON.parse(
      '{"channel":"payments-oncall","text":"hi","__proto__":{"admin":true}}',
    ) as Record<string, unknown>;
    expect(blockReason(await gate.beforeToolCall(call(SEND, params), {}))).toBe(
      'claw-approvals: send_message has an input name that is not a plain identifier (letters, digits, _ and -), so it cannot be shown for approval',
    );
    expect(await jobCount(s.w)).toBe(before);
  });

  it('blocks a tool simulate_first wants simulated first, gated or not, without a job', async () => {
    const pinned = pinnedPolicyLoader({ serverUrl: s.url, policyHash: s.policyHash, timeoutMs: 5_000 });
    const policy = async () => ({
      ...(await pinned()),
      simulateFirst: { simulationTool: 'dry_run', requiredBefore: ['search', SEND] },
    });
    const { gate } = gateWith({}, manualTimers(), { policy });
    const before = await jobCount(s.w);
    for (const tool of ['search', SEND]) {
      expect(blockReason(await gate.beforeToolCall(call(tool, { query: 'x' }), {}))).toBe(
        `claw-approvals: policy mattermost-agent-prod lets ${tool} run only after a dry_run step in the same plan (simulate_first); a single tool call cannot have one`,
      );
    }
    // A tool it does not name still runs untouched.
    expect(
      await gate.beforeToolCall(call('http_get', { url: 'https://status.example' }), {}),
    ).toBeUndefined();
    expect(await jobCount(s.w)).toBe(before);
  });

  it("claims no token and closes the job truthfully when approval comes after the gate's deadline", async () => {
    let now = 1_000_000;
    const { gate, logs } = gateWith({}, manualTimers(), { now: () => now, deadlineMs: 45_000 });
    const answer = gate.beforeToolCall(call(SEND, { channel: 'payments-oncall', text: 'late' }), {});
    const plan = await s.nextPlan();
    // The plan post may come before the submission's answer: the gate waits once it has that.
    await eventually(
      async () => logs.some((m) => m.includes(`submitted as job:${plan.jobId}`)) || undefined,
      'the gate waiting',
    );
    // OpenClaw's own hook timeout would have fired by now and blocked the call.
    now += 45_001;
    await s.approve(plan);
    expect(blockReason(await answer)).toBe(
      `claw-approvals: job:${plan.jobId} send_message: approved after the gate's 45 s for this call had passed; no token was claimed and the call was blocked`,
    );
    expect((await tokenRow(s.w, plan.jobId))?.claimed_at ?? null).toBeNull();
    const job = await jobRow(s.w, plan.jobId);
    expect(job.status).toBe('cancelled');
    expect(job.end_reason).toContain('no token was claimed and the call was blocked');
    expect(job.end_reason).not.toContain('let run');
    expect(gate.running).toBe(0);
  });

  it('binds two runs that both name their call call_1 each to its own job', async () => {
    const { gate } = gateWith();
    const params = { channel: 'payments-oncall', text: 'same call id' };
    const a = await approvedCall(gate, { toolName: SEND, params, toolCallId: 'call_1', runId: 'run-a' });
    const b = await approvedCall(gate, { toolName: SEND, params, toolCallId: 'call_1', runId: 'run-b' });
    expect(a.answer).toEqual({ params });
    expect(b.answer).toEqual({ params });
    expect(callBindings().get('call_1', 'run-a')).toMatchObject({ job_id: a.jobId });
    expect(callBindings().get('call_1', 'run-b')).toMatchObject({ job_id: b.jobId });
    // Without the run, the call id alone is ambiguous: no answer rather than the wrong job.
    expect(callBindings().get('call_1')).toBeUndefined();
    await gate.afterToolCall({
      toolName: SEND,
      toolCallId: 'call_1',
      runId: 'run-a',
      error: 'failed as a test',
    });
    expect(callBindings().get('call_1', 'run-a')).toBeUndefined();
    expect(callBindings().get('call_1')).toMatchObject({ job_id: b.jobId });
    expect((await jobRow(s.w, a.jobId)).status).toBe('failed');
    await gate.afterToolCall({
      toolName: SEND,
      toolCallId: 'call_1',
      runId: 'run-b',
      error: 'failed as a test',
    });
    expect(callBindings().get('call_1')).toBeUndefined();
  });

  it('blocks everything when the pinned policy is unknown, or does not govern the channel', async () => {
    const unknown = gateWith({ policyHash: 'A'.repeat(43) }).gate;
    expect(blockReason(await unknown.beforeToolCall(call('search', { query: 'x' }), {}))).toBe(
      `claw-approvals: cannot read the pinned policy ${'A'.repeat(43)}: the server does not know the pinned policy ${'A'.repeat(43)}`,
    );
    const elsewhere = gateWith({ channelId: s.w.otherChannel }).gate;
    expect(blockReason(await elsewhere.beforeToolCall(call('search', { query: 'x' }), {}))).toBe(
      `claw-approvals: policy mattermost-agent-prod does not govern channel ${s.w.otherChannel}`,
    );
  });

  it('fails closed when the server is unreachable: nothing passes before the policy was read', async () => {
    const { gate } = gateWith({ serverUrl: `http://127.0.0.1:${await closedPort()}` });
    for (const tool of ['search', SEND]) {
      expect(blockReason(await gate.beforeToolCall(call(tool, { query: 'x' }), {}))).toMatch(
        /^claw-approvals: cannot read the pinned policy .*: the claw-approvals server is unreachable \(ECONNREFUSED\)$/,
      );
    }
  });

  it('fails closed when the server goes away after the policy was read: gated calls are blocked', async () => {
    const { gate } = gateWith();
    expect(await gate.beforeToolCall(call('search', { query: 'x' }), {})).toBeUndefined();
    await s.stopApi();
    const reason = blockReason(await gate.beforeToolCall(call(SEND, { text: 'server down' }), {}));
    expect(reason).toMatch(
      /^claw-approvals: send_message could not be submitted for approval: the claw-approvals server is unreachable/,
    );
    // The policy is pinned by hash and immutable: an ungated tool needs no server.
    expect(await gate.beforeToolCall(call('search', { query: 'x' }), {})).toBeUndefined();
  });
});
