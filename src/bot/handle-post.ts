import { type QueryCreator, sql } from 'kysely';
import type { Logger } from 'pino';
import { type ChatPort, type ChatPost, type ChatUser, threadOf } from '../chat/chat-port.js';
import { complaintsSince, enqueuePost, enqueueReaction, moveToBack } from '../chat/outbox.js';
import { confirmRequester } from '../approvals/confirm-requester.js';
import { withdrawConfirmationOfPost } from '../approvals/requester-confirmation.js';
import {
  decideStep,
  type DecisionOutcome,
  type PostContext,
  withdrawApproval,
} from '../approvals/record-decision.js';
import type { Db } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { EngineContext } from '../jobs/context.js';
import { type DecisionNeedsState, decisionNeedsJson, decisionNeedsOf } from '../jobs/job-state.js';
import { createJob } from '../jobs/create-job.js';
import { jobView } from '../jobs/job-view.js';
import { endJobByCommand } from '../jobs/revoke-job.js';
import { setPaused } from '../jobs/kill-switch.js';
import {
  approvalCountedMessage,
  confirmedMessage,
  deniedMessage,
  helpMessage,
  nearMissMessage,
  noJobMessage,
  notUnderstoodMessage,
  pauseMessage,
  refusalMessage,
  revokedMessage,
  statusMessage,
  tooLongMessage,
  withdrawnMessage,
} from '../presenter/messages.js';
import { endedPostKey } from '../presenter/chat-presenter.js';
import { mention } from '../chat/mention-token.js';
import { type BotCommand, type Intent, routePost } from './route-post.js';

export interface HandlerDeps {
  engine: EngineContext;
  chat: ChatPort;
  bot: ChatUser;
  log: Logger;
  /** Answers to refused input per user per minute; beyond it the bot stays silent (still records). */
  complaintsPerMinute?: number;
}

export type Handled =
  | { outcome: 'ignored'; why: string }
  | { outcome: 'duplicate' }
  | {
      outcome: 'handled';
      action: string;
      jobId: number | null;
      /** Other jobs the post changed (a pause touches every open job): their waiters are woken too. */
      alsoChanged?: number[];
    };

interface Seen {
  edit_at: number;
  delete_at: number;
}

/** A reply in the post's thread, queued in the deciding transaction. */
class Replies {
  constructor(
    private readonly trx: Db,
    private readonly deps: HandlerDeps,
    private readonly post: ChatPost,
    private readonly at: Date,
  ) {}

  get thread(): string {
    return threadOf(this.post);
  }

  async say(
    key: string,
    message: string,
    jobId: number | null,
    props: Record<string, string> = {},
  ): Promise<void> {
    await this.enqueue(key, message, jobId, props);
  }

  private async enqueue(
    key: string,
    message: string,
    jobId: number | null,
    props: Record<string, string>,
    complaintUserId?: string,
  ): Promise<void> {
    await enqueuePost(
      this.trx,
      {
        key,
        jobId,
        channelId: this.post.channel_id,
        rootId: this.thread,
        message,
        props: jobId !== null ? { claw_job_id: `job:${jobId}`, ...props } : props,
        ...(complaintUserId ? { complaintUserId } : {}),
      },
      this.at,
    );
  }

  /** An answer to refused input: rate-limited per user, so a flood cannot make the bot spam. */
  complain(key: string, message: string, emoji = 'x'): Promise<boolean> {
    return this.limited(key, message, { emoji });
  }

  /**
   * An answer anyone can ask for as often as they like (refusals, help, status): at most
   * `complaintsPerMinute` per user. Beyond it the bot stays silent; the post is still recorded.
   */
  async limited(
    key: string,
    message: string,
    opts: { emoji?: string; jobId?: number | null } = {},
  ): Promise<boolean> {
    const limit = this.deps.complaintsPerMinute ?? 5;
    // One user's posts in several threads are handled concurrently: count and write under one lock.
    await sql`select pg_advisory_xact_lock(hashtextextended(${`complaints:${this.post.user_id}`}, 0))`.execute(
      this.trx,
    );
    const recent = await complaintsSince(this.trx, this.post.user_id, new Date(this.at.getTime() - 60_000));
    if (recent >= limit) {
      this.deps.log.info(
        { userId: this.post.user_id, postId: this.post.id },
        'answer suppressed by the flood limit',
      );
      return false;
    }
    await this.enqueue(key, message, opts.jobId ?? null, {}, this.post.user_id);
    if (opts.emoji) await this.react(opts.emoji, null);
    return true;
  }

