import type { Db } from '../db/database.js';
import type { JobRow } from '../db/schema.js';
import { type EngineContext, publish } from '../jobs/context.js';
import type { ChatPost } from '../ports/chat.js';
import { appendEvent } from '../proofs/event-chain.js';
import type { MintScope } from '../tokens/mint-step-token.js';
import { parseCommand } from './parse-command.js';

/**
 * A counted approval that no longer counts, with its `approval_withdrawn` event. Found by a
 * re-check, the thread is told by the presenter; seen as an edit or delete, the chat adapter
 * answers the post itself.
 */
export async function markWithdrawn(
  ctx: EngineContext,
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
  await publish(
    ctx,
    trx,
    detectedBy === 'recheck'
      ? { type: 'approval_withdrawn', job, step: d.step, userId: d.userId, postId: d.postId, why }
      : { type: 'job_progressed', job },
    at,
  );
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
  /** Decisions withdrawn because their post was edited or deleted. */
  withdrawn: Set<number>;
  /** Approvers whose account is deactivated (or gone): they do not count. */
  inactive: Set<string>;
  /** The username Mattermost gave for each approver still standing and active. */
  usernames: Map<string, string>;
}

/**
 * Re-reads, in Mattermost's answers asked just before the job was locked, every live approval
 * of a step about to be minted: a post that was deleted or edited withdraws its approval (SPEC
 * section 2 rule 5), an approver whose account was deactivated does not count (issue 9 item
 * 10). Approvals made without a chat post of their own (a button click on the status post, the
 * API, the CLI) have no post to re-read: the status post is the bot's, not the approver's
 * words. Their approvers' accounts are still checked. Withdrawals go to the scope's batch.
 */
export function recheckOnSnapshot(ctx: EngineContext, s: MintScope, at: Date): Recheck {
  // At quorum, with the job locked: answers Mattermost has since said changed are not used.
  s.facts.assertCurrent();
  const result: Recheck = { withdrawn: new Set(), inactive: new Set(), usernames: new Map() };
  if (!ctx.chat) return result;
  const { job, step, facts, batch } = s;
  const standing = new Set<string>();
  for (const d of s.state.live) {
    const why =
      d.post_id === null
        ? null
        : postProblem(facts.post(d.post_id) ?? null, { userId: d.user_id }, job.id, step.step_id);
    if (why === null || d.post_id === null) {
      standing.add(d.user_id);
      continue;
    }
    batch.withdraw(d.id, `post ${why}`, at);
    batch.append(
      'approval_withdrawn',
      {
        decision_id: d.id,
        step: step.step_id,
        user_id: d.user_id,
        post_id: d.post_id,
        why,
        detected_by: 'recheck',
      },
      at,
    );
    s.events.push({
      type: 'approval_withdrawn',
      job,
      step: step.step_id,
      userId: d.user_id,
      postId: d.post_id,
      why,
    });
    ctx.log.info(
      { jobId: job.id, step: step.step_id, postId: d.post_id, why },
      'approval withdrawn at quorum time',
    );
    result.withdrawn.add(d.id);
  }
  for (const userId of standing) {
    const user = facts.account(userId);
    if (user === null || (user && user.delete_at > 0)) {
      result.inactive.add(userId);
      ctx.log.info({ jobId: job.id, step: step.step_id, userId }, 'approver deactivated; not counted');
    } else if (user) {
      result.usernames.set(userId, user.username);
    }
  }
  return result;
}
