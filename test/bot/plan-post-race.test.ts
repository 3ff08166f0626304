import { afterEach, describe, expect, it } from 'vitest';
import type { NewPost } from '../../src/chat/chat-port.js';
import { OUTBOX_KEY_PROP } from '../../src/chat/outbox-delivery.js';
import { botPostWithKey } from '../helpers/bot-faults.js';
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

let w: World;
let api: AgentApi | null = null;
const bots: RunningBot[] = [];

afterEach(async () => {
  await api?.close();
  api = null;
  for (const b of bots.splice(0)) await b.stop();
  await w.close();
});

describe(`a reply to an agent's plan post before the bot has recorded it (${dialectName})`, () => {
  it('waits for the job to be bound to the post, then counts: no ERR_WRONG_THREAD', async () => {
    w = await createWorld();
    const b = await startBot(w);
    bots.push(b);
    await ready(b);
    api = await agentApi(w, b);
    // Mattermost has made the plan post (people see it) but its answer to the bot is slow.
    let answer: () => void = () => {};
    const answered = new Promise<void>((r) => (answer = r));
    const createPost = b.rest.createPost.bind(b.rest);
    b.rest.createPost = async (post: NewPost) => {
      const made = await createPost(post);
      if (String(post.props?.[OUTBOX_KEY_PROP] ?? '').endsWith(':plan')) await answered;
      return made;
    };

    const jobId = await api.submit(w.ids.grace);
    const plan = await api.planPost(jobId);
    const confirm = w.post('grace', `CONFIRM job:${jobId}`, plan.id);
    try {
      // Either the bot holds the reply, or (wrongly) it has already decided it.
      await eventually(
        () => b.bot.stats.waitedForPlanPost > 0 || b.handled.some((h) => h.post.id === confirm.id),
        'the reply held or handled',
      );
      expect(b.handled.filter((h) => h.post.id === confirm.id)).toEqual([]);
      expect(b.bot.stats.waitedForPlanPost).toBe(1);
    } finally {
      answer();
    }
    await botPostWithKey(w, plan.id, `reply:${confirm.id}`);
    expect(await actionOf(w, confirm.id)).toBe('confirm:REQUESTER_CONFIRMED');
    const job = await w.d.db
      .selectFrom('jobs')
      .select('root_post_id')
      .where('id', '=', jobId)
      .executeTakeFirstOrThrow();
    expect(job.root_post_id).toBe(plan.id);
  });
});