  async react(
    emoji: string,
    jobId: number | null,
    builder: QueryCreator<Database> = this.trx,
  ): Promise<void> {
    await enqueueReaction(
      this.trx,
      {
        key: `react:${this.post.id}:${emoji}`,
        jobId,
        channelId: this.post.channel_id,
        postId: this.post.id,
        emoji,
      },
      this.at,
      builder,
    );
  }
}

/** Where a post was made, as the engine checks it against the job's thread. */
function postContext(post: ChatPost): PostContext {
  return { postId: post.id, channelId: post.channel_id, rootId: threadOf(post) };
}

/**
 * Takes the post's lock, then reads whether it was handled. `decision`: a step decision the post
 * makes, whose needs (see `decideStep`) are read in the same statement.
 */
async function lockPost(
  trx: Db,
  postId: string,
  decision?: { jobId: number; stepId: string },
): Promise<{ seen: Seen | null; needsRead?: { state: DecisionNeedsState | undefined } }> {
  // The same lock decideStep takes: one replica handles a post, the other sees it handled.
  // Two statements, not one: a statement reads the snapshot taken when it began, before it
  // waited for the lock, so the row the other replica committed meanwhile would go unseen.
  await sql`select pg_advisory_xact_lock(hashtextextended(${postId}, 0))`.execute(trx);
  const { rows } = await sql<{ edit_at: unknown; delete_at: unknown; needs: unknown }>`
    select p.edit_at, p.delete_at, ${decision ? decisionNeedsJson(decision) : sql`null`} as needs
      from (select 1) as one left join chat_posts p on p.post_id = ${postId}`.execute(trx);
  const row = rows[0]!;
  return {
    seen: row.edit_at === null ? null : { edit_at: Number(row.edit_at), delete_at: Number(row.delete_at) },
    ...(decision ? { needsRead: { state: decisionNeedsOf(row.needs) } } : {}),
  };
}

/** The step decision a post makes, if it makes one: its needs are read with the post's lock. */
function stepDecisionOf(intent: Intent): { jobId: number; stepId: string } | undefined {
  if (intent.kind !== 'decision') return undefined;
  const c = intent.command;
  return c.kind === 'approve' || c.kind === 'deny' ? { jobId: c.jobId, stepId: c.step } : undefined;
}

/** The bot's reaction to an accepted command, or null: it reacts to what it acted on. */
function acceptedReaction(outcome: DecisionOutcome, kind: string): string | null {
  if (!outcome.accepted) return null;
  switch (outcome.code) {
    case 'APPROVAL_COUNTED':
      return outcome.missing ? 'white_check_mark' : null;
    case 'QUORUM_MET':
    case 'REQUESTER_CONFIRMED':
      return 'white_check_mark';
    case 'STEP_DENIED':
      return kind === 'deny' ? 'no_entry' : null;
    case 'JOB_REVOKED':
      return kind === 'revoke' ? 'rotating_light' : null;
    default:
      return null;
  }
}

/**
 * Records the post as handled (with what was done). With `reaction`, the bot's reaction to it is
 * queued in the same statement: one round trip for both.
 */
async function remember(
  trx: Db,
  post: ChatPost,
  action: string,
  jobId: number | null,
  at: Date,
  reaction?: { replies: Replies; emoji: string; jobId: number | null },
): Promise<void> {
  const row = (db: QueryCreator<Database>) =>
    db.insertInto('chat_posts').values({
      post_id: post.id,
      channel_id: post.channel_id,
      root_id: threadOf(post),
      user_id: post.user_id,
      action,
      job_id: jobId,
      edit_at: post.edit_at,
      delete_at: post.delete_at,
      handled_at: at,
    });
  if (!reaction) {
    await row(trx).execute();
    return;
  }
  // The CTE adds a table the reaction's insert never reads: the query creator is the plain one to it.
  const remembered = trx.with('remembered', row) as unknown as QueryCreator<Database>;
  await reaction.replies.react(reaction.emoji, reaction.jobId, remembered);
}

