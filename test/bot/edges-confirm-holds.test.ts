import { afterEach, describe, expect, it } from 'vitest';
import { revokeAgent } from '../../src/agents/agent-keys.js';
import { OUTBOX_KEY_PROP } from '../../src/chat/outbox-delivery.js';
import { botPostWithKey, outboxDrained } from '../helpers/bot-faults.js';
import {
  createWorld,
  eventually,
  ready,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { actionOf, type AgentApi, agentApi } from '../helpers/agent-api.js';
import { dialectName } from '../helpers/db.js';
import { OPS } from '../helpers/engine.js';

// Review of issue 9 items 5 and 7: attempts to get an agent job's approvals counted without its
// requester's CONFIRM, or outside its thread, that the bot refuses.

let w: World;
let api: AgentApi | null = null;
const bots: RunningBot[] = [];

afterEach(async () => {
  await api?.close();
  api = null;
  for (const b of bots.splice(0)) await b.stop();
  await w.close();
});

async function setup(): Promise<{ b: RunningBot; api: AgentApi }> {
  w = await createWorld();
  const b = await startBot(w);
  bots.push(b);
  await ready(b);
  api = await agentApi(w, b);
  return { b, api };
}

async function confirmedAt(jobId: number) {
  const job = await w.d.db
    .selectFrom('jobs')
    .select('requester_confirmed_at')
    .where('id', '=', jobId)
    .executeTakeFirstOrThrow();
  return job.requester_confirmed_at;
}

function decided(postId: string) {
  return eventually(async () => actionOf(w, postId), `post ${postId} decided`);
}

describe(`what cannot confirm an agent job (${dialectName})`, () => {
  it('near misses of CONFIRM by the requester, in the thread, never confirm', async () => {
    const { api } = await setup();
    const jobId = await api.submit(w.ids.grace);
    const plan = await api.planPost(jobId);
    const variants = [
      `СONFIRM job:${jobId}`, // Cyrillic С
      `CON\u200bFIRM job:${jobId}`,
      `CONFIRM job:${jobId}\u200b`,
      `\u202eCONFIRM job:${jobId}`,
      `\`CONFIRM job:${jobId}\``,
      `> CONFIRM job:${jobId}`,
      `CONFIRM job:${jobId} please`,
      `CONFIRM  job:${jobId}`,
      `CONFIRM job:0${jobId}`,
      `CONFIRM job:${jobId} step:post-summary`,
      `CONFIRMED job:${jobId}`,
      `ＣＯＮＦＩＲＭ job:${jobId}`,
    ];
    const posts = variants.map((v) => w.post('grace', v, plan.id));
    for (const p of posts) expect(await decided(p.id), p.message).toBe('near_miss');
    expect(await confirmedAt(jobId)).toBeNull();
  });

  it('chatter edited into CONFIRM, and a CONFIRM in another job’s thread, never confirm', async () => {
    const { api } = await setup();
    const jobId = await api.submit(w.ids.grace);
    const other = await api.submit(w.ids.grace);
    const plan = await api.planPost(jobId);
    const otherPlan = await api.planPost(other);
    await eventually(async () => {
      const rows = await w.d.db
        .selectFrom('jobs')
        .select('root_post_id')
        .where('id', 'in', [jobId, other])
        .execute();
      return rows.every((r) => r.root_post_id !== null);
    }, 'both threads bound');

    const chatter = w.post('grace', 'looking at it', plan.id);
    w.sandbox.editPost(w.ids.grace, chatter.id, `CONFIRM job:${jobId}`);
    const misplaced = w.post('grace', `CONFIRM job:${jobId}`, otherPlan.id);
    expect(await decided(misplaced.id)).toBe('confirm:ERR_WRONG_THREAD');
    expect(await decided(chatter.id)).toBe('edited_before_seen');
    expect((await botPostWithKey(w, plan.id, `reply:${chatter.id}`)).message).toContain(
      'edited message never counts',
    );
    expect(await confirmedAt(jobId)).toBeNull();
    expect(await confirmedAt(other)).toBeNull();
  });

  it('an agent cannot name someone outside the requester groups, or the bot, as requester', async () => {
    const { api } = await setup();
    for (const requester of [w.ids.outsider, w.botUserId, OPS.executor]) {
      const res = await api.app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers: api.headers,
        payload: {
          channel_id: w.channel,
          requester_id: requester,
          runbook: {
            name: 'service-context',
            params: { service: 'payments-api', query: 'q', notify_channel: 'payments-oncall' },
          },
        },
      });
      expect(res.statusCode, requester).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, requester).toBeLessThan(500);
    }
    expect(await w.d.db.selectFrom('jobs').select('id').execute()).toEqual([]);
  });

  it('an agent revoked before its plan is posted: the plan, then the ending, in one thread; CONFIRM refused', async () => {
    const { b, api } = await setup();
    w.sandbox.injectFault({ status: 503, forMs: 60_000, method: 'POST', pathPrefix: '/api/v4/posts' });
    const jobId = await api.submit(w.ids.grace);
    await revokeAgent(b.engine, { id: OPS.executor, actor: 'review' });
    w.sandbox.clearFaults();
    const plan = await api.planPost(jobId);
    const ended = await botPostWithKey(w, plan.id, `job:${jobId}:ended`);
    expect(ended.root_id).toBe(plan.id);
    await outboxDrained(w);
    const top = w.sandbox
      .postsIn(w.channel)
      .filter((p) => p.user_id === w.botUserId && p.root_id === '')
      .map((p) => String(p.props[OUTBOX_KEY_PROP]));
    expect(top).toEqual([`job:${jobId}:plan`]);
    const confirm = w.post('grace', `CONFIRM job:${jobId}`, plan.id);
    expect(await decided(confirm.id)).toBe('confirm:ERR_JOB_REVOKED');
  });
});
