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
  eventually,
  jobIdIn,
  ready,
  RUN,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';

let w: World;
let b: RunningBot;

beforeEach(async () => {
  w = await createWorld();
  b = await startBot(w);
  await ready(b);
});
afterEach(async () => {
  await b.stop();
  await w.close();
});

const STEP = 'post-summary';

/** The bot's server-side WebSocket connection id, once it has exactly one open. */
function botConnection(): string | undefined {
  const conns = (w.sandbox.describe().connections as { user_id: string; connection_id: string }[]).filter(
    (c) => c.user_id === w.botUserId,
  );
  return conns.length === 1 ? conns[0]!.connection_id : undefined;
}

const catchUpRequests = () =>
  w.sandbox.requestCount({ method: 'GET', pathPrefix: `/api/v4/channels/${w.channel}/posts` });

describe(`the WebSocket dropped (${dialectName})`, () => {
  it('resumes the same connection and gets the missed events replayed, without a REST catch-up', async () => {
    const root = w.post('bruno', RUN);
    const jobId = jobIdIn(await answerToRoot(w, root.id));
    await b.bot.settle();
    const connection = await eventually(botConnection, 'one bot connection');
    const catchUps = b.bot.stats.catchUps;
    const restCatchUps = catchUpRequests();

    // Posted before the bot can even notice the drop: the server queues them for a resume.
    w.sandbox.dropConnections();
    const alice = w.post('alice', `APPROVE job:${jobId} step:${STEP}`, root.id);
    const nearMiss = w.post('chioma', `APPROVE  job:${jobId} step:${STEP}`, root.id);
    const chatter = w.post('dmitri', 'looking into it');

    await botPostWithKey(w, root.id, `reply:${alice.id}`);
    await botPostWithKey(w, root.id, `reply:${nearMiss.id}`);
    await eventually(() => b.handled.some((h) => h.post.id === chatter.id), 'the chatter seen');
    await eventually(() => b.bot.readiness().ok, 'readiness after the resume');
    await b.bot.settle();

    // Replayed by the server on the same connection: no new connection, no REST catch-up.
    expect(botConnection()).toBe(connection);
    expect(b.bot.stats.catchUps).toBe(catchUps);
    expect(catchUpRequests()).toBe(restCatchUps);
    expectHandledOnce([b], [root.id, alice.id, nearMiss.id]);
    for (const p of [alice, nearMiss, chatter])
      expect(b.handled.filter((h) => h.post.id === p.id)).toHaveLength(1);

    const chatPosts = await w.d.db.selectFrom('chat_posts').select(['post_id', 'action']).execute();
    expect(Object.fromEntries(chatPosts.map((c) => [c.post_id, c.action]))).toEqual({
      [root.id]: 'run',
      [alice.id]: 'approve:APPROVAL_COUNTED',
      [nearMiss.id]: 'near_miss',
    });
    const decisions = await w.d.db.selectFrom('decisions').select(['post_id', 'outcome']).execute();
    expect(decisions).toEqual([{ post_id: alice.id, outcome: 'accepted' }]);
    await outboxDrained(w);
    await expectOutboxDeliveredOnce(w);
    expect(replyKeys(w, root.id)).toEqual([`reply:${root.id}`, `reply:${alice.id}`, `reply:${nearMiss.id}`]);
  });

  it('after a server restart (connection ids forgotten) catches up the missed posts over REST', async () => {
    const root = w.post('bruno', RUN);
    const jobId = jobIdIn(await answerToRoot(w, root.id));
    const phrase = `APPROVE job:${jobId} step:${STEP}`;
    const alice = w.post('alice', phrase, root.id);
    await botPostWithKey(w, root.id, `reply:${alice.id}`);
    await b.bot.settle();
    const connection = await eventually(botConnection, 'one bot connection');
    const catchUps = b.bot.stats.catchUps;
    const restCatchUps = catchUpRequests();

    await w.sandbox.restart();
    // Published while the bot has no connection at all: the server has nothing to replay.
    const chioma = w.post('chioma', phrase, root.id);
    const nearMiss = w.post('dmitri', `APPROVE job:${jobId} step:${STEP} please`, root.id);
    const chatter = w.post('farid', 'is the status page down too?');
    const second = w.post('grace', RUN);

    const minted = await botPostWithKey(w, root.id, `job:${jobId}:minted:${STEP}`);
    expect(minted.message).toContain('approved by @alice (ops-oncall), @chioma (sec-reviewers)');
    await botPostWithKey(w, root.id, `reply:${nearMiss.id}`);
    await answerToRoot(w, second.id);
    await eventually(() => b.handled.some((h) => h.post.id === chatter.id), 'the chatter seen');
    await b.bot.settle();

    const now = await eventually(botConnection, 'one bot connection');
    expect(now).not.toBe(connection);
    expect(b.bot.stats.catchUps).toBeGreaterThan(catchUps);
    expect(catchUpRequests()).toBeGreaterThan(restCatchUps);
    expectHandledOnce([b], [root.id, alice.id, chioma.id, nearMiss.id, second.id]);
    // The catch-up may overlap what was already handled; nothing is acted on twice.
    for (const p of [alice, chioma, nearMiss, second])
      expect(b.handled.filter((h) => h.post.id === p.id && !(h.result instanceof Error))).not.toHaveLength(0);

    const chatPosts = await w.d.db.selectFrom('chat_posts').select(['post_id', 'action']).execute();
    expect(Object.fromEntries(chatPosts.map((c) => [c.post_id, c.action]))).toEqual({
      [root.id]: 'run',
      [alice.id]: 'approve:APPROVAL_COUNTED',
      [chioma.id]: 'approve:QUORUM_MET',
      [nearMiss.id]: 'near_miss',
      [second.id]: 'run',
    });
    const tokens = await w.d.db
      .selectFrom('tokens')
      .select('jti')
      .where('job_id', '=', jobId)
      .where('step_id', '=', STEP)
      .execute();
    expect(tokens).toHaveLength(1);
    expect(await w.d.db.selectFrom('decisions').select('post_id').orderBy('id').execute()).toEqual([
      { post_id: alice.id },
      { post_id: chioma.id },
    ]);
    await outboxDrained(w);
    await expectOutboxDeliveredOnce(w);
    expect(replyKeys(w, root.id)).toEqual([
      `reply:${root.id}`,
      `reply:${alice.id}`,
      `job:${jobId}:minted:${STEP}`,
      `reply:${nearMiss.id}`,
    ]);
  });

  it('retries a catch-up that REST refused, until the missed posts are in', async () => {
    const root = w.post('bruno', RUN);
    const jobId = jobIdIn(await answerToRoot(w, root.id));
    await b.bot.settle();
    const catchUps = b.bot.stats.catchUps;

    // The server comes back, but its REST API still answers 503 to the first catch-up requests.
    const path = `/api/v4/channels/${w.channel}/posts`;
    w.sandbox.injectFault({ status: 503, times: 8, method: 'GET', pathPrefix: path });
    await w.sandbox.restart();
    const alice = w.post('alice', `APPROVE job:${jobId} step:${STEP}`, root.id);

    await botPostWithKey(w, root.id, `reply:${alice.id}`);
    expect(w.sandbox.requestCount({ method: 'GET', pathPrefix: path, status: 503 })).toBe(8);
    expect(b.bot.stats.catchUps).toBeGreaterThan(catchUps + 1);
    await b.bot.settle();
    expectHandledOnce([b], [root.id, alice.id]);
    expect(await w.d.db.selectFrom('decisions').select(['post_id', 'outcome']).execute()).toEqual([
      { post_id: alice.id, outcome: 'accepted' },
    ]);
    await outboxDrained(w);
    await expectOutboxDeliveredOnce(w);
  });
});
