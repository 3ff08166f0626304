import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  answerToRoot,
  botPostWithKey,
  expectHandledOnce,
  expectOutboxDeliveredOnce,
  outboxDrained,
  outcomes,
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

let w: World;
let bots: RunningBot[];

beforeEach(async () => {
  w = await createWorld();
  bots = [await startBot(w), await startBot(w)];
  await Promise.all(bots.map((b) => ready(b)));
});
afterEach(async () => {
  for (const b of bots) await b.stop();
  await w.close();
});

const STEP = 'post-summary';

describe(`two bot instances on one database (${dialectName})`, () => {
  it('give one plan per request, one answer per post and one token per step, with approvals posted concurrently', async () => {
    expect(w.sandbox.connectionCount(w.botUserId)).toBe(2);
    const requesters = ['bruno', 'farid', 'grace'] as const;
    const roots = requesters.map((who) => w.post(who, RUN));
    const plans = await Promise.all(roots.map((r) => answerToRoot(w, r.id)));
    const jobIds = plans.map(jobIdIn);
    expect(new Set(jobIds).size).toBe(3);

    // Every approval of every job at once, plus a refused one per thread.
    const approvals = roots.flatMap((root, i) => {
      const phrase = `APPROVE job:${jobIds[i]!} step:${STEP}`;
      return [
        w.post('alice', phrase, root.id),
        w.post('chioma', phrase, root.id),
        w.post('outsider', phrase, root.id),
      ];
    });
    await Promise.all(roots.map((root, i) => botPostWithKey(w, root.id, `job:${jobIds[i]!}:minted:${STEP}`)));
    const refused = approvals.filter((a) => a.user_id === w.ids.outsider);
    await Promise.all(refused.map((a) => botPostWithKey(w, a.root_id, `reply:${a.id}`)));
    await Promise.all(bots.map((b) => b.bot.settle()));
    await outboxDrained(w);

    // Both instances saw every post; exactly one acted on it, the other found it done.
    const userPosts = [...roots, ...approvals];
    expectHandledOnce(
      bots,
      userPosts.map((p) => p.id),
    );
    for (const p of userPosts) {
      const seen = outcomes(bots, p.id);
      expect(seen.filter((o) => o !== 'error').sort(), `post ${p.id}`).toEqual(['duplicate', 'handled']);
    }

    // Database: one job per request, one token per step, one decision per approval post.
    const jobs = await w.d.db.selectFrom('jobs').select(['id', 'root_post_id']).orderBy('id').execute();
    expect(jobs.map((j) => j.root_post_id).sort()).toEqual(roots.map((r) => r.id).sort());
    const tokens = await w.d.db.selectFrom('tokens').select(['job_id', 'step_id']).execute();
    const perStep = new Map<string, number>();
    for (const t of tokens)
      perStep.set(`${t.job_id}/${t.step_id}`, (perStep.get(`${t.job_id}/${t.step_id}`) ?? 0) + 1);
    expect([...perStep.values()].every((n) => n === 1)).toBe(true);
    for (const id of jobIds) expect(perStep.get(`${id}/${STEP}`)).toBe(1);
    const decisions = await w.d.db.selectFrom('decisions').select(['post_id', 'outcome']).execute();
    expect(decisions.map((d) => d.post_id).sort()).toEqual(approvals.map((a) => a.id).sort());
    const byPost = Object.fromEntries(decisions.map((d) => [d.post_id, d.outcome]));
    for (const a of approvals)
      expect(byPost[a.id]).toBe(a.user_id === w.ids.outsider ? 'rejected' : 'accepted');
    const chatPosts = await w.d.db.selectFrom('chat_posts').select('post_id').execute();
    expect(chatPosts.map((c) => c.post_id).sort()).toEqual(userPosts.map((p) => p.id).sort());

    // Mattermost: every answer once; each thread has its plan first and one mint announcement.
    await expectOutboxDeliveredOnce(w);
    roots.forEach((root, i) => {
      const keys = replyKeys(w, root.id);
      const [alice, chioma, outsider] = approvals.filter((a) => a.root_id === root.id);
      expect(keys).toHaveLength(4);
      expect(keys[0]).toBe(`reply:${root.id}`);
      expect(keys).toContain(`reply:${outsider!.id}`);
      expect(keys).toContain(`job:${jobIds[i]!}:minted:${STEP}`);
      // The first of the two approvals is answered "counted"; the second by the mint announcement.
      const counted = [`reply:${alice!.id}`, `reply:${chioma!.id}`].filter((k) => keys.includes(k));
      expect(counted).toHaveLength(1);
      // Whichever replica delivers them, they appear in the order they were decided.
      expect(keys.indexOf(counted[0]!)).toBeLessThan(keys.indexOf(`job:${jobIds[i]!}:minted:${STEP}`));
    });
  });
});