/**
 * Handles one observed post (a WebSocket `posted` / `post_edited` / `post_deleted`, or a REST
 * catch-up row) exactly once: the post id is recorded in the same transaction as the decision
 * and every answer, so a replay, an overlapping catch-up or a second replica changes nothing.
 * Errors other than refusals (database down, Mattermost unreachable) propagate: nothing was
 * committed, and the caller retries.
 */
export async function handlePost(deps: HandlerDeps, post: ChatPost): Promise<Handled> {
  const intent = routePost(post, deps.bot);
  const edited = post.edit_at > 0 || post.delete_at > 0;
  // Chatter that was never handled needs no database work at all; edits and deletes of handled posts do.
  if (intent.kind === 'ignore' && (!edited || intent.why !== 'not for the bot')) {
    return { outcome: 'ignored', why: intent.why };
  }
  if (intent.kind !== 'ignore' && !edited) {
    const author = await deps.chat.user(post.user_id);
    if (author.is_bot) return { outcome: 'ignored', why: 'author is a bot' };
  }
  const { engine } = deps;
  const result = await engine.db.transaction().execute(async (trx): Promise<Handled> => {
    const { seen, needsRead } = await lockPost(trx, post.id, edited ? undefined : stepDecisionOf(intent));
    const at = engine.clock();
    const replies = new Replies(trx, deps, post, at);
    if (seen) return followUp(deps, trx, post, seen, replies);
    if (edited) {
      if (intent.kind === 'ignore') return { outcome: 'ignored', why: 'edited chatter' };
      if (post.delete_at > 0) {
        // Deleted before it was seen (its `posted` may still come: Mattermost does not promise the
        // order): remembered, so that it never counts when it does.
        await remember(trx, post, 'deleted_before_seen', null, at);
        return { outcome: 'handled', action: 'deleted_before_seen', jobId: null };
      }
      // Never handled, already edited (the bot was down, or it was chatter edited into a command).
      await remember(trx, post, 'edited_before_seen', null, at);
      if (intent.kind === 'decision') {
        await replies.complain(
          `reply:${post.id}`,
          nearMissMessage(post.user_id, expectedAfterEdit(intent, post), 'edited'),
        );
      }
      return { outcome: 'handled', action: 'edited_before_seen', jobId: null };
    }
    return act(deps, trx, post, intent, replies, at, needsRead);
  });
  if (result.outcome === 'handled') {
    if (result.jobId !== null) engine.notifier.changed(result.jobId);
    for (const id of result.alsoChanged ?? []) engine.notifier.changed(id);
  }
  return result;
}

/** The phrase to post anew after an edit: the command as edited, or what a near miss meant. */
function expectedAfterEdit(intent: Extract<Intent, { kind: 'decision' }>, post: ChatPost): string {
  return intent.command.kind === 'near_miss' ? intent.command.expected : post.message.trim().slice(0, 120);
}

/** A handled post was edited or deleted: an approval it carried is withdrawn (before minting). */
async function followUp(
  deps: HandlerDeps,
  trx: Db,
  post: ChatPost,
  seen: Seen,
  replies: Replies,
): Promise<Handled> {
  const deleted = post.delete_at > 0 && seen.delete_at === 0;
  const edited = post.edit_at > seen.edit_at && post.delete_at === 0;
  if (!deleted && !edited) return { outcome: 'duplicate' };
  await trx
    .updateTable('chat_posts')
    .set({ edit_at: post.edit_at, delete_at: post.delete_at })
    .where('post_id', '=', post.id)
    .execute();
  const why = deleted ? 'deleted' : 'edited';
  const w = await withdrawApproval(deps.engine, { postId: post.id, why }, trx);
  if (w.withdrawn && w.jobId !== null && w.step !== null && w.userId) {
    await replies.say(
      `${why}:${post.id}:${post.edit_at}:${post.delete_at}`,
      withdrawnMessage(w.jobId, w.step, w.userId, why),
      w.jobId,
    );
    return { outcome: 'handled', action: `approval_withdrawn_${why}`, jobId: w.jobId };
  }
  // A requester's CONFIRM edited or deleted: approvals stop counting until they confirm again
  // (the thread is told by the engine).
  const unconfirmed = await withdrawConfirmationOfPost(deps.engine, trx, post.id, why);
  if (unconfirmed !== null)
    return { outcome: 'handled', action: `confirmation_withdrawn_${why}`, jobId: unconfirmed };
  // A post that was never a decision (chatter, a near miss, a command) edited into one: say that
  // edits never count. A post that already decided something (a counted approval after its step
  // was minted, a refusal) stays decided: the edit changes nothing and needs no answer.
  const now = routePost(post, deps.bot);
  const decided = await trx
    .selectFrom('decisions')
    .select('id')
    .where('post_id', '=', post.id)
    .executeTakeFirst();
  if (edited && now.kind === 'decision' && !decided) {
    await replies.complain(
      `edit:${post.id}:${post.edit_at}`,
      nearMissMessage(post.user_id, expectedAfterEdit(now, post), 'edited'),
    );
  }
  return { outcome: 'handled', action: `${why}_noted`, jobId: w.jobId };
}

