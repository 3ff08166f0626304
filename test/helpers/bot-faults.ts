import { renderStatusPost } from '../../src/presenter/chat-presenter.js';
import { expect } from 'vitest';
import { OUTBOX_KEY_PROP } from '../../src/chat/outbox-delivery.js';
import { eventually, type RunningBot, type World } from './bot-world.js';

/** The parts of a running bot a crash takes away; read from its private fields. */
interface BotInternals {
  stopped: boolean;
  cursorTimer: NodeJS.Timeout | null;
  retryTimer?: NodeJS.Timeout | null;
  socket: { stop(): Promise<void> };
  delivery: { stop(): Promise<void> } | null;
}

/**
 * Kills a bot as a crash would, not as `stop()` does: the WebSocket is cut, outbox delivery and
 * every timer stop, and nothing is drained — queued posts are not waited for, undelivered outbox
 * rows stay undelivered, and the catch-up cursors are not saved. Work already in flight (a
 * handling transaction, one send) completes or not, like a process killed just after or just
 * before it. Tests kill at a quiet moment so that what is "in flight" is what they arranged.
 */
export async function killBot(b: RunningBot): Promise<void> {
  const inside = b.bot as unknown as BotInternals;
  if (typeof inside.stopped !== 'boolean' || !inside.socket || typeof inside.socket.stop !== 'function')
    throw new Error('MattermostBot internals changed: update killBot');
  inside.stopped = true;
  if (inside.cursorTimer) clearInterval(inside.cursorTimer);
  if (inside.retryTimer) clearTimeout(inside.retryTimer);
  await inside.socket.stop();
  await inside.delivery?.stop();
}

/** Outcomes per post id over every bot that saw it. */
export function outcomes(bots: RunningBot[], postId: string): string[] {
  return bots.flatMap((b) =>
    b.handled
      .filter((h) => h.post.id === postId)
      .map((h) => (h.result instanceof Error ? 'error' : h.result.outcome)),
  );
}

/** Each post was acted on exactly once, by whichever bot saw it first. */
export function expectHandledOnce(bots: RunningBot[], postIds: string[]): void {
  for (const id of postIds)
    expect(
      outcomes(bots, id).filter((o) => o === 'handled'),
      `post ${id}`,
    ).toHaveLength(1);
}

/**
 * Every outbox row is delivered, and delivered once: each post row is exactly one bot post in
 * Mattermost (found by its outbox-key prop, the one the row recorded), each reaction row one
 * reaction; and the bot posted nothing that is not an outbox row.
 */
export async function expectOutboxDeliveredOnce(w: World): Promise<void> {
  const rows = await w.d.db.selectFrom('outbox').selectAll().orderBy('id').execute();
  expect(rows.length).toBeGreaterThan(0);
  const botPosts = [w.channel, w.otherChannel]
    .flatMap((c) => w.sandbox.postsIn(c, { includeDeleted: true }))
    .filter((p) => p.user_id === w.botUserId);
  for (const row of rows) {
    expect(row, `outbox row ${row.dedupe_key}`).toMatchObject({ failed_at: null });
    expect(row.delivered_at, `outbox row ${row.dedupe_key}`).not.toBeNull();
    if (row.kind === 'post') {
      const sent = botPosts.filter((p) => p.props[OUTBOX_KEY_PROP] === row.dedupe_key);
      expect(
        sent.map((p) => p.id),
        `bot posts for ${row.dedupe_key}`,
      ).toEqual([row.delivered_post_id]);
      expect(sent[0]!.root_id).toBe(row.root_id ?? '');
    } else if (row.kind === 'patch') {
      // The status post was edited to the job's state as it is now: no change was lost.
      const target = botPosts.filter((p) => p.props[OUTBOX_KEY_PROP] === row.target_key);
      expect(target, `status post of ${row.dedupe_key}`).toHaveLength(1);
      const now = await renderStatusPost(w.d.db, row.job_id!, 'https://claw.example.test');
      expect(row.message, `status post of ${row.dedupe_key}`).toBe(now?.message);
    } else {
      const reactions = w.sandbox
        .reactionsOn(row.target_post_id!)
        .filter((r) => r.user_id === w.botUserId && r.emoji_name === row.emoji);
      expect(reactions, `reaction ${row.dedupe_key}`).toHaveLength(1);
    }
  }
  const keys = botPosts.map((p) => String(p.props[OUTBOX_KEY_PROP]));
  expect(new Set(keys).size, 'one bot post per outbox key').toBe(keys.length);
  expect(keys.sort()).toEqual(
    rows
      .filter((r) => r.kind === 'post')
      .map((r) => r.dedupe_key)
      .sort(),
  );
}

/** The bot's posts in a thread, oldest first, as their outbox keys. */
export function replyKeys(w: World, rootId: string): string[] {
  return w.botReplies(rootId).map((p) => String(p.props[OUTBOX_KEY_PROP]));
}

/** Waits for the bot's post in a thread that carries this outbox key (e.g. `reply:<post id>`). */
export function botPostWithKey(w: World, rootId: string, key: string) {
  return eventually(
    () => w.botReplies(rootId).find((p) => p.props[OUTBOX_KEY_PROP] === key),
    `the bot's post ${key}`,
  );
}

/**
 * Waits for the bot's answer to the post that starts thread `rootId`: its `reply:<post id>`, or,
 * when the post requested a job, that job's plan post (outbox key `job:<n>:plan`) in the thread.
 */
export function answerToRoot(w: World, rootId: string) {
  return eventually(
    () =>
      w
        .botReplies(rootId)
        .find(
          (p) =>
            p.props[OUTBOX_KEY_PROP] === `reply:${rootId}` ||
            /^job:\d+:plan$/.test(String(p.props[OUTBOX_KEY_PROP])),
        ),
    `the bot's answer to ${rootId}`,
  );
}

/** Resolves once every outbox row is delivered (or has failed for good). */
export function outboxDrained(w: World): Promise<boolean> {
  return eventually(async () => {
    const left = await w.d.db
      .selectFrom('outbox')
      .select('id')
      .where('delivered_at', 'is', null)
      .where('failed_at', 'is', null)
      .execute();
    return left.length === 0;
  }, 'an empty outbox');
}
