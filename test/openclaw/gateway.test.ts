import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expireDueJobs } from '../../src/jobs/revoke-job.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import { eventually } from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { receiptFor } from '../helpers/receipts.js';
import { type ClawServer, jobCount, jobRow, SEND, startClawServer, stepRow, tokenRow } from './claw-world.js';
import { type Gateway, startGateway } from './openclaw-gateway.js';
import { type ScriptedModel, startScriptedModel } from './scripted-model.js';

// A real OpenClaw gateway (npm `openclaw`, run on the Node 24 the plugin workspace pins) loads
// the plugin with its own plugin loader. Single calls go through POST /tools/invoke (the
// gateway's tool policy, then every plugin's before_tool_call hook, then the tool); agent
// turns through POST /v1/chat/completions, with a scripted model that calls the tools.
let s: ClawServer;
let gw: Gateway;
let model: ScriptedModel;
let gateway: http.Server;

/** Stands in for clawproxy: signs a receipt bound to the call's binding with the test gateway key. */
async function startReceiptGateway(): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const b = JSON.parse(body) as { run_id: string; event_hash_b64u: string };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(receiptFor({ runId: b.run_id, eventHash: b.event_hash_b64u })));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/receipt` };
}

beforeAll(async () => {
  s = await startClawServer();
  model = await startScriptedModel();
  const receipts = await startReceiptGateway();
  gateway = receipts.server;
  gw = await startGateway({
    modelUrl: model.baseUrl,
    receiptUrl: receipts.url,
    pluginConfig: {
      serverUrl: s.url,
      channelId: s.w.channel,
      teamId: s.w.team,
      policyHash: s.policyHash,
      requesterId: s.w.ids.grace,
      approvalTimeoutSeconds: 60,
      // Long enough that a gateway stalled by a loaded machine (its SQLite maintenance alone has
      // taken 3 to 4 s in CI) still reports a call it ran; the call it never reports is closed
      // after it.
      resultTimeoutSeconds: 10,
    },
    env: { CLAW_APPROVALS_AGENT_KEY: s.agentKey },
  });
}, 360_000);
afterAll(async () => {
  await gw?.stop();
  await model?.close();
  gateway?.close();
  await s?.close();
});

const ranTools = () => gw.ran().map((r) => r.tool);

describe(`the plugin in a real OpenClaw gateway (${dialectName})`, { timeout: 240_000 }, () => {
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
      40_000,
    );
    expect((await jobRow(s.w, plan.jobId)).end_reason).toContain('OpenClaw reported no outcome within 10 s');
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
          message: expect.stringMatching(
            new RegExp(
              `^claw-approvals: job:${plan.jobId} send_message denied by ${s.w.ids.chioma} \\([a-z, -]+\\) via chat: not in this channel$`,
            ),
          ),
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
      `claw-approvals: job:${plan.jobId} send_message revoked by ${s.w.ids.erin} (security) via chat: agent compromised`,
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

  it('an agent turn: the model calls a gated tool, two people approve, it runs and its receipt completes the job', async () => {
    const args = { channel: 'payments-oncall', text: 'Summary posted by the agent', receipt: true };
    model.script({ tool: SEND, args }, { text: 'Posted the summary.' });
    const turn = gw.chat('Post the summary to payments-oncall.');
    // An agent turn prepares its session first: seconds alone, much longer on a busy machine.
    const plan = await s.nextPlan(120_000);
    expect(gw.ran().some((r) => r.params.text === args.text)).toBe(false);
    await s.approve(plan);
    const answer = await turn;
    expect(answer, gw.output()).toEqual({ status: 200, text: 'Posted the summary.' });
    expect(gw.ran().at(-1)).toMatchObject({ tool: SEND, params: args, binding: { job_id: plan.jobId } });
    expect(model.toolResults().at(-1)).toContain('send_message ran');
    // after_tool_call reported the success with the gateway's receipt: the job completes.
    // The gateway's log says why, if the result could not be reported (its warning is the only trace).
    await eventually(
      async () => (await jobRow(s.w, plan.jobId)).status === 'completed',
      'the job completed',
      20_000,
    ).catch(async (err: unknown) => {
      const job = await jobRow(s.w, plan.jobId);
      throw new Error(
        `${(err as Error).message}: the job is ${job.status} (${job.end_reason ?? 'no end reason'}); the gateway's output:\n${gw.output()}`,
      );
    });
    expect((await stepRow(s.w, plan.jobId)).result_summary).toMatch(/^OpenClaw: send_message ran in \d+ ms$/);
    const job = await jobRow(s.w, plan.jobId);
    const bundle = await s.w.d.db
      .selectFrom('bundles')
      .select('envelope')
      .where('bundle_id', '=', job.bundle_id!)
      .executeTakeFirstOrThrow();
    expect(
      verifyBundle(JSON.parse(bundle.envelope), {
        trustsSigner: s.b.engine.keyRing.trusts,
        gatewaySigners: s.b.engine.gatewaySigners,
      }),
    ).toMatchObject({ ok: true, receipts: 1 });
  });

  it('an agent turn: a denied call comes back to the model as blocked, with the reason', async () => {
    const ran = ranTools().length;
    model.script(
      { tool: SEND, args: { channel: 'payments-oncall', text: 'not approved' } },
      { text: 'Understood.' },
    );
    const turn = gw.chat('Post it anyway.');
    const plan = await s.nextPlan(120_000);
    await s.bound(plan);
    s.w.post('alice', `DENY job:${plan.jobId} step:${SEND} not now`, plan.post.id);
    expect(await turn).toEqual({ status: 200, text: 'Understood.' });
    expect(model.toolResults().at(-1)).toContain(`claw-approvals: job:${plan.jobId} send_message denied`);
    expect(ranTools()).toHaveLength(ran);
    expect(await jobRow(s.w, plan.jobId)).toMatchObject({ status: 'denied' });
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