async function act(
  deps: HandlerDeps,
  trx: Db,
  post: ChatPost,
  intent: Intent,
  replies: Replies,
  at: Date,
  needsRead?: { state: DecisionNeedsState | undefined },
): Promise<Handled> {
  const ctx = postContext(post);
  const reply = `reply:${post.id}`;
  if (intent.kind === 'ignore') return { outcome: 'ignored', why: intent.why };
  if (intent.kind === 'mention') return mentioned(deps, trx, post, intent.command, replies, at);
  const c = intent.command;
  if (c.kind === 'near_miss') {
    await remember(trx, post, 'near_miss', null, at);
    await replies.complain(reply, nearMissMessage(post.user_id, c.expected, c.reason));
    return { outcome: 'handled', action: 'near_miss', jobId: null };
  }
  const outcome =
    c.kind === 'confirm'
      ? await confirmRequester(deps.engine, { jobId: c.jobId, userId: post.user_id, post: ctx }, trx)
      : c.kind === 'revoke'
        ? await endJobByCommand(
            deps.engine,
            {
              kind: 'revoke',
              jobId: c.jobId,
              actor: { kind: 'user', userId: post.user_id },
              reason: c.reason,
              post: ctx,
            },
            trx,
          )
        : await decideStep(
            deps.engine,
            {
              kind: c.kind,
              jobId: c.jobId,
              step: c.step,
              userId: post.user_id,
              post: ctx,
              ...(c.kind === 'deny' ? { reason: c.reason } : {}),
              ...(needsRead ? { needsRead } : {}),
            },
            trx,
          );
  const jobId = outcome.accepted || outcome.ended ? outcome.jobId : null;
  const emoji = outcome.replayed ? null : acceptedReaction(outcome, c.kind);
  await remember(
    trx,
    post,
    `${c.kind}:${outcome.code}`,
    outcome.replayed ? null : jobId,
    at,
    emoji ? { replies, emoji, jobId: outcome.jobId } : undefined,
  );
  if (outcome.replayed) return { outcome: 'duplicate' };
  if (!outcome.accepted) {
    await replies.complain(reply, refusalMessage(outcome.code, outcome.message, post.user_id, c.kind));
    return { outcome: 'handled', action: outcome.code, jobId };
  }
  // The reaction went with `remember`. A QUORUM_MET has no reply here: the mint announcement the
  // engine queued in this transaction is the reply.
  if (outcome.code === 'APPROVAL_COUNTED' && outcome.missing) {
    await replies.say(
      reply,
      approvalCountedMessage(
        outcome.jobId,
        c.kind === 'approve' ? c.step : '',
        post.user_id,
        outcome.missing,
      ),
      outcome.jobId,
    );
  } else if (outcome.code === 'STEP_DENIED' && c.kind === 'deny') {
    await replies.say(reply, deniedMessage(outcome.jobId, c.step, post.user_id, c.reason), outcome.jobId);
    // The thread reads the answer to the DENY first, then the ending it caused.
    await moveToBack(trx, endedPostKey(outcome.jobId));
  } else if (outcome.code === 'JOB_REVOKED' && c.kind === 'revoke') {
    await replies.say(reply, revokedMessage(outcome.jobId, post.user_id, c.reason), outcome.jobId);
    await moveToBack(trx, endedPostKey(outcome.jobId));
  } else if (outcome.code === 'REQUESTER_CONFIRMED') {
    const job = await trx
      .selectFrom('jobs')
      .select('submitted_by')
      .where('id', '=', outcome.jobId)
      .executeTakeFirstOrThrow();
    await replies.say(
      reply,
      confirmedMessage(outcome.jobId, post.user_id, job.submitted_by ?? ''),
      outcome.jobId,
    );
  }
  return { outcome: 'handled', action: outcome.code, jobId: outcome.jobId };
}

