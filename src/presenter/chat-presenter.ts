import type { Db } from '../db/database.js';
import type { JobRow } from '../db/schema.js';
import { enqueuePost, markStatusStale, recordStatusQueued, statusPostKey } from '../chat/outbox.js';
import type { JobEvent, JobEventSink } from '../jobs/job-events.js';
import { readChain } from '../proofs/event-chain.js';
import {
  confirmationWithdrawnMessage,
  endedMessage,
  mintedMessage,
  withdrawnMessage,
  bundleUrl,
} from './messages.js';
import { boardOf, statusBoardMessage } from './status-board.js';

/** The outbox key of the post that says a job ended (with its bundle). */
export const endedPostKey = (jobId: number) => `job:${jobId}:ended`;

/**
 * Where a job's thread replies go, or null for a job without a channel. A job requested in chat
 * lives in the requester's thread; an agent's job in the thread its plan post starts (until that
 * post is delivered, replies queue behind it at the top of the channel and delivery moves them).
 */
function thread(job: JobRow): { channelId: string; rootId: string | null } | null {
  if (job.channel_id === null) return null;
  return { channelId: job.channel_id, rootId: job.root_post_id };
}

/** A job's status post as it reads now (the plan post, edited as the job moves). */
export async function renderStatusPost(
  db: Db,
  jobId: number,
  publicUrl: string | null,
): Promise<{ message: string; props: Record<string, unknown> } | null> {
  const job = await db
    .selectFrom('jobs')
    .select(['bundle_id', 'plan_hash_b64u', 'policy_hash_b64u'])
    .where('id', '=', jobId)
    .executeTakeFirst();
  if (!job) return null;
  const board = boardOf(jobId, await readChain(db, jobId), job.bundle_id);
  if (!board) return null;
  return {
    message: statusBoardMessage(board, publicUrl),
    props: {
      claw_job_id: `job:${jobId}`,
      claw_plan_hash: job.plan_hash_b64u,
      claw_policy_hash: job.policy_hash_b64u,
      ...(board.ended ? { claw_job_status: board.ended.status } : {}),
    },
  };
}

/**
 * The chat presenter: turns the engine's events into what people see in Mattermost, written to
 * the outbox in the engine's own transaction. The job's status post is re-rendered after every
 * event; a thread reply is added only where a person needs a notification (the mint, an approval
 * that stopped counting, a withdrawn confirmation, the final outcome). Whatever caused the change
 * (a chat approval, the agent API, the expiry sweep, another replica), it is said exactly once.
 */
export class ChatPresenter implements JobEventSink {
  constructor(private readonly opts: { publicUrl: string | null }) {}

  async publish(trx: Db, event: JobEvent, at: Date): Promise<void> {
    const t = thread(event.job);
    if (!t) return;
    const job = event.job;
    const reply = (key: string, message: string, props: Record<string, string> = {}) =>
      enqueuePost(
        trx,
        { key, jobId: job.id, ...t, message, props: { claw_job_id: `job:${job.id}`, ...props } },
        at,
      );
    switch (event.type) {
      case 'job_created': {
        const post = await renderStatusPost(trx, job.id, this.opts.publicUrl);
        if (!post) return;
        await enqueuePost(
          trx,
          {
            key: statusPostKey(job),
            jobId: job.id,
            channelId: t.channelId,
            // A chat job's plan answers the request in its thread; an agent's starts its own.
            rootId: job.origin === 'mattermost' ? job.root_post_id : null,
            message: post.message,
            props: post.props as Record<string, string>,
          },
          at,
        );
        await recordStatusQueued(trx, { ...job, channel_id: t.channelId }, at, post);
        return;
      }
      case 'token_minted':
        await reply(`job:${job.id}:minted:${event.token.step}`, mintedMessage(job.id, event.token), {
          claw_cst_jti: event.token.jti,
        });
        break;
      case 'approval_withdrawn':
        await reply(
          `withdrawn:${event.postId}`,
          withdrawnMessage(job.id, event.step, event.userId, event.why),
        );
        break;
      case 'confirmation_withdrawn':
        await reply(
          `unconfirmed:${event.decisionId}`,
          confirmationWithdrawnMessage(job.id, event.userId, event.why),
        );
        break;
      case 'job_ended': {
        const url = bundleUrl(this.opts.publicUrl, event.ended.bundleId);
        await reply(
          endedPostKey(job.id),
          endedMessage(event.ended, this.opts.publicUrl, event.gatewaySigners),
          {
            claw_bundle_id: event.ended.bundleId,
            claw_job_status: event.ended.status,
            ...(url ? { claw_bundle_url: url } : {}),
          },
        );
        break;
      }
      case 'job_progressed':
      case 'step_finished':
      case 'pause_changed':
        break;
    }
    await markStatusStale(trx, { ...job, channel_id: t.channelId }, at);
  }
}
