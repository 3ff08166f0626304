import { withdrawnMessage } from '../bot/messages.js';
import type { ChatPost, ChatUser } from '../chat/chat-port.js';
import { enqueuePost } from '../chat/outbox.js';
import type { Db } from '../db/database.js';
import type { JobRow } from '../db/schema.js';
import type { EngineContext } from '../jobs/context.js';
import { appendEvent } from '../proofs/event-chain.js';
import { parseCommand } from './parse-command.js';

/**
 * What the engine asks the chat server at the moment it decides, bypassing every cache
 * (SPEC section 2: an approval counts only if it holds "at the moment quorum is evaluated").
 * Absent in API-only mode, where no approval was posted in chat. Both throw a `ChatError` when
 * Mattermost cannot answer: the caller's transaction rolls back and nothing is minted.
 */
export interface ChatFacts {
  /** The post as Mattermost has it now; null once it is deleted (Mattermost answers 404). */
  post(id: string): Promise<ChatPost | null>;
  /** The account as Mattermost has it now (`delete_at` > 0: deactivated); null if there is none. */
  freshUser(id: string): Promise<ChatUser | null>;
}

/** A counted approval that no longer counts, with the `approval_withdrawn` event and the thread told. */
export async function markWithdrawn(
  trx: Db,
  job: JobRow,
  d: { id: number; step: string; userId: string; postId: string },
  why: 'edited' | 'deleted',
  at: Date,
  detectedBy: 'event' | 'recheck',
): Promise<void> {
  await trx
    .updateTable('decisions')
    .set({ withdrawn_at: at, withdrawn_reason: `post ${why}` })
    .where('id', '=', d.id)
    .execute();
  await appendEvent(
    trx,
    job.id,
    'approval_withdrawn',
    { decision_id: d.id, step: d.step, user_id: d.userId, post_id: d.postId, why, detected_by: detectedBy },
    at,
  );
  if (detectedBy === 'recheck' && job.channel_id !== null && job.root_post_id !== null) {
    await enqueuePost(
      trx,
      {
        key: `withdrawn:${d.postId}`,
        jobId: job.id,
        channelId: job.channel_id,
        rootId: job.root_post_id,
        message: withdrawnMessage(job.id, d.step, d.userId, why),
        props: { claw_job_id: `job:${job.id}` },
      },
      at,
    );
  }
}

/** Why a re-read approval post no longer carries that approval, or null while it still does. */
function postProblem(
  post: ChatPost | null,
  d: { userId: string },
  jobId: number,
  step: string,
): 'edited' | 'deleted' | null {
  if (post === null || post.delete_at > 0) return 'deleted';
  const cmd = parseCommand(post.message);
  const same = cmd.kind === 'approve' && cmd.jobId === jobId && cmd.step === step;
  if (post.edit_at > 0 || !same || post.user_id !== d.userId) return 'edited';
  return null;
}

export interface Recheck {
  /** Approvals withdrawn because their post was edited or deleted. */
  withdrawn: number;
  /** Approvers whose account is deactivated (or gone): they do not count. */
  inactive: Set<string>;
  /** The username Mattermost gave just now for each approver still standing and active. */
  usernames: Map<string, string>;
}

/**
 * Re-reads, from Mattermost, every live approval of a step about to be minted: a post that was
 * deleted or edited withdraws its approval (SPEC section 2 rule 5), an approver whose account
 * was deactivated does not count (issue 9 item 10). Approvals made without a chat post (API,
 * CLI) have no post to re-read; their approvers' accounts are still checked.
 */
export async function recheckApprovals(
  ctx: EngineContext,
  trx: Db,
  job: JobRow,
  step: string,
  at: Date,
): Promise<Recheck> {
  const result: Recheck = { withdrawn: 0, inactive: new Set(), usernames: new Map() };
  const chat = ctx.chat;
  if (!chat) return result;
  const live = await trx
    .selectFrom('decisions')
    .select(['id', 'user_id', 'post_id'])
    .where('job_id', '=', job.id)
    .where('step_id', '=', step)
    .where('kind', '=', 'approve')
    .where('outcome', '=', 'accepted')
    .where('withdrawn_at', 'is', null)
    .orderBy('id')
    .execute();
  const standing = new Set<string>();
  for (const d of live) {
    const why =
      d.post_id === null
        ? null
        : postProblem(await chat.post(d.post_id), { userId: d.user_id }, job.id, step);
    if (why === null || d.post_id === null) {
      standing.add(d.user_id);
      continue;
    }
    await markWithdrawn(
      trx,
      job,
      { id: d.id, step, userId: d.user_id, postId: d.post_id },
      why,
      at,
      'recheck',
    );
    ctx.log.info({ jobId: job.id, step, postId: d.post_id, why }, 'approval withdrawn at quorum time');
    result.withdrawn += 1;
  }
  for (const userId of standing) {
    const user = await chat.freshUser(userId);
    if (user === null || user.delete_at > 0) {
      result.inactive.add(userId);
      ctx.log.info({ jobId: job.id, step, userId }, 'approver deactivated; not counted');
    } else {
      result.usernames.set(userId, user.username);
    }
  }
  return result;
}
