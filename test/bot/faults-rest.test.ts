import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  answerToRoot,
  botPostWithKey,
  expectHandledOnce,
  expectOutboxDeliveredOnce,
  outboxDrained,
  replyKeys,
} from '../helpers/bot-faults.js';
import {
  createWorld,
  jobIdIn,
  ready,
  RUN,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { captureLogger } from '../helpers/log.js';

let w: World;
let b: RunningBot;
let logs: ReturnType<typeof captureLogger>;

beforeEach(async () => {
  w = await createWorld();
  logs = captureLogger('info');
  b = await startBot(w, { log: logs.log });
  await ready(b);
});
afterEach(async () => {
  await b.stop();
  await w.close();
});

const STEP = 'post-summary';

const logLines = () => logs.lines().map((l) => JSON.parse(l) as Record<string, unknown>);

describe(`Mattermost REST answering 429 and 503 for a while (${dialectName})`, () => {
  it('still answers every post once, in order within the thread, and records each decision once', async () => {
    // 1. Rate limited (plain-text 429 with Retry-After): the bot waits as told, then plans.
    w.sandbox.injectFault({ status: 429, times: 2, retryAfterSeconds: 1 });
    const root = w.post('bruno', RUN);
    const jobId = jobIdIn(await answerToRoot(w, root.id));
    const phrase = `APPROVE job:${jobId} step:${STEP}`;
    expect(w.sandbox.requestCount({ status: 429 })).toBe(2);
    expect(logLines()).toContainEqual(
      expect.objectContaining({ call: 'getUser', kind: 'rate_limited', status: 429, waitMs: 1000 }),
    );

    // 2. Every REST call answers 503, for longer than one post's retries last (6 tries of 4
    //    calls): the thread waits for Mattermost, it neither skips nor reorders the post.
    w.sandbox.injectFault({ status: 503, times: 30 });
    const outsider = w.post('outsider', phrase, root.id);
    const alice = w.post('alice', phrase, root.id);
    await botPostWithKey(w, root.id, `reply:${alice.id}`);
    expect(w.sandbox.requestCount({ status: 503 })).toBe(30);

    // 3. Posting and reacting fail for a while: decided at once, delivered later, in order.
    w.sandbox.injectFault({ status: 503, times: 3, method: 'POST', pathPrefix: '/api/v4/posts' });
    w.sandbox.injectFault({ status: 429, times: 1, method: 'POST', pathPrefix: '/api/v4/reactions' });
    const chioma = w.post('chioma', phrase, root.id);
    const minted = await botPostWithKey(w, root.id, `job:${jobId}:minted:${STEP}`);
    expect(minted.message).toMatch(/approved by @alice .*@chioma /);
    expect(w.sandbox.requestCount({ status: 503, method: 'POST', pathPrefix: '/api/v4/posts' })).toBe(3);

    // Still alive and answering once the faults are over.
    const status = w.post('bruno', `@clawbot status job:${jobId}`, root.id);
    await botPostWithKey(w, root.id, `reply:${status.id}`);
    await b.bot.settle();
    await outboxDrained(w);
    expect(b.bot.readiness()).toEqual({ ok: true });
    expect(w.sandbox.requestCount({ status: 429, method: 'POST', pathPrefix: '/api/v4/reactions' })).toBe(1);

    // One answer per post, in the order of the posts they answer.
    expect(replyKeys(w, root.id)).toEqual([
      `reply:${root.id}`,
      `reply:${outsider.id}`,
      `reply:${alice.id}`,
      `job:${jobId}:minted:${STEP}`,
      `reply:${status.id}`,
    ]);
    await expectOutboxDeliveredOnce(w);
    for (const p of [alice, chioma])
      expect(w.sandbox.reactionsOn(p.id).map((r) => [r.user_id, r.emoji_name])).toEqual([
        [w.botUserId, 'white_check_mark'],
      ]);
    expectHandledOnce([b], [root.id, outsider.id, alice.id, chioma.id, status.id]);

    const decisions = await w.d.db
      .selectFrom('decisions')
      .select(['post_id', 'user_id', 'outcome'])
      .orderBy('id')
      .execute();
    expect(decisions).toEqual([
      { post_id: outsider.id, user_id: w.ids.outsider, outcome: 'rejected' },
      { post_id: alice.id, user_id: w.ids.alice, outcome: 'accepted' },
      { post_id: chioma.id, user_id: w.ids.chioma, outcome: 'accepted' },
    ]);
    const tokens = await w.d.db.selectFrom('tokens').select('step_id').where('job_id', '=', jobId).execute();
    expect(tokens.filter((t) => t.step_id === STEP)).toHaveLength(1);
    const chatPosts = await w.d.db.selectFrom('chat_posts').select('post_id').execute();
    expect(chatPosts.map((c) => c.post_id).sort()).toEqual(
      [root.id, outsider.id, alice.id, chioma.id, status.id].sort(),
    );
  });
});
