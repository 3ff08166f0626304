import { expect } from 'vitest';
import type { Handled } from '../../src/bot/handle-post.js';
import type { ChatPost } from '../../src/chat/chat-port.js';
import { OUTBOX_KEY_PROP } from '../../src/chat/outbox-delivery.js';
import { eventually, jobIdIn, RUN, type Person, type RunningBot, type World } from './bot-world.js';

/** The gated step of `service-context` in policies/mattermost-agent-prod.json. */
export const GATED = 'post-summary';
export const AUTO_STEPS = ['search-kb', 'read-runbook', 'fetch-status'];

export const approve = (jobId: number, step = GATED) => `APPROVE job:${jobId} step:${step}`;

/**
 * groups.json delegates part of `security` to the members of the private channel 5xcnr99…;
 * a deployment that follows the README has it, with the bot in it so it can check membership.
 */
export const SECURITY_CHANNEL = '5xcnr99t1annwkxri4w1b9a75b';
export function createSecurityChannel(w: World, members: string[] = []): void {
  const sec = w.sandbox.createChannel({
    id: SECURITY_CHANNEL,
    team_id: w.team,
    name: 'security-response',
    type: 'P',
  });
  for (const id of [w.botUserId, ...members]) w.sandbox.addChannelMember(sec.id, id);
}

/** `@clawbot run …` in the allowlisted channel; resolves with the thread and its plan post. */
export async function requestJob(
  w: World,
  who: Person = 'bruno',
): Promise<{ root: ChatPost; plan: ChatPost; jobId: number }> {
  const root = w.post(who, RUN);
  const plan = await answerTo(w, root);
  expect(plan.message).toContain('Plan for job:');
  return { root, plan, jobId: jobIdIn(plan) };
}

/** Every post of the bot in a channel (thread replies included), oldest first. */
export function botPosts(w: World, channelId = w.channel): ChatPost[] {
  return w.sandbox.postsIn(channelId).filter((p) => p.user_id === w.botUserId);
}

/**
 * The bot's first answer to `post`, once delivered: the reply its outbox key names, or, for a
 * `run` that made a job, the job's plan post in the thread the run started.
 */
export function answerTo(w: World, post: ChatPost, channelId = post.channel_id): Promise<ChatPost> {
  const plan = /^job:\d+:plan$/;
  return eventually(
    () =>
      botPosts(w, channelId).find(
        (p) =>
          p.props[OUTBOX_KEY_PROP] === `reply:${post.id}` ||
          (p.root_id === post.id && plan.test(String(p.props[OUTBOX_KEY_PROP]))),
      ),
    `the bot's answer to "${post.message.slice(0, 60)}"`,
  );
}

/** A bot post in the thread that contains `text`. */
export function botSays(w: World, rootId: string, text: string): Promise<ChatPost> {
  return eventually(
    () => w.botReplies(rootId).find((p) => p.message.includes(text)),
    `a bot reply containing "${text}"`,
  );
}

/** How the bot handled `postId` (the `nth` time it saw it, counting from 1). */
export function handledOf(b: RunningBot, postId: string, nth = 1): Promise<Handled> {
  return eventually(() => {
    const seen = b.handled.filter((h) => h.post.id === postId);
    const h = seen[nth - 1];
    if (!h) return null;
    if (h.result instanceof Error) throw h.result;
    return h.result;
  }, `the bot to handle post ${postId} (${nth})`);
}

/** Whether the bot's reaction `emoji` is on `postId`. */
export function reacted(w: World, postId: string, emoji: string): boolean {
  return w.sandbox.reactionsOn(postId).some((r) => r.user_id === w.botUserId && r.emoji_name === emoji);
}

export async function decisionsOn(w: World, postId: string) {
  return w.d.db.selectFrom('decisions').selectAll().where('post_id', '=', postId).execute();
}

export async function tokensOf(w: World, jobId: number, step = GATED) {
  return w.d.db
    .selectFrom('tokens')
    .selectAll()
    .where('job_id', '=', jobId)
    .where('step_id', '=', step)
    .execute();
}

export async function jobRow(w: World, jobId: number) {
  return w.d.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow();
}

export async function chatPostRow(w: World, postId: string) {
  return w.d.db.selectFrom('chat_posts').selectAll().where('post_id', '=', postId).executeTakeFirst();
}

/** Outbox rows (queued replies and reactions) that are about `postId`. */
export async function outboxAbout(w: World, postId: string) {
  const rows = await w.d.db.selectFrom('outbox').selectAll().execute();
  return rows.filter((r) => r.target_post_id === postId || r.dedupe_key.includes(postId));
}

/** The bot says nothing about `postId`: no queued row, no reaction, no delivered post. */
export async function expectSilenceAbout(w: World, postId: string): Promise<void> {
  expect(await outboxAbout(w, postId)).toEqual([]);
  expect(w.sandbox.reactionsOn(postId)).toEqual([]);
  expect(botPosts(w).filter((p) => String(p.props[OUTBOX_KEY_PROP] ?? '').includes(postId))).toEqual([]);
}

/**
 * Nothing about this refused post changed the job: a rejected decision with `code`, the job
 * still open, no token for the gated step.
 */
export async function expectRejected(w: World, postId: string, code: string, jobId?: number): Promise<void> {
  const rows = await decisionsOn(w, postId);
  expect(rows).toHaveLength(1);
  expect(rows[0]).toMatchObject({ outcome: 'rejected', reason_code: code });
  if (jobId !== undefined) {
    expect((await jobRow(w, jobId)).status).toBe('open');
    expect(await tokensOf(w, jobId)).toEqual([]);
  }
}

/** An approval that counted: accepted, not withdrawn. */
export async function countedApprovals(w: World, jobId: number, step = GATED) {
  return w.d.db
    .selectFrom('decisions')
    .selectAll()
    .where('job_id', '=', jobId)
    .where('step_id', '=', step)
    .where('kind', '=', 'approve')
    .where('outcome', '=', 'accepted')
    .where('withdrawn_at', 'is', null)
    .execute();
}
