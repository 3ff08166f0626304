import { afterEach, describe, expect, it } from 'vitest';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import { pauseState } from '../../src/jobs/kill-switch.js';
import { readChain } from '../../src/proofs/event-chain.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import { agentApi, type AgentApi } from '../helpers/agent-api.js';
import { outboxDrained } from '../helpers/bot-faults.js';
import {
  answerTo,
  approve,
  botSays,
  countedApprovals,
  GATED,
  jobRow,
  requestJob,
  tokensOf,
} from '../helpers/bot-thread.js';
import {
  createWorld,
  eventually,
  ready,
  RUN,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { OPS } from '../helpers/engine.js';
import { liveMarkup } from '../helpers/live-markup.js';
import { receiptFor } from '../helpers/receipts.js';

let w: World;
let api: AgentApi | null = null;
const bots: RunningBot[] = [];

afterEach(async () => {
  await api?.close();
  api = null;
  for (const b of bots.splice(0)) await b.stop();
  await w.close();
});

async function setup(replicas = 1): Promise<RunningBot[]> {
  w = await createWorld();
  for (let i = 0; i < replicas; i++) bots.push(await startBot(w));
  await Promise.all(bots.map((b) => ready(b)));
  api = await agentApi(w, bots[0]!);
  return bots;
}

const AUTO = ['search-kb', 'read-runbook', 'fetch-status'];
const postText = (rootId: string, postId: string) =>
  w.sandbox.thread(rootId).find((p) => p.id === postId)!.message;
const pauses = async (jobId: number) =>
  (await readChain(w.d.db, jobId))
    .map((e) => e.event_type)
    .filter((t) => t === 'job_paused' || t === 'job_resumed');

function claimOverApi(jobId: number, step: string) {
  return api!.app.inject({
    method: 'POST',
    url: `/v1/jobs/${jobId}/steps/${step}/token`,
    headers: api!.headers,
  });
}

describe(`the kill switch in chat (${dialectName})`, () => {
  it('pause by the security group stops approvals, runs, claims and tokens; resume lets the job complete; the bundle verifies', async () => {
    const [b] = await setup();
    const { root, plan, jobId } = await requestJob(w);
    w.post('alice', approve(jobId), root.id);
    await botSays(w, root.id, 'Approval by @alice counted');
    const claimed = await claimOverApi(jobId, 'search-kb');
    expect(claimed.statusCode, claimed.body).toBe(200);
    const token = (claimed.json() as { token: string }).token;

    const pause = w.post('chioma', '@clawbot pause incident 7');
    const answer = await answerTo(w, pause);
    expect(answer.root_id).toBe(pause.id);
    expect(answer.message).toContain('**Work paused** by @chioma: incident 7');
    expect(await pauseState(w.d.db)).toMatchObject({
      paused: true,
      actor: `user:${w.ids.chioma}`,
      reason: 'incident 7',
    });
    await eventually(
      () => postText(root.id, plan.id).includes('**Status: ⏸️ paused** by @chioma: `incident 7`'),
      'the status post says paused',
    );

    // An approval by the phrase: refused, not counted.
    const refused = w.post('dmitri', approve(jobId), root.id);
    const no = await answerTo(w, refused);
    expect(no.message).toContain('ERR_PAUSED');
    expect(await countedApprovals(w, jobId)).toHaveLength(1);
    expect(await tokensOf(w, jobId)).toEqual([]);
    // A new request: refused, no job.
    const run = w.post('farid', RUN);
    expect((await answerTo(w, run)).message).toContain('ERR_PAUSED');
    expect(await w.d.db.selectFrom('jobs').select('id').execute()).toHaveLength(1);
    // The agent: no claim, and the token it holds is inactive.
    const claim = await claimOverApi(jobId, 'read-runbook');
    expect(claim.statusCode).toBe(503);
    expect(claim.json()).toMatchObject({ error: { code: 'ERR_PAUSED' } });
    const inactive = await api!.app.inject({
      method: 'POST',
      url: '/v1/tokens/introspect',
      headers: api!.headers,
      payload: { token },
    });
    expect(inactive.json()).toMatchObject({ active: false, code: 'ERR_PAUSED' });
    await expect(redeemToken(b!.engine, token)).rejects.toMatchObject({ code: 'ERR_PAUSED' });

    const resume = w.post('erin', '@clawbot resume contained');
    expect((await answerTo(w, resume)).message).toContain('**Work resumed** by @erin: contained');
    await eventually(
      () => postText(root.id, plan.id).includes('**Status: ⏳ waiting for approval**'),
      'the status post resumed',
    );
    const active = await api!.app.inject({
      method: 'POST',
      url: '/v1/tokens/introspect',
      headers: api!.headers,
      payload: { token },
    });
    expect(active.json()).toMatchObject({ active: true });

    w.post('dmitri', approve(jobId), root.id);
    await botSays(w, root.id, 'approved by');
    for (const step of [...AUTO, GATED]) {
      const c =
        step === 'search-kb'
          ? { token, ...(claimed.json() as { run_id: string; event_hash_b64u: string }) }
          : null;
      const got = c
        ? { token: c.token, runId: c.run_id, eventHash: c.event_hash_b64u }
        : await claimToken(b!.engine, { jobId, step, agentId: OPS.executor });
      await redeemToken(b!.engine, got.token);
      await reportResult(b!.engine, {
        jobId,
        step,
        agentId: OPS.executor,
        status: 'succeeded',
        summary: `${step} done`,
        receipts: [receiptFor(got)],
      });
    }
    await botSays(w, root.id, `job:${jobId} completed`);
    await outboxDrained(w);
    expect(postText(root.id, plan.id)).toContain('**Status: ✅ completed**');

    expect(await pauses(jobId)).toEqual(['job_paused', 'job_resumed']);
    const job = await jobRow(w, jobId);
    const bundle = await w.d.db
      .selectFrom('bundles')
      .selectAll()
      .where('bundle_id', '=', job.bundle_id!)
      .executeTakeFirstOrThrow();
    const verdict = verifyBundle(JSON.parse(bundle.envelope), {
      trustsSigner: (did) => did === b!.engine.keyRing.active.did,
      gatewaySigners: b!.engine.gatewaySigners,
    });
    expect(verdict).toMatchObject({ ok: true });
    const sealed = JSON.stringify(JSON.parse(bundle.envelope));
    expect(sealed).toContain('job_paused');
    expect(sealed).toContain('job_resumed');
  });

  it('pause or resume by anyone outside the security group is refused and changes nothing', async () => {
    await setup();
    const { root, plan, jobId } = await requestJob(w);
    for (const who of ['alice', 'bruno', 'outsider'] as const) {
      const p = w.post(who, '@clawbot pause now');
      expect((await answerTo(w, p)).message).toContain('ERR_NOT_ELIGIBLE');
    }
    const inThread = w.post('dmitri', '@clawbot pause', root.id);
    expect((await answerTo(w, inThread)).message).toContain('ERR_NOT_ELIGIBLE');
    expect(await pauseState(w.d.db)).toMatchObject({ paused: false, actor: null, reason: null });
    expect(await pauses(jobId)).toEqual([]);
    expect(postText(root.id, plan.id)).not.toContain('paused');
    // Work still goes on.
    w.post('alice', approve(jobId), root.id);
    w.post('chioma', approve(jobId), root.id);
    await botSays(w, root.id, 'approved by');
  });

  it('a hostile reason cannot mention or link anyone in the answer or the status post', async () => {
    await setup();
    const { root, plan, jobId } = await requestJob(w);
    const pause = w.post(
      'chioma',
      '@clawbot pause @channel https://evil.example/x [x](https://evil.example) ~town-square',
    );
    const answer = await answerTo(w, pause);
    expect(answer.message).toContain('Work paused');
    await eventually(() => postText(root.id, plan.id).includes('⏸️ paused'), 'the status post says paused');
    const row = await w.d.db
      .selectFrom('outbox')
      .select('message')
      .where('dedupe_key', '=', `status:${jobId}`)
      .executeTakeFirstOrThrow();
    const statusLine = row.message!.split('\n').find((l) => l.startsWith('**Status:'))!;
    expect(liveMarkup(statusLine, [w.ids.chioma])).toEqual([]);
    expect(answer.message).not.toMatch(/@channel|https:\/\/evil|\]\(|~town/);
  });

  it('a reason cut at its limit inside a character, or holding controls, still pauses and is recorded as text', async () => {
    await setup();
    const { jobId } = await requestJob(w);
    // The 300th character is the first half of an emoji: the cut must not leave half a character.
    const pause = w.post('chioma', `@clawbot pause ${'x'.repeat(299)}\u{1F600} and \u202ebidi\u0007`);
    const answer = await answerTo(w, pause);
    expect(answer.message).toContain('Work paused');
    const state = await pauseState(w.d.db);
    expect(state.paused).toBe(true);
    expect(state.reason!.length).toBeLessThanOrEqual(300);
    expect(state.reason).not.toMatch(/[\p{Cs}\p{Cc}\u202a-\u202e]/u);
    expect(await pauses(jobId)).toEqual(['job_paused']);
    const resume = w.post('chioma', '@clawbot resume \u202e\u0007');
    expect((await answerTo(w, resume)).message).toContain('Work resumed');
    expect(await pauses(jobId)).toEqual(['job_paused', 'job_resumed']);
  });

  it('a pause on one replica holds on the other at once', async () => {
    const [a, c] = await setup(2);
    const { root, jobId } = await requestJob(w);
    const pause = w.post('chioma', '@clawbot pause');
    await answerTo(w, pause);
    // Whichever replica took the pause, the other refuses work from then on.
    const took = a!.handled.some(
      (h) => h.post.id === pause.id && !(h.result instanceof Error) && h.result.outcome === 'handled',
    );
    const other = took ? c! : a!;
    await expect(
      claimToken(other.engine, { jobId, step: 'search-kb', agentId: OPS.executor }),
    ).rejects.toMatchObject({
      code: 'ERR_PAUSED',
    });
    const approvals = [w.post('alice', approve(jobId), root.id), w.post('chioma', approve(jobId), root.id)];
    for (const p of approvals) expect((await answerTo(w, p)).message).toContain('ERR_PAUSED');
    expect(await countedApprovals(w, jobId)).toEqual([]);
    expect(await pauses(jobId)).toEqual(['job_paused']);
  });
});
