import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expireDueJobs } from '../../src/jobs/revoke-job.js';
import { eventually } from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { type ClawServer, jobCount, jobRow, SEND, startClawServer, stepRow, tokenRow } from './claw-world.js';
import { type Gateway, startGateway } from './openclaw-gateway.js';

// A real OpenClaw gateway (npm `openclaw`, run on the Node 24 the plugin workspace pins) loads
// the plugin with its own plugin loader; each call goes through POST /tools/invoke, which runs
// the gateway's tool policy and every plugin's before_tool_call hook before the tool.
let s: ClawServer;
let gw: Gateway;
beforeAll(async () => {
  s = await startClawServer();
  gw = await startGateway({
    pluginConfig: {
      serverUrl: s.url,
      channelId: s.w.channel,
      teamId: s.w.team,
      policyHash: s.policyHash,
      requesterId: s.w.ids.grace,
      approvalTimeoutSeconds: 60,
      resultTimeoutSeconds: 2,
    },
    env: { CLAW_APPROVALS_AGENT_KEY: s.agentKey },
  });
}, 360_000);
afterAll(async () => {
  await gw?.stop();
  await s?.close();
});

const ranTools = () => gw.ran().map((r) => r.tool);

describe(`the plugin in a real OpenClaw gateway (${dialectName})`, { timeout: 120_000 }, () => {
  it('lets an ungated tool run untouched, without a job', async () => {
    const before = await jobCount(s.w);
    const res = await gw.invoke('search', { query: 'latency spikes' });
    expect(res, gw.output()).toMatchObject({ status: 200, body: { ok: true } });
    expect(gw.ran().at(-1)).toMatchObject({
      tool: 'search',
      params: { query: 'latency spikes' },
      binding: null,
    });
    expect(await jobCount(s.w)).toBe(before);
  });

  it('blocks a tool the pinned policy denies, with the reason', async () => {
    const ran = ranTools().length;
    const res = await gw.invoke('write_file', { path: '/etc/hostname', content: 'x' });
    expect(res).toMatchObject({
      status: 403,
      body: {
        ok: false,
        error: {
          type: 'tool_call_blocked',
          message: 'claw-approvals: write_file is denied by policy mattermost-agent-prod',
        },
      },
    });
    expect(ranTools()).toHaveLength(ran);
  });

  it('runs a gated call once two people approved it in Mattermost, with exactly the approved input', async () => {
    const args = { channel: 'payments-oncall', text: 'Deploy finished\nall green' };
    const call = gw.invoke(SEND, args);
    const plan = await s.nextPlan();
    expect(plan.post.message).toContain(`APPROVE job:${plan.jobId} step:${SEND}`);
    expect(gw.ran().some((r) => r.tool === SEND)).toBe(false);
    await s.approve(plan);
    const res = await call;
    expect(res, gw.output()).toMatchObject({ status: 200, body: { ok: true } });
    const ran = gw.ran().at(-1)!;
    expect(ran).toMatchObject({ tool: SEND, params: args });
    // The tool found its call's binding (for a gateway's receipts) by the id OpenClaw gave it.
    expect(ran.binding).toMatchObject({ job_id: plan.jobId, step: SEND, run_id: `job:${plan.jobId}` });
    expect(await tokenRow(s.w, plan.jobId)).toMatchObject({
      claimed_at: expect.any(Date),
      redeemed_at: expect.any(Date),
    });
    // /tools/invoke reports no outcome to plugins (no after_tool_call on that path): the job is
    // closed, saying so, once resultTimeoutSeconds pass.
    await eventually(
      async () => (await jobRow(s.w, plan.jobId)).status === 'cancelled',
      'the job closed',
      20_000,
    );
    expect((await jobRow(s.w, plan.jobId)).end_reason).toContain('OpenClaw reported no outcome within 2 s');
  });

  it('blocks a denied call with the reason, and the tool never runs', async () => {
    const ran = ranTools().length;
    const call = gw.invoke(SEND, { channel: 'payments-oncall', text: 'deny me' });
    const plan = await s.nextPlan();
    await s.bound(plan);
    s.w.post('chioma', `DENY job:${plan.jobId} step:${SEND} not in this channel`, plan.post.id);
    const res = await call;
    expect(res).toMatchObject({
      status: 403,
      body: {
        error: {
          type: 'tool_call_blocked',
          message: `claw-approvals: job:${plan.jobId} send_message denied: step send_message denied by ${s.w.ids.chioma}`,
        },
      },
    });
    expect(ranTools()).toHaveLength(ran);
    expect(await tokenRow(s.w, plan.jobId)).toBeUndefined();
  });

  it('blocks a call whose job is revoked while it waits', async () => {
    const ran = ranTools().length;
    const call = gw.invoke(SEND, { channel: 'payments-oncall', text: 'revoke me' });
    const plan = await s.nextPlan();
    await s.bound(plan);
    s.w.post('erin', `REVOKE job:${plan.jobId} agent compromised`, plan.post.id);
    const res = await call;
    expect(res.status).toBe(403);
    expect(res.body.error?.message).toBe(
      `claw-approvals: job:${plan.jobId} send_message revoked: agent compromised`,
    );
    expect(ranTools()).toHaveLength(ran);
  });

  it('blocks a call whose approval window elapses', async () => {
    const ran = ranTools().length;
    const call = gw.invoke(SEND, { channel: 'payments-oncall', text: 'too slow' });
    const plan = await s.nextPlan();
    await s.bound(plan);
    await s.w.d.db
      .updateTable('jobs')
      .set({ expires_at: new Date(Date.now() - 1_000) })
      .where('id', '=', plan.jobId)
      .execute();
    expect((await expireDueJobs(s.b.engine)).map((x) => x.jobId)).toEqual([plan.jobId]);
    const res = await call;
    expect(res.status).toBe(403);
    expect(res.body.error?.message).toBe(
      `claw-approvals: job:${plan.jobId} send_message expired: approval window elapsed`,
    );
    expect(ranTools()).toHaveLength(ran);
    expect((await stepRow(s.w, plan.jobId)).status).not.toBe('approved');
  });

  it('fails closed when the server is unreachable: gated calls are blocked, ungated ones still run', async () => {
    await s.stopApi();
    const ran = ranTools().length;
    const res = await gw.invoke(SEND, { channel: 'payments-oncall', text: 'server down' });
    expect(res.status).toBe(403);
    expect(res.body.error?.message).toMatch(
      /^claw-approvals: send_message could not be submitted for approval: the claw-approvals server is unreachable/,
    );
    expect(ranTools()).toHaveLength(ran);
    // The pinned policy is immutable by its hash, so it is still known: search needs no server.
    expect(await gw.invoke('search', { query: 'still fine' })).toMatchObject({ status: 200 });
  });
});
