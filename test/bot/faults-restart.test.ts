import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OUTBOX_KEY_PROP } from '../../src/chat/outbox-delivery.js';
import {
  answerToRoot,
  botPostWithKey,
  expectHandledOnce,
  expectOutboxDeliveredOnce,
  killBot,
  outboxDrained,
  outcomes,
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
const bots: RunningBot[] = [];

beforeEach(async () => {
  w = await createWorld();
});
afterEach(async () => {
  for (const b of bots.splice(0)) await b.stop();
  await w.close();
});

async function bot(): Promise<RunningBot> {
  const b = await startBot(w);
  bots.push(b);
  await ready(b);
  return b;
}

const STEP = 'post-summary';

async function outboxRow(key: string) {
  return w.d.db.selectFrom('outbox').selectAll().where('dedupe_key', '=', key).executeTakeFirst();
}

describe(`the bot killed mid-job and restarted (${dialectName})`, () => {
  it('handles what was posted while it was down exactly once, keeps the acknowledged approval, and delivers undelivered replies once', async () => {
    const first = await bot();
    const root = w.post('bruno', RUN);
    const jobId = jobIdIn(await answerToRoot(w, root.id));
    const phrase = `APPROVE job:${jobId} step:${STEP}`;

    // Acknowledged before the crash: reaction and "counted" reply are in Mattermost.
    const alice = w.post('alice', phrase, root.id);
    await botPostWithKey(w, root.id, `reply:${alice.id}`);
    await eventually(
      () => w.sandbox.reactionsOn(alice.id).some((r) => r.emoji_name === 'white_check_mark'),
      "the reaction on alice's approval",
    );

    // Mattermost refuses new posts: the answer to the outsider is decided, committed, and stuck.
    w.sandbox.injectFault({ status: 503, forMs: 120_000, method: 'POST', pathPrefix: '/api/v4/posts' });
    const outsider = w.post('outsider', phrase, root.id);
    const stuck = await eventually(async () => {
      const row = await outboxRow(`reply:${outsider.id}`);
      return row && row.attempts >= 1 && row.last_error ? row : undefined;
    }, 'a failed delivery of the answer to the outsider');
    expect(stuck.delivered_at).toBeNull();
    await killBot(first);
    const decidedBeforeKill = await w.d.db.selectFrom('decisions').select('post_id').execute();
    expect(decidedBeforeKill.map((d) => d.post_id).sort()).toEqual([alice.id, outsider.id].sort());

    // While it is down: the completing approval, a near miss, chatter, and a new request.
    const dmitri = w.post('dmitri', phrase, root.id);
    const nearMiss = w.post('grace', `approve job:${jobId} step:${STEP}`, root.id);
    const chatter = w.post('alice', 'thanks, watching the dashboards meanwhile', root.id);
    const topChatter = w.post('farid', 'anyone up for lunch?');
    const second = w.post('farid', RUN);
    w.sandbox.clearFaults();

    const restarted = await bot();
    const minted = await botPostWithKey(w, root.id, `job:${jobId}:minted:${STEP}`);
    expect(minted.message).toContain('approved by @alice (ops-oncall), @dmitri (sec-reviewers)');
    const nearMissReply = await botPostWithKey(w, root.id, `reply:${nearMiss.id}`);
    expect(nearMissReply.message).toContain(`\`${phrase}\``);
    await botPostWithKey(w, root.id, `reply:${outsider.id}`);
    const secondPlan = await answerToRoot(w, second.id);
    expect(jobIdIn(secondPlan)).not.toBe(jobId);
    await eventually(
      () => w.sandbox.reactionsOn(dmitri.id).some((r) => r.emoji_name === 'white_check_mark'),
      "the reaction on dmitri's approval",
    );
    await restarted.bot.settle();
    await outboxDrained(w);

    // The restarted bot learnt of the missed posts over REST, and acted on each once.
    expect(restarted.bot.stats.catchUps).toBeGreaterThan(0);
    for (const p of [dmitri, nearMiss, chatter, topChatter, second])
      expect(restarted.handled.map((h) => h.post.id)).toContain(p.id);
    expectHandledOnce(
      [first, restarted],
      [root.id, alice.id, outsider.id, dmitri.id, nearMiss.id, second.id],
    );
    for (const p of [chatter, topChatter])
      expect(new Set(outcomes([first, restarted], p.id))).toEqual(new Set(['ignored']));

    // Database: one row per acted-on post, chatter not recorded; the approval made before the
    // crash still counts; one token for the gated step; one job per request.
    const chatPosts = await w.d.db.selectFrom('chat_posts').select(['post_id', 'action']).execute();
    expect(Object.fromEntries(chatPosts.map((c) => [c.post_id, c.action]))).toEqual({
      [root.id]: 'run',
      [alice.id]: 'approve:APPROVAL_COUNTED',
      [outsider.id]: 'approve:ERR_NOT_ELIGIBLE',
      [dmitri.id]: 'approve:QUORUM_MET',
      [nearMiss.id]: 'near_miss',
      [second.id]: 'run',
    });
    const decisions = await w.d.db
      .selectFrom('decisions')
      .select(['post_id', 'user_id', 'outcome', 'withdrawn_at'])
      .where('job_id', '=', jobId)
      .orderBy('id')
      .execute();
    expect(decisions).toEqual([
      { post_id: alice.id, user_id: w.ids.alice, outcome: 'accepted', withdrawn_at: null },
      { post_id: outsider.id, user_id: w.ids.outsider, outcome: 'rejected', withdrawn_at: null },
      { post_id: dmitri.id, user_id: w.ids.dmitri, outcome: 'accepted', withdrawn_at: null },
    ]);
    const tokens = await w.d.db
      .selectFrom('tokens')
      .select('jti')
      .where('job_id', '=', jobId)
      .where('step_id', '=', STEP)
      .execute();
    expect(tokens).toHaveLength(1);
    expect(minted.message).toContain(tokens[0]!.jti);
    expect(await w.d.db.selectFrom('jobs').select('root_post_id').orderBy('id').execute()).toEqual([
      { root_post_id: root.id },
      { root_post_id: second.id },
    ]);

    // Mattermost: no reply said twice, and they came in the order of the posts they answer.
    await expectOutboxDeliveredOnce(w);
    expect(replyKeys(w, root.id)).toEqual([
      `reply:${root.id}`,
      `reply:${alice.id}`,
      `reply:${outsider.id}`,
      `job:${jobId}:minted:${STEP}`,
      `reply:${nearMiss.id}`,
    ]);
    expect(replyKeys(w, second.id)).toEqual([`reply:${second.id}`]);
    const stuckNow = await outboxRow(`reply:${outsider.id}`);
    expect(stuckNow!.attempts).toBeGreaterThan(stuck.attempts);
  });

  it('does not post again a reply that was created but not marked delivered when the bot died', async () => {
    const first = await bot();
    const root = w.post('bruno', RUN);
    const plan = await answerToRoot(w, root.id);
    const key = `reply:${root.id}`;
    expect(plan.props[OUTBOX_KEY_PROP]).toBe(key);
    const row = await eventually(async () => {
      const r = await outboxRow(key);
      return r?.delivered_at ? r : undefined;
    }, 'the plan marked delivered');
    expect(row.delivered_post_id).toBe(plan.id);
    await killBot(first);

    // As if the process died between Mattermost's 201 and the commit of markDelivered: the row
    // is still leased by the dead process, and the lease has run out.
    await w.d.db
      .updateTable('outbox')
      .set({ delivered_at: null, delivered_post_id: null, lease_until: new Date(Date.now() - 1_000) })
      .where('id', '=', row.id)
      .execute();
    const created = () =>
      w.sandbox.requestCount({ method: 'POST', pathPrefix: '/api/v4/posts', status: 201 });
    const createdBefore = created();

    const restarted = await bot();
    const redelivered = await eventually(async () => {
      const r = await outboxRow(key);
      return r?.delivered_at ? r : undefined;
    }, 'the row delivered again');
    expect(redelivered.delivered_post_id).toBe(plan.id);
    expect(redelivered.attempts).toBe(row.attempts + 1);
    await restarted.bot.settle();
    expect(created()).toBe(createdBefore);
    expect(w.botReplies(root.id).map((p) => p.id)).toEqual([plan.id]);
    await expectOutboxDeliveredOnce(w);
  });
});
