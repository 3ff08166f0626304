import {
  type DecisionOutcome,
  decideOnSnapshot,
  openJobFor,
  type PostContext,
  previousDecision,
  Rejection,
  recordDecision,
  rejectedOutcome,
  threadNeeds,
} from '../approvals/record-decision.js';
import type { JobRow } from '../db/schema.js';
import { closedCode, lockExistingJob } from './job-repository.js';
import type { Db } from '../db/database.js';
import type { EngineContext } from './context.js';
import type { DecisionSource } from './engine-metrics.js';
import { endJob } from './end-job.js';
import type { JobEnded } from './job-events.js';
import { isExpired } from './state-machine.js';

/** Who ends a job from outside: a chat user (checked against groups) or an operator with admin rights. */
export type Actor = { kind: 'user'; userId: string } | { kind: 'admin'; name: string };

/**
 * REVOKE (security group, or an operator) and cancel (the requester, or security): end an
 * open job, revoke its unredeemed tokens and seal its bundle, in one transaction.
 */
export async function endJobByCommand(
  ctx: EngineContext,
  input: {
    kind: 'revoke' | 'cancel';
    jobId: number;
    actor: Actor;
    reason: string;
    post?: PostContext;
    /** For the metrics; by default a post (chat), an operator (api), else a person without a post: the slash command. */
    source?: DecisionSource;
  },
  callerTrx?: Db,
): Promise<DecisionOutcome> {
  const userId = input.actor.kind === 'user' ? input.actor.userId : `admin:${input.actor.name}`;
  const source: DecisionSource =
    input.source ?? (input.post ? 'chat' : input.actor.kind === 'admin' ? 'api' : 'command');
  // The security group's membership is asked before the job is locked (no network call while
  // it is); it depends only on who asks, so the locked part needs nothing else. A removal heard
  // while it waited for the lock makes it ask again.
  const outcome = await decideOnSnapshot(
    ctx,
    callerTrx,
    input.jobId,
    async (db) => ({
      memberships: input.actor.kind === 'user' ? [{ userId, groups: [ctx.securityGroup] }] : [],
      accounts: [],
      // The thread's root when the job has none recorded yet (its plan post, perhaps).
      posts: input.post
        ? threadNeeds(
            await db
              .selectFrom('jobs')
              .select(['channel_id', 'root_post_id'])
              .where('id', '=', input.jobId)
              .executeTakeFirst(),
            input.post,
          )
        : [],
    }),
    async (trx, facts): Promise<DecisionOutcome> => {
      const replay = await previousDecision(trx, input.post?.postId);
      if (replay) return replay;
      const at = ctx.clock();
      let job: JobRow | null = null;
      let expired: JobEnded | undefined;
      try {
        ({ job, expired } = await openJobFor(ctx, trx, input.jobId, input.post, at, facts));
        if (expired) throw new Rejection('ERR_JOB_EXPIRED', `job:${job.id} has already expired`, true);
        if (job.status !== 'open')
          throw new Rejection(closedCode(job), `job:${job.id} is already ${job.status}`, true);
        let groups: string[] = [];
        if (input.actor.kind === 'user') {
          groups = [...new Set(facts.membershipsOf(userId, [ctx.securityGroup]).map((m) => m.group))];
          const allowed = groups.length > 0 || (input.kind === 'cancel' && userId === job.requester_id);
          if (!allowed) {
            throw new Rejection(
              'ERR_NOT_ELIGIBLE',
              input.kind === 'revoke'
                ? `only the ${ctx.securityGroup} group may revoke a job`
                : `only the requester or the ${ctx.securityGroup} group may cancel job:${job.id}`,
              true,
            );
          }
        }
        const decisionId = await recordDecision(ctx, trx, at, {
          job,
          namedJob: input.jobId,
          step: null,
          kind: input.kind,
          userId,
          post: input.post,
          outcome: 'accepted',
          code: input.kind === 'revoke' ? 'JOB_REVOKED' : 'JOB_CANCELLED',
          reason: input.reason,
          groups,
          source,
        });
        const ended = await endJob(
          ctx,
          trx,
          job,
          input.kind === 'revoke' ? 'revoked' : 'cancelled',
          input.reason,
          at,
          {
            userId,
            decisionId,
          },
        );
        return {
          accepted: true,
          code: input.kind === 'revoke' ? 'JOB_REVOKED' : 'JOB_CANCELLED',
          message: `job:${job.id} ${ended.status}`,
          jobId: job.id,
          step: null,
          replayed: false,
          decisionId,
          ended,
        };
      } catch (err) {
        if (!(err instanceof Rejection)) throw err;
        return rejectedOutcome(ctx, trx, at, err, {
          job,
          jobId: input.jobId,
          step: null,
          kind: input.kind,
          userId,
          post: input.post,
          reason: input.reason,
          ...(expired ? { expired } : {}),
          source,
        });
      }
    },
  );
  if (!outcome.replayed && !callerTrx) ctx.notifier.changed(outcome.jobId);
  return outcome;
}

/** Expires every open job whose deadline has passed; each in its own transaction. */
export async function expireDueJobs(ctx: EngineContext): Promise<JobEnded[]> {
  const now = ctx.clock();
  const due = await ctx.db
    .selectFrom('jobs')
    .select('id')
    .where('status', '=', 'open')
    .where('expires_at', '<=', now)
    .orderBy('id')
    .limit(100)
    .execute();
  const ended: JobEnded[] = [];
  for (const { id } of due) {
    const result = await ctx.db.transaction().execute(async (trx) => {
      const job = await lockExistingJob(trx, id);
      if (!isExpired(job, ctx.clock())) return null;
      return endJob(ctx, trx, job, 'expired', 'approval window elapsed', ctx.clock());
    });
    if (result) {
      ended.push(result);
      ctx.notifier.changed(id);
    }
  }
  return ended;
}
