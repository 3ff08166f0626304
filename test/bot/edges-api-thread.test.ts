import { afterEach, describe, expect, it } from 'vitest';
import { answerToRoot, botPostWithKey, outboxDrained } from '../helpers/bot-faults.js';
import {
  createWorld,
  eventually,
  jobIdIn,
  ready,
  RUN,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { actionOf, type AgentApi, agentApi } from '../helpers/agent-api.js';
import { dialectName } from '../helpers/db.js';

let w: World;
let api: AgentApi | null = null;
const bots: RunningBot[] = [];

afterEach(async () => {
  await api?.close();
  api = null;
  for (const b of bots.splice(0)) await b.stop();
  await w.close();
});

const STEP = 'post-summary';

async function setup(): Promise<{ b: RunningBot; api: AgentApi }> {
  w = await createWorld();
  const b = await startBot(w);
  bots.push(b);
  await ready(b);
  api = await agentApi(w, b);
  return { b, api };
}

describe(`an agent-submitted job gets its own thread (${dialectName})`, () => {
  it('posts the plan as a new root post, binds the job to it, and counts decisions only there', async () => {
    const { api } = await setup();
    const jobId = await api.submit(w.ids.grace);

    const plan = await api.planPost(jobId);
    expect(plan.root_id).toBe('');
    expect(plan.props.claw_job_id).toBe(`job:${jobId}`);
    expect(plan.message).toContain(`APPROVE job:${jobId} step:${STEP}`);
    expect(plan.message).toContain('agent:ops-mattermost-1');
    await eventually(async () => {
      const job = await w.d.db
        .selectFrom('jobs')
        .select('root_post_id')
        .where('id', '=', jobId)
        .executeTakeFirst();
      return job?.root_post_id === plan.id;
    }, 'the job bound to its plan post');
    const bound = await w.d.db
      .selectFrom('job_events')
      .select(['event_type', 'payload'])
      .where('job_id', '=', jobId)
      .where('event_type', '=', 'thread_bound')
      .execute();
    expect(bound).toHaveLength(1);
    expect(JSON.parse(bound[0]!.payload)).toEqual({ root_post_id: plan.id });

    // Elsewhere: at the top of the channel, and in another job's thread. Neither counts.
    const phrase = `APPROVE job:${jobId} step:${STEP}`;
    const topLevel = w.post('alice', phrase);
    const otherRoot = w.post('bruno', RUN);
    await answerToRoot(w, otherRoot.id);
    const inOther = w.post('dmitri', phrase, otherRoot.id);
    await answerToRoot(w, topLevel.id);
    await botPostWithKey(w, otherRoot.id, `reply:${inOther.id}`);
    expect(await actionOf(w, topLevel.id)).toBe('approve:ERR_WRONG_THREAD');
    expect(await actionOf(w, inOther.id)).toBe('approve:ERR_WRONG_THREAD');

    // In the plan's thread, once the requester the agent named confirms: two people, and the
    // mint is announced there.
    const confirm = w.post('grace', `CONFIRM job:${jobId}`, plan.id);
    await botPostWithKey(w, plan.id, `reply:${confirm.id}`);
    w.post('alice', phrase, plan.id);
    const dmitri = w.post('dmitri', phrase, plan.id);
    const minted = await botPostWithKey(w, plan.id, `job:${jobId}:minted:${STEP}`);
    expect(minted.root_id).toBe(plan.id);
    expect(await actionOf(w, dmitri.id)).toBe('approve:QUORUM_MET');
  });

  it('refuses decisions while the job has no thread yet (its plan not delivered)', async () => {
    const { b, api } = await setup();
    w.sandbox.injectFault({ status: 503, forMs: 60_000, method: 'POST', pathPrefix: '/api/v4/posts' });
    const jobId = await api.submit(w.ids.grace);
    const early = w.post('alice', `APPROVE job:${jobId} step:${STEP}`);
    await eventually(async () => (await actionOf(w, early.id)) !== undefined, 'the early approval decided');
    expect(await actionOf(w, early.id)).toBe('approve:ERR_WRONG_THREAD');
    const job = await w.d.db
      .selectFrom('jobs')
      .select('root_post_id')
      .where('id', '=', jobId)
      .executeTakeFirst();
    expect(job?.root_post_id).toBeNull();
    w.sandbox.clearFaults();

    // Once Mattermost takes posts again, the plan goes out first and the thread is bound.
    const plan = await api.planPost(jobId);
    expect(jobIdIn(plan)).toBe(jobId);
    await b.bot.settle();
    await outboxDrained(w);
    const refusal = w.botReplies(early.id);
    expect(refusal).toHaveLength(1);
  });
});
