import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import { OUTBOX_KEY_PROP } from '../../src/chat/outbox-delivery.js';
import { botPostWithKey, outboxDrained } from '../helpers/bot-faults.js';
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
import { dialectName } from '../helpers/db.js';
import { OPS } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';

let w: World;
let app: FastifyInstance | null = null;
const bots: RunningBot[] = [];

afterEach(async () => {
  await app?.close();
  app = null;
  for (const b of bots.splice(0)) await b.stop();
  await w.close();
});

const STEP = 'post-summary';

async function setup() {
  w = await createWorld();
  const b = await startBot(w);
  bots.push(b);
  await ready(b);
  app = buildApp({
    db: w.d.db,
    keyRing: b.engine.keyRing,
    policies: b.engine.policies,
    log: silentLogger(),
    engine: b.engine,
  });
  const agent = await createAgent(w.d.db, { id: OPS.executor, at: new Date() });
  return { b, headers: { authorization: `Bearer ${agent.key}` } };
}

async function submit(headers: Record<string, string>): Promise<number> {
  const res = await app!.inject({
    method: 'POST',
    url: '/v1/jobs',
    headers,
    payload: {
      channel_id: w.channel,
      requester_id: w.ids.grace,
      runbook: {
        name: 'service-context',
        params: { service: 'payments-api', query: 'latency spikes', notify_channel: 'payments-oncall' },
      },
    },
  });
  expect(res.statusCode, res.body).toBe(201);
  return (res.json() as { job_id: number }).job_id;
}

const actionOf = async (postId: string) =>
  (await w.d.db.selectFrom('chat_posts').select('action').where('post_id', '=', postId).executeTakeFirst())
    ?.action;

const planPost = (jobId: number) =>
  eventually(
    () =>
      w.sandbox
        .postsIn(w.channel)
        .find((p) => p.user_id === w.botUserId && p.props[OUTBOX_KEY_PROP] === `job:${jobId}:plan`),
    `the plan post of job:${jobId}`,
  );

describe(`an agent-submitted job gets its own thread (${dialectName})`, () => {
  it('posts the plan as a new root post, binds the job to it, and counts decisions only there', async () => {
    const { headers } = await setup();
    const jobId = await submit(headers);

    const plan = await planPost(jobId);
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
    await botPostWithKey(w, otherRoot.id, `reply:${otherRoot.id}`);
    const inOther = w.post('dmitri', phrase, otherRoot.id);
    await botPostWithKey(w, topLevel.id, `reply:${topLevel.id}`);
    await botPostWithKey(w, otherRoot.id, `reply:${inOther.id}`);
    expect(await actionOf(topLevel.id)).toBe('approve:ERR_WRONG_THREAD');
    expect(await actionOf(inOther.id)).toBe('approve:ERR_WRONG_THREAD');

    // In the plan's thread, once the requester the agent named confirms: two people, and the
    // mint is announced there.
    const confirm = w.post('grace', `CONFIRM job:${jobId}`, plan.id);
    await botPostWithKey(w, plan.id, `reply:${confirm.id}`);
    w.post('alice', phrase, plan.id);
    const dmitri = w.post('dmitri', phrase, plan.id);
    const minted = await botPostWithKey(w, plan.id, `job:${jobId}:minted:${STEP}`);
    expect(minted.root_id).toBe(plan.id);
    expect(await actionOf(dmitri.id)).toBe('approve:QUORUM_MET');
  });

  it('refuses decisions while the job has no thread yet (its plan not delivered)', async () => {
    const { b, headers } = await setup();
    w.sandbox.injectFault({ status: 503, forMs: 60_000, method: 'POST', pathPrefix: '/api/v4/posts' });
    const jobId = await submit(headers);
    const early = w.post('alice', `APPROVE job:${jobId} step:${STEP}`);
    await eventually(async () => (await actionOf(early.id)) !== undefined, 'the early approval decided');
    expect(await actionOf(early.id)).toBe('approve:ERR_WRONG_THREAD');
    const job = await w.d.db
      .selectFrom('jobs')
      .select('root_post_id')
      .where('id', '=', jobId)
      .executeTakeFirst();
    expect(job?.root_post_id).toBeNull();
    w.sandbox.clearFaults();

    // Once Mattermost takes posts again, the plan goes out first and the thread is bound.
    const plan = await planPost(jobId);
    expect(jobIdIn(plan)).toBe(jobId);
    await b.bot.settle();
    await outboxDrained(w);
    const refusal = w.botReplies(early.id);
    expect(refusal).toHaveLength(1);
  });
});
