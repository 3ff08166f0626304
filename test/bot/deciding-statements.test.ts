import { afterEach, expect, it } from 'vitest';
import { handlePost } from '../../src/bot/handle-post.js';
import { approve, answerTo, requestJob } from '../helpers/bot-thread.js';
import { createWorld, ready, type RunningBot, startBot, type World } from '../helpers/bot-world.js';
import { silentLogger } from '../helpers/log.js';
import { counted } from '../helpers/statements.js';

let w: World;
let b: RunningBot;
afterEach(async () => {
  await b.stop();
  await w.close();
});

// Issue 13: the deciding APPROVE in the bot, counted in statements (BEGIN and COMMIT aside): the
// post's lock, then its read with the decision's unlocked read (2), the savepoint (1), the job's
// lock, its state and the write (3), the mint's reply with the status post's re-arming (1), and
// the post remembered with the bot's reaction (1).
it('a deciding APPROVE handled by the bot takes 8 statements, and writes all it wrote in more', async () => {
  w = await createWorld();
  b = await startBot(w);
  await ready(b);
  const { root, jobId } = await requestJob(w, 'bruno');
  const first = w.post('alice', approve(jobId), root.id);
  expect((await answerTo(w, first)).message).toContain('counted');
  await b.stop();

  // The bot is stopped: the deciding post is handled here, once, with its statements counted.
  const deciding = w.post('chioma', approve(jobId), root.id);
  const statusVersion = async () =>
    (
      await w.d.db
        .selectFrom('outbox')
        .select('version')
        .where('dedupe_key', '=', `status:${jobId}`)
        .executeTakeFirstOrThrow()
    ).version;
  const before = await statusVersion();
  const c = counted(b.engine);
  const handled = await handlePost(
    { engine: c.ctx, chat: b.rest, bot: b.bot.user!, log: silentLogger() },
    deciding,
  );
  expect(handled).toEqual({ outcome: 'handled', action: 'QUORUM_MET', jobId });
  expect(c.statements()).toBe(8);

  const outbox = await w.d.db
    .selectFrom('outbox')
    .select(['dedupe_key', 'kind', 'emoji', 'target_post_id', 'delivered_at'])
    .where('job_id', '=', jobId)
    .execute();
  const row = (key: string) => outbox.find((r) => r.dedupe_key === key);
  expect(row(`job:${jobId}:minted:post-summary`)).toMatchObject({ kind: 'post' });
  // Re-armed by the reply's statement (the first approval's edit may be pending still: the version says).
  expect(await statusVersion()).toBe(before + 1);
  expect(row(`status:${jobId}`)).toMatchObject({ kind: 'patch', delivered_at: null });
  expect(row(`react:${deciding.id}:white_check_mark`)).toMatchObject({
    kind: 'reaction',
    emoji: 'white_check_mark',
    target_post_id: deciding.id,
  });
  const seen = await w.d.db
    .selectFrom('chat_posts')
    .select(['action', 'job_id'])
    .where('post_id', '=', deciding.id)
    .executeTakeFirstOrThrow();
  expect(seen).toEqual({ action: 'approve:QUORUM_MET', job_id: jobId });
});
