import { afterEach, expect, it } from 'vitest';
import { handlePost } from '../../src/bot/handle-post.js';
import { createWorld, RUN, type RunningBot, startBot, type World } from '../helpers/bot-world.js';
import { silentLogger } from '../helpers/log.js';

let w: World;
let b: RunningBot;
afterEach(async () => {
  await b.stop();
  await w.close();
});

// Fail closed, and leave nothing behind: if the pinned policy cannot be re-verified when the
// job's auto steps are minted (after the job rows were written), the request is refused and
// no job, step, token or event survives.
it('a run refused after createJob wrote its rows leaves no job behind and says why', async () => {
  w = await createWorld();
  b = await startBot(w, { start: false });
  const distrusting = { ...b.engine, keyRing: { ...b.engine.keyRing, trusts: () => false } };
  const post = w.post('bruno', RUN);
  const deps = {
    engine: distrusting,
    chat: b.rest,
    bot: { id: w.botUserId, username: 'clawbot', is_bot: true, delete_at: 0 },
    log: silentLogger(),
  };
  const result = await handlePost(deps, post);
  expect(result).toMatchObject({ outcome: 'handled', action: 'run:ERR_POLICY_UNAVAILABLE', jobId: null });
  for (const table of ['jobs', 'job_steps', 'tokens', 'job_events'] as const) {
    const rows = await w.d.db.selectFrom(table).selectAll().execute();
    expect(rows, table).toHaveLength(0);
  }
  const answer = await w.d.db
    .selectFrom('outbox')
    .selectAll()
    .where('dedupe_key', '=', `reply:${post.id}`)
    .executeTakeFirstOrThrow();
  expect(answer.message).toContain('no job');
  expect(answer.message).toContain('ERR_POLICY_UNAVAILABLE');
  const seen = await w.d.db.selectFrom('chat_posts').selectAll().where('post_id', '=', post.id).execute();
  expect(seen).toHaveLength(1);
});
