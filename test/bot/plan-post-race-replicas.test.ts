import { afterEach, describe, expect, it } from 'vitest';
import type { NewPost } from '../../src/chat/chat-port.js';
import { OUTBOX_KEY_PROP } from '../../src/chat/outbox-delivery.js';
import { actionOf, type AgentApi, agentApi } from '../helpers/agent-api.js';
import {
  createWorld,
  eventually,
  ready,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';

/**
 * An agent's plan post is made by one replica while another hears the requester's reply to it
 * before the first has recorded it as the job's thread (or after a crash, or a lost answer,
 * between the post being made and the thread being recorded). The deciding transaction binds
 * the job to that post itself, but only when Mattermost says the post's root is the bot's own
 * plan post of that job, in the job's channel: a prop alone proves nothing.
 */

let w: World;
let api: AgentApi | null = null;
const bots: RunningBot[] = [];
let release: () => void = () => {};

afterEach(async () => {
  release();
  await api?.close();
  api = null;
  for (const b of bots.splice(0)) await b.stop();
  await w.close();
});

/** Mattermost makes every plan post at once but answers the replica that asked only once released. */
function holdPlanAnswers(replicas: RunningBot[]): void {
  const answered = new Promise<void>((r) => (release = r));
  for (const x of replicas) {
    const createPost = x.rest.createPost.bind(x.rest);
    x.rest.createPost = async (post: NewPost) => {
      const made = await createPost(post);
      if (String(post.props?.[OUTBOX_KEY_PROP] ?? '').endsWith(':plan')) await answered;
      return made;
    };
  }
}

const jobRow = (jobId: number) =>
  w.d.db
    .selectFrom('jobs')
    .select(['root_post_id', 'requester_confirmed_at'])
    .where('id', '=', jobId)
    .executeTakeFirstOrThrow();

const bindings = (jobId: number) =>
  w.d.db
    .selectFrom('job_events')
    .select('payload')
    .where('job_id', '=', jobId)
    .where('event_type', '=', 'thread_bound')
    .execute();

describe(`a reply to a plan post another replica has not recorded yet (${dialectName})`, () => {
  it('two replicas: the reply binds the job to its plan post and counts, and the thread is bound once', async () => {
    w = await createWorld();
    const a = await startBot(w);
    const b = await startBot(w);
    bots.push(a, b);
    await Promise.all([ready(a), ready(b)]);
    api = await agentApi(w, a);
    holdPlanAnswers([a, b]);

    const jobId = await api.submit(w.ids.grace);
    const plan = await api.planPost(jobId);
    expect((await jobRow(jobId)).root_post_id).toBeNull();
    const confirm = w.post('grace', `CONFIRM job:${jobId}`, plan.id);
    // Decided while the replica posting the plan still waits for Mattermost's answer.
    const action = await eventually(() => actionOf(w, confirm.id), 'the reply decided');
    expect(action).toBe('confirm:REQUESTER_CONFIRMED');
    const job = await jobRow(jobId);
    expect(job.root_post_id).toBe(plan.id);
    expect(job.requester_confirmed_at).not.toBeNull();

    release();
    await Promise.all([a.bot.settle(), b.bot.settle()]);
    await eventually(
      async () =>
        (
          await w.d.db
            .selectFrom('outbox')
            .select('delivered_at')
            .where('dedupe_key', '=', `job:${jobId}:plan`)
            .executeTakeFirst()
        )?.delivered_at,
      'the plan post recorded as delivered',
    );
    expect((await jobRow(jobId)).root_post_id).toBe(plan.id);
    const bound = await bindings(jobId);
    expect(bound).toHaveLength(1);
    expect(JSON.parse(String(bound[0]!.payload))).toEqual({ root_post_id: plan.id });
  });

  it("a person's own root post carrying the plan post's outbox key is not the job's thread", async () => {
    w = await createWorld();
    const a = await startBot(w);
    bots.push(a);
    await ready(a);
    api = await agentApi(w, a);
    holdPlanAnswers([a]);

    const jobId = await api.submit(w.ids.grace);
    await api.planPost(jobId);
    const spoof = w.sandbox.createPost(w.ids.grace, {
      channel_id: w.channel,
      message: 'my plan',
      props: { [OUTBOX_KEY_PROP]: `job:${jobId}:plan` },
    });
    const confirm = w.post('grace', `CONFIRM job:${jobId}`, spoof.id);
    const action = await eventually(() => actionOf(w, confirm.id), 'the reply decided');
    expect(action).toBe('confirm:ERR_WRONG_THREAD');
    const job = await jobRow(jobId);
    expect(job.root_post_id).toBeNull();
    expect(job.requester_confirmed_at).toBeNull();
    expect(await bindings(jobId)).toEqual([]);
  });
});