async function mentioned(
  deps: HandlerDeps,
  trx: Db,
  post: ChatPost,
  cmd: BotCommand,
  replies: Replies,
  at: Date,
): Promise<Handled> {
  const reply = `reply:${post.id}`;
  const { engine } = deps;
  switch (cmd.kind) {
    case 'help':
      await remember(trx, post, 'help', null, at);
      await replies.limited(reply, helpMessage(deps.bot.username));
      return { outcome: 'handled', action: 'help', jobId: null };
    case 'unknown':
      await remember(trx, post, 'unknown', null, at);
      await replies.complain(reply, notUnderstoodMessage(cmd.text, deps.bot.username), 'question');
      return { outcome: 'handled', action: 'unknown', jobId: null };
    case 'too_long':
      await remember(trx, post, 'too_long', null, at);
      await replies.complain(reply, tooLongMessage(post.user_id, cmd.length, cmd.limit));
      return { outcome: 'handled', action: 'too_long', jobId: null };
    case 'status': {
      const job =
        cmd.jobId === null
          ? null
          : await trx.selectFrom('jobs').selectAll().where('id', '=', cmd.jobId).executeTakeFirst();
      // A job's details are shown only in its own channel.
      if (!job || job.channel_id !== post.channel_id) {
        await remember(trx, post, 'status_refused', null, at);
        await replies.complain(
          reply,
          cmd.jobId === null ? 'Usage: `status job:<n>`' : `There is no job:${cmd.jobId} in this channel.`,
          'question',
        );
        return { outcome: 'handled', action: 'status_refused', jobId: null };
      }
      await remember(trx, post, 'status', null, at);
      await replies.limited(reply, statusMessage(await jobView(trx, job, engine), engine.publicUrl ?? null), {
        jobId: job.id,
      });
      return { outcome: 'handled', action: 'status', jobId: null };
    }
    case 'cancel': {
      if (cmd.jobId === null) {
        await remember(trx, post, 'cancel_usage', null, at);
        await replies.complain(reply, 'Usage: `cancel job:<n> [reason]`', 'question');
        return { outcome: 'handled', action: 'cancel_usage', jobId: null };
      }
      const o = await endJobByCommand(
        engine,
        {
          kind: 'cancel',
          jobId: cmd.jobId,
          actor: { kind: 'user', userId: post.user_id },
          reason: cmd.reason || 'cancelled in chat',
          post: postContext(post),
        },
        trx,
      );
      await remember(trx, post, `cancel:${o.code}`, o.accepted ? o.jobId : null, at);
      if (o.replayed) return { outcome: 'duplicate' };
      if (!o.accepted)
        await replies.complain(reply, refusalMessage(o.code, o.message, post.user_id, 'cancel'));
      else await replies.react('white_check_mark', o.jobId);
      return { outcome: 'handled', action: `cancel:${o.code}`, jobId: o.accepted ? o.jobId : null };
    }
    case 'run':
      return run(deps, trx, post, cmd, replies, at);
    case 'pause':
    case 'resume':
      return pauseOrResume(deps, trx, post, cmd, replies, at);
  }
}

/**
 * `@bot pause [reason]` / `@bot resume [reason]`: the kill switch, for the security group only,
 * from any channel the bot is in. Recorded in the chain of every open job, whose status posts
 * then say so; the answer goes to the post's thread.
 */
