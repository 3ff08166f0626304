import type { Db } from '../db/database.js';
import type { JobRow } from '../db/schema.js';
import { type EngineContext, publish } from '../jobs/context.js';
import type { DecisionSource } from '../jobs/engine-metrics.js';
import type { JobEnded } from '../jobs/job-events.js';
import { closedCode } from '../jobs/job-repository.js';
import { appendEvent } from '../proofs/event-chain.js';
import { pinnedPolicy } from '../tokens/mint-step-token.js';
import type { FactsNeeded } from './chat-snapshot.js';
import {
  type DecisionOutcome,
  decideOnSnapshot,
  openJobFor,
  type PostContext,
  previousDecision,
  recordDecision,
  rejectedOutcome,
  Rejection,
  threadNeeds,
} from './record-decision.js';

/** What confirming may ask Mattermost (nothing when the job cannot be confirmed by this person as it stands). */
async function confirmationNeeds(
  ctx: EngineContext,
  db: Db,
  input: { jobId: number; userId: string; post?: PostContext },
): Promise<FactsNeeded> {
  const job = await db.selectFrom('jobs').selectAll().where('id', '=', input.jobId).executeTakeFirst();
  // The thread's root when the job has none recorded yet (its plan post, perhaps): asked whatever follows.
  const posts = threadNeeds(job, input.post);
  const none: FactsNeeded = { memberships: [], accounts: [], posts };
  if (!job || job.status !== 'open' || job.submitted_by === null || job.requester_id !== input.userId)
    return none;
  let groups: readonly string[];
  try {
    groups = (await pinnedPolicy(ctx, db, job)).channel_context.requester_groups;
  } catch {
    return none; // the locked part refuses it (ERR_POLICY_UNAVAILABLE) without asking anything
  }
  return { memberships: [{ userId: input.userId, groups }], accounts: [input.userId], posts };
}

/** A confirmation is a post in the job's thread; without one it came through the API. */
const confirmationSource = (input: { post?: PostContext }): DecisionSource => (input.post ? 'chat' : 'api');

/**
 * `CONFIRM job:<n>` by the requester an agent named, in the job's thread: from then on the
 * job's approvals count. Recorded as a decision (accepted or rejected, with its reason code)
 * and, when accepted, as a `requester_confirmed` event, in one transaction with the job locked.
 */
export async function confirmRequester(
  ctx: EngineContext,
  input: { jobId: number; userId: string; post?: PostContext },
  callerTrx?: Db,
): Promise<DecisionOutcome> {
  // Asked of Mattermost before the job is locked: the requester's groups and account. The
  // requester and the pinned policy never change, so the locked part needs nothing else; an
  // answer that changed while it waited for the lock makes it ask again.
  const outcome = await decideOnSnapshot(
    ctx,
    callerTrx,
    input.jobId,
    (db) => confirmationNeeds(ctx, db, input),
    async (trx, facts): Promise<DecisionOutcome> => {
      const replay = await previousDecision(trx, input.post?.postId);
      if (replay) return replay;
      const at = ctx.clock();
      let job: JobRow | null = null;
      let expired: JobEnded | undefined;
      try {
        ({ job, expired } = await openJobFor(ctx, trx, input.jobId, input.post, at, facts));
        if (expired) throw new Rejection('ERR_JOB_EXPIRED', `job:${job.id} has expired`, true);
        if (job.status !== 'open')
          throw new Rejection(closedCode(job), `job:${job.id} is ${job.status}`, true);
        if (job.submitted_by === null) {
          throw new Rejection(
            'ERR_NOTHING_TO_CONFIRM',
            `job:${job.id} was requested in chat by its requester; there is nothing to confirm`,
            true,
          );
        }
        if (input.userId !== job.requester_id) {
          throw new Rejection(
            'ERR_NOT_THE_REQUESTER',
            `only the requester agent ${job.submitted_by} named may confirm job:${job.id}`,
            true,
          );
        }
        if (job.requester_confirmed_at !== null)
          throw new Rejection('ERR_ALREADY_CONFIRMED', `job:${job.id} is already confirmed`, true);
        // Still a requester under the job's pinned policy (membership is asked now, like approvers').
        const policy = await pinnedPolicy(ctx, trx, job);
        const groups = facts.membershipsOf(input.userId, policy.channel_context.requester_groups);
        if (groups.length === 0) {
          throw new Rejection(
            'ERR_NOT_A_REQUESTER',
            `the requester of job:${job.id} is no longer in a requester group of ${job.policy_name}`,
            true,
          );
        }
        // Asked just before the lock, not from a cache: a deactivated account vouches for nothing.
        const account = facts.account(input.userId);
        if (account === null || (account && account.delete_at > 0)) {
          throw new Rejection(
            'ERR_REQUESTER_DEACTIVATED',
            `the account of job:${job.id}'s requester is deactivated`,
            true,
          );
        }
        const decisionId = await recordDecision(ctx, trx, at, {
          job,
          namedJob: input.jobId,
          step: null,
          kind: 'confirm',
          userId: input.userId,
          post: input.post,
          outcome: 'accepted',
          code: 'REQUESTER_CONFIRMED',
          source: confirmationSource(input),
        });
        await trx.updateTable('jobs').set({ requester_confirmed_at: at }).where('id', '=', job.id).execute();
        await appendEvent(
          trx,
          job.id,
          'requester_confirmed',
          {
            decision_id: decisionId,
            user_id: input.userId,
            submitted_by: job.submitted_by,
            post_id: input.post?.postId ?? null,
          },
          at,
        );
        await publish(ctx, trx, { type: 'job_progressed', job }, at);
        return {
          accepted: true,
          code: 'REQUESTER_CONFIRMED',
          message: `job:${job.id} confirmed by its requester`,
          jobId: job.id,
          step: null,
          replayed: false,
          decisionId,
        };
      } catch (err) {
        if (!(err instanceof Rejection)) throw err;
        return rejectedOutcome(ctx, trx, at, err, {
          job,
          jobId: input.jobId,
          step: null,
          kind: 'confirm',
          userId: input.userId,
          post: input.post,
          ...(expired ? { expired } : {}),
          source: confirmationSource(input),
        });
      }
    },
  );
  if (!outcome.replayed && !callerTrx) ctx.notifier.changed(outcome.jobId);
  ctx.log.info(
    { jobId: outcome.jobId, code: outcome.code, userId: input.userId },
    outcome.accepted ? 'requester confirmed' : 'confirmation rejected',
  );
  return outcome;
}
