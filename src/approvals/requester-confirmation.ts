import type { Db } from '../db/database.js';
import type { JobRow } from '../db/schema.js';
import { type EngineContext, publish } from '../jobs/context.js';
import { appendEvent } from '../proofs/event-chain.js';
import type { MintScope } from '../tokens/mint-step-token.js';
import { parseCommand } from './parse-command.js';

/**
 * The requester's confirmation of an agent's job stands only while its post does (SPEC section
 * 2 rule 5 applied to what lets approvals count at all): deleted or edited, it is withdrawn,
 * and until the requester confirms again no approval counts and nothing gated is minted.
 */

interface ConfirmDecision {
  id: number;
  userId: string;
  postId: string | null;
}

/** Withdraws a job's confirmation (the caller holds the job row lock): row, chain, thread. */
async function withdraw(
  ctx: EngineContext,
  trx: Db,
  job: JobRow,
  d: ConfirmDecision,
  why: 'edited' | 'deleted' | 'deactivated',
  at: Date,
): Promise<void> {
  await trx
    .updateTable('decisions')
    .set({
      withdrawn_at: at,
      withdrawn_reason: why === 'deactivated' ? 'requester deactivated' : `post ${why}`,
    })
    .where('id', '=', d.id)
    .execute();
  await trx.updateTable('jobs').set({ requester_confirmed_at: null }).where('id', '=', job.id).execute();
  await appendEvent(
    trx,
    job.id,
    'requester_confirmation_withdrawn',
    { decision_id: d.id, user_id: d.userId, post_id: d.postId, why },
    at,
  );
  await publish(
    ctx,
    trx,
    { type: 'confirmation_withdrawn', job, decisionId: d.id, userId: d.userId, why },
    at,
  );
}

/**
 * A handled post was edited or deleted: if it carried the job's standing confirmation, that is
 * withdrawn. Returns the job it concerned, or null when the post confirmed nothing (now).
 */
export async function withdrawConfirmationOfPost(
  ctx: EngineContext,
  trx: Db,
  postId: string,
  why: 'edited' | 'deleted',
): Promise<number | null> {
  const d = await trx
    .selectFrom('decisions')
    .select(['id', 'job_id', 'user_id', 'post_id'])
    .where('post_id', '=', postId)
    .where('kind', '=', 'confirm')
    .where('outcome', '=', 'accepted')
    .where('withdrawn_at', 'is', null)
    .executeTakeFirst();
  if (!d || d.job_id === null) return null;
  const job = await trx
    .selectFrom('jobs')
    .selectAll()
    .where('id', '=', d.job_id)
    .forUpdate()
    .executeTakeFirst();
  if (!job || job.status !== 'open' || job.requester_confirmed_at === null) return null;
  await withdraw(ctx, trx, job, { id: d.id, userId: d.user_id, postId: d.post_id }, why, ctx.clock());
  ctx.log.info({ jobId: job.id, postId, why }, 'requester confirmation withdrawn');
  return job.id;
}

/**
 * Before anything gated of an agent's job is minted: the confirmation exists and, in
 * Mattermost's answers asked just before the job was locked, its post still reads
 * `CONFIRM job:<n>` by the requester and the requester's account is active; otherwise it is
 * withdrawn (in the scope's batch). Mattermost unreachable → its error is thrown here and
 * nothing is minted. Jobs requested in chat need no confirmation.
 */
export function confirmationStandsOn(ctx: EngineContext, s: MintScope, at: Date): boolean {
  const { job, facts } = s;
  if (job.submitted_by === null) return true;
  if (job.requester_confirmed_at === null) return false;
  const d = s.state.confirmation;
  if (!d) return false;
  if (!ctx.chat) return true;
  const withdrawOn = (why: 'edited' | 'deleted' | 'deactivated') => {
    s.batch.withdraw(d.id, why === 'deactivated' ? 'requester deactivated' : `post ${why}`, at);
    s.batch.clearConfirmation();
    s.batch.append(
      'requester_confirmation_withdrawn',
      { decision_id: d.id, user_id: d.userId, post_id: d.postId, why },
      at,
    );
    s.events.push({ type: 'confirmation_withdrawn', job, decisionId: d.id, userId: d.userId, why });
    s.state.confirmation = null;
  };
  if (d.postId !== null) {
    const post = facts.post(d.postId) ?? null;
    const cmd = post && post.delete_at === 0 ? parseCommand(post.message) : null;
    const same = cmd?.kind === 'confirm' && cmd.jobId === job.id && post?.user_id === d.userId;
    if (!post || post.delete_at > 0 || post.edit_at > 0 || !same) {
      withdrawOn(!post || post.delete_at > 0 ? 'deleted' : 'edited');
      return false;
    }
  }
  const account = facts.account(d.userId);
  if (account === null || (account && account.delete_at > 0)) {
    withdrawOn('deactivated');
    return false;
  }
  return true;
}