async function pauseOrResume(
  deps: HandlerDeps,
  trx: Db,
  post: ChatPost,
  cmd: Extract<BotCommand, { kind: 'pause' | 'resume' }>,
  replies: Replies,
  at: Date,
): Promise<Handled> {
  const reply = `reply:${post.id}`;
  const { engine } = deps;
  const security = await engine.directory.groupsOf(post.user_id, [engine.securityGroup]);
  if (security.size === 0) {
    await remember(trx, post, `${cmd.kind}:ERR_NOT_ELIGIBLE`, null, at);
    await replies.complain(
      reply,
      `${mention(post.user_id)} not ${cmd.kind === 'pause' ? 'paused' : 'resumed'}: only the ${engine.securityGroup} group may ${cmd.kind} work (ERR_NOT_ELIGIBLE).`,
    );
    return { outcome: 'handled', action: `${cmd.kind}:ERR_NOT_ELIGIBLE`, jobId: null };
  }
  const change = await setPaused(
    engine,
    { paused: cmd.kind === 'pause', actor: { kind: 'user', userId: post.user_id }, reason: cmd.reason },
    trx,
  );
  await remember(trx, post, change.changed ? cmd.kind : `${cmd.kind}:unchanged`, null, at);
  await replies.react(cmd.kind === 'pause' ? 'double_vertical_bar' : 'arrow_forward', null);
  await replies.say(
    reply,
    pauseMessage(cmd.kind, post.user_id, cmd.reason, change.changed, change.jobs.length),
    null,
  );
  return {
    outcome: 'handled',
    action: change.changed ? cmd.kind : `${cmd.kind}:unchanged`,
    jobId: null,
    alsoChanged: change.jobs,
  };
}

async function run(
  deps: HandlerDeps,
  trx: Db,
  post: ChatPost,
  cmd: Extract<BotCommand, { kind: 'run' }>,
  replies: Replies,
  at: Date,
): Promise<Handled> {
  const reply = `reply:${post.id}`;
  const refuse = async (action: string, problems: string | readonly string[], code?: string) => {
    await remember(trx, post, action, null, at);
    await replies.complain(reply, noJobMessage(post.user_id, problems, code));
    return { outcome: 'handled' as const, action, jobId: null };
  };
  if (cmd.problems.length > 0) return refuse('run_invalid', cmd.problems);
  const channel = await deps.chat.channel(post.channel_id);
  if (channel.type === 'D' || channel.type === 'G')
    return refuse('run_direct', 'jobs are requested in an allowlisted channel, not in direct messages');
  const root = threadOf(post);
  const existing =
    (await trx
      .selectFrom('jobs')
      .select('id')
      .where('channel_id', '=', post.channel_id)
      .where('root_post_id', '=', root)
      .executeTakeFirst()) ??
    // An agent's plan post whose thread is not bound yet belongs to its job all the same.
    (await trx
      .selectFrom('outbox')
      .select('job_id as id')
      .where('delivered_post_id', '=', root)
      .where('job_id', 'is not', null)
      .executeTakeFirst());
  if (existing)
    return refuse(
      'run_thread_taken',
      `this thread already belongs to job:${existing.id}; start a new thread`,
    );
  // A refused request must leave nothing behind, even if createJob refuses after writing.
  await sql`savepoint create_job`.execute(trx);
  let created;
  try {
    created = await createJob(
      deps.engine,
      {
        origin: { kind: 'mattermost', teamId: channel.team_id, channelId: post.channel_id, rootPostId: root },
        requesterId: post.user_id,
        runbook: { name: cmd.runbook, params: cmd.params },
      },
      trx,
    );
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    await sql`rollback to savepoint create_job`.execute(trx);
    return refuse(`run:${err.code}`, err.message, err.code);
  }
  // The plan post, in this thread, is the presenter's (written with the job).
  await remember(trx, post, 'run', created.jobId, at);
  return { outcome: 'handled', action: 'run', jobId: created.jobId };
}

/**
 * A post that could not be handled (the database refuses its text, or handling failed again
 * and again): recorded as refused and answered once, so it changes nothing, never pins the
 * channel's catch-up cursor, and is not retried forever. The answer does not echo the post.
 */
export async function refuseUnprocessablePost(deps: HandlerDeps, post: ChatPost): Promise<Handled> {
  const { engine } = deps;
  return engine.db.transaction().execute(async (trx): Promise<Handled> => {
    if ((await lockPost(trx, post.id)).seen) return { outcome: 'duplicate' };
    const at = engine.clock();
    await remember(trx, post, 'unprocessable', null, at);
    if (routePost(post, deps.bot).kind !== 'ignore') {
      await new Replies(trx, deps, post, at).complain(
        `reply:${post.id}`,
        `${mention(post.user_id)} this post could not be processed and changed nothing; post the command again in plain text.`,
      );
    }
    return { outcome: 'handled', action: 'unprocessable', jobId: null };
  });
}
