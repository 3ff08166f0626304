/**
 * Handles one `/claw` slash command request, already authenticated as Mattermost's (the route
 * checks the command token). Each request is handled once: its trigger id is recorded in the
 * transaction of its effect, so a replay, or the same request twice at once, changes nothing.
 */
import { sql } from 'kysely';
import type { ChatPort } from '../chat/chat-port.js';
import type { Db } from '../db/database.js';
import type { JobRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { EngineContext } from '../jobs/context.js';
import { createJob } from '../jobs/create-job.js';
import { jobView } from '../jobs/job-view.js';
import { endJobByCommand } from '../jobs/revoke-job.js';
import { ChatError } from '../ports/chat-error.js';
import { statusMessage } from '../presenter/messages.js';
import { parseSlashCommand, type SlashCommand } from './parse-slash-command.js';
import {
  cancelledAnswer,
  createdAnswer,
  decisionRefusedAnswer,
  helpAnswer,
  noChatAnswer,
  noJobAnswer,
  notCancelledAnswer,
  notInChannelAnswer,
  replayAnswer,
  slowDownAnswer,
  type ThreadPlace,
  threadLine,
  tooLongAnswer,
  unknownAnswer,
  unprintableAnswer,
  usageAnswer,
} from './slash-answers.js';

/** The fields of Mattermost's request that the command acts on (validated by the route). */
export interface SlashRequest {
  triggerId: string;
  userId: string;
  userName: string;
  channelId: string;
  /** The team's name, for permalinks. */
  teamDomain: string;
  /** `/claw`, or whatever trigger the command was registered with. */
  trigger: string;
  text: string;
}

export interface SlashCommandDeps {
  engine: EngineContext;
  /** Channels and accounts as Mattermost has them; null when the server runs without Mattermost. */
  chat: Pick<ChatPort, 'channel' | 'user'> | null;
  /** MATTERMOST_URL, for permalinks to job threads; null: threads are described, not linked. */
  mattermostUrl: string | null;
  /** Commands answered per person per minute; beyond it nothing is done. */
  answersPerMinute: number;
}

export interface SlashAnswer {
  text: string;
  /** What was done, as recorded (`run`, `status`, `cancel:JOB_CANCELLED`, `replay`, …). */
  action: string;
  jobId: number | null;
}

interface Outcome extends SlashAnswer {
  /** The job changed (created, cancelled, expired): long-polls are woken after commit. */
  changed: boolean;
}

const lock = (trx: Db, key: string) =>
  sql`select pg_advisory_xact_lock(hashtextextended(${key}, 0))`.execute(trx);

export async function handleSlashCommand(deps: SlashCommandDeps, req: SlashRequest): Promise<SlashAnswer> {
  const { engine } = deps;
  const cmd = parseSlashCommand(req.text);
  // Mattermost is asked before the transaction, so no lock is held while it answers.
  const place = cmd.kind === 'run' && cmd.problems.length === 0 ? await runPlace(deps, req) : null;
  const outcome = await engine.db.transaction().execute(async (trx): Promise<Outcome> => {
    await lock(trx, `command:${req.triggerId}`);
    const seen = await trx
      .selectFrom('command_requests')
      .select('job_id')
      .where('trigger_id', '=', req.triggerId)
      .executeTakeFirst();
    if (seen) {
      const jobId = seen.job_id === null ? null : Number(seen.job_id);
      return { text: replayAnswer(jobId), action: 'replay', jobId, changed: false };
    }
    // One person's commands are counted and recorded under one lock, so a burst cannot slip past.
    await lock(trx, `command-user:${req.userId}`);
    const at = engine.clock();
    const recent = await trx
      .selectFrom('command_requests')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('user_id', '=', req.userId)
      .where('handled_at', '>', new Date(at.getTime() - 60_000))
      .executeTakeFirstOrThrow();
    if (Number(recent.n) >= deps.answersPerMinute) {
      return { text: slowDownAnswer(deps.answersPerMinute), action: 'slowed', jobId: null, changed: false };
    }
    const outcome = await act(deps, trx, req, cmd, place);
    await trx
      .insertInto('command_requests')
      .values({
        trigger_id: req.triggerId,
        user_id: req.userId,
        channel_id: req.channelId,
        action: outcome.action,
        job_id: outcome.jobId,
        handled_at: at,
      })
      .execute();
    return outcome;
  });
  if (outcome.changed && outcome.jobId !== null) engine.notifier.changed(outcome.jobId);
  engine.log.info(
    { userId: req.userId, channelId: req.channelId, action: outcome.action, jobId: outcome.jobId },
    'slash command handled',
  );
  const { changed: _changed, ...answer } = outcome;
  return answer;
}

/** Where a run may create a job: the channel's team, or why not (no Mattermost, a DM, a bot). */
async function runPlace(
  deps: SlashCommandDeps,
  req: SlashRequest,
): Promise<{ teamId: string } | { refused: string; action: string }> {
  if (!deps.chat) return { refused: noChatAnswer(), action: 'run_no_chat' };
  try {
    const user = await deps.chat.user(req.userId);
    if (user.is_bot) return { refused: noJobAnswer('bots do not request jobs'), action: 'run_bot' };
    const channel = await deps.chat.channel(req.channelId);
    if (channel.type === 'D' || channel.type === 'G')
      return {
        refused: noJobAnswer('jobs are requested in an allowlisted channel, not in direct messages'),
        action: 'run_direct',
      };
    return { teamId: channel.team_id };
  } catch (err) {
    if (!(err instanceof ChatError)) throw err;
    return {
      refused: noJobAnswer('Mattermost could not be asked about this channel; try again shortly'),
      action: 'run_chat_unavailable',
    };
  }
}

/** A job of this channel, or null: jobs of other channels are neither shown nor touched from here. */
async function jobInChannel(trx: Db, jobId: number | null, channelId: string): Promise<JobRow | null> {
  if (jobId === null) return null;
  const job = await trx.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirst();
  return job && job.channel_id === channelId ? job : null;
}

function threadOf(deps: SlashCommandDeps, req: SlashRequest, job: JobRow): ThreadPlace {
  const linkable =
    deps.mattermostUrl !== null &&
    job.root_post_id !== null &&
    /^[a-z0-9][a-z0-9_-]{0,63}$/.test(req.teamDomain);
  return {
    jobId: job.id,
    permalink: linkable
      ? `${deps.mattermostUrl!.replace(/\/+$/, '')}/${req.teamDomain}/pl/${job.root_post_id}`
      : null,
  };
}

async function act(
  deps: SlashCommandDeps,
  trx: Db,
  req: SlashRequest,
  cmd: SlashCommand,
  place: Awaited<ReturnType<typeof runPlace>> | null,
): Promise<Outcome> {
  const { engine } = deps;
  const answer = (text: string, action: string, jobId: number | null = null, changed = false): Outcome => ({
    text,
    action,
    jobId,
    changed,
  });
  switch (cmd.kind) {
    case 'help':
      return answer(helpAnswer(req.trigger), 'help');
    case 'unknown':
      return answer(unknownAnswer(req.trigger, cmd.text), 'unknown');
    case 'too_long':
      return answer(tooLongAnswer(cmd.length, cmd.limit), 'too_long');
    case 'unprintable':
      return answer(unprintableAnswer(), 'unprintable');
    case 'decision': {
      const job = await jobInChannel(trx, cmd.jobId, req.channelId);
      return answer(
        decisionRefusedAnswer(cmd.phrase, job ? threadOf(deps, req, job) : null),
        'decision_refused',
      );
    }
    case 'status': {
      if (cmd.jobId === null) return answer(usageAnswer(req.trigger, 'status job:<n>'), 'status_usage');
      const job = await jobInChannel(trx, cmd.jobId, req.channelId);
      if (!job) return answer(notInChannelAnswer(cmd.jobId), 'status_refused');
      const view = await jobView(trx, job, engine);
      const text = `${statusMessage(view, engine.publicUrl ?? null)}\n\n${threadLine(threadOf(deps, req, job))}`;
      return answer(text, 'status', job.id);
    }
    case 'cancel': {
      if (cmd.jobId === null)
        return answer(usageAnswer(req.trigger, 'cancel job:<n> [reason]'), 'cancel_usage');
      const job = await jobInChannel(trx, cmd.jobId, req.channelId);
      if (!job) return answer(notInChannelAnswer(cmd.jobId), 'cancel_refused');
      const o = await endJobByCommand(
        engine,
        {
          kind: 'cancel',
          jobId: job.id,
          actor: { kind: 'user', userId: req.userId },
          reason: cmd.reason || 'cancelled with the slash command',
        },
        trx,
      );
      const changed = o.accepted || o.ended !== undefined;
      return o.accepted
        ? answer(cancelledAnswer(job.id), `cancel:${o.code}`, job.id, changed)
        : answer(notCancelledAnswer(o.code, o.message), `cancel:${o.code}`, job.id, changed);
    }
    case 'run': {
      if (cmd.problems.length > 0) return answer(noJobAnswer(cmd.problems), 'run_invalid');
      if (!place || 'refused' in place)
        return answer(place?.refused ?? noChatAnswer(), place?.action ?? 'run_no_chat');
      // A refused request leaves nothing behind, even if createJob refuses after writing.
      await sql`savepoint create_job`.execute(trx);
      try {
        const created = await createJob(
          engine,
          {
            origin: { kind: 'command', teamId: place.teamId, channelId: req.channelId },
            requesterId: req.userId,
            runbook: { name: cmd.runbook, params: cmd.params },
          },
          trx,
        );
        const gated = created.steps.filter((s) => s.classification.gate === 'gated').length;
        return answer(createdAnswer(created.jobId, gated), 'run', created.jobId, true);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        await sql`rollback to savepoint create_job`.execute(trx);
        // The engine names people by id; the caller reads their own name.
        const detail = err.message.replaceAll(req.userId, `@${req.userName}`);
        return answer(noJobAnswer(detail, err.code), `run:${err.code}`);
      }
    }
    default:
      // Words the bot takes only as a post (pause, resume): not a slash command.
      return answer(unknownAnswer(req.trigger, req.text.trim()), 'unknown');
  }
}
