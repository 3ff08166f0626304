import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { DecisionKind, JobRow } from '../db/schema.js';
import { type AppErrorCode, isAppError } from '../errors.js';
import { type EngineContext, inTransaction, publish } from '../jobs/context.js';
import { type DecisionSource, noteDecision } from '../jobs/engine-metrics.js';
import { endJob } from '../jobs/end-job.js';
import { pausedReason, pauseState } from '../jobs/kill-switch.js';
import type { JobEnded } from '../jobs/job-events.js';
import { closedCode, jobSteps, lockExistingJob, lockJob, setStepStatus } from '../jobs/job-repository.js';
import { isExpired, settledStatus, stepTransition } from '../jobs/state-machine.js';
import { appendEvent } from '../proofs/event-chain.js';
import { firstRejection } from '../proofs/rejection-summary.js';
import { markWithdrawn } from './recheck-approvals.js';
import type { MintedToken } from '../jobs/job-events.js';
import { currentQuorum, type PinnedStep, pinnedStep, tryMintStep } from '../tokens/mint-step-token.js';

/** Where a chat command was posted; the job's thread is the only place a decision counts. */
export interface PostContext {
  postId: string;
  channelId: string;
  /** The thread root (`root_id`), or the post itself when it is a root. */
  rootId: string;
}

/**
 * A click on an Approve or Deny button of the job's status post (SPEC section 2 rule 6), already
 * authenticated by its context's MAC. It has no post of its own: its decision row has no post id
 * (nothing to re-read at quorum but the account, nothing an edit could withdraw), and its events
 * say `method: 'button'` with the status post clicked.
 */
export interface ButtonClick {
  /** The post the button is on (the callback's `post_id`, bound by the MAC). */
  postId: string;
  /** The channel the callback names. */
  channelId: string;
  /** The plan and policy the button was rendered for. */
  planHash: string;
  policyHash: string;
}

export interface StepDecisionInput {
  kind: 'approve' | 'deny';
  jobId: number;
  step: string;
  userId: string;
  reason?: string;
  post?: PostContext;
  button?: ButtonClick;
  /** Where the decision came from, for the metrics; by default a button, a post (chat), else the API. */
  source?: DecisionSource;
}

/** Where a step decision came from, when its caller does not say. */
function stepDecisionSource(input: StepDecisionInput): DecisionSource {
  return input.source ?? (input.button ? 'button' : input.post ? 'chat' : 'api');
}

/** How a button decision is told apart in the chain (a typed phrase adds nothing). */
function buttonFields(button: ButtonClick | undefined): Record<string, string> {
  return button ? { method: 'button', button_post_id: button.postId } : {};
}

export type AcceptedCode =
  'APPROVAL_COUNTED' | 'QUORUM_MET' | 'STEP_DENIED' | 'JOB_REVOKED' | 'JOB_CANCELLED' | 'REQUESTER_CONFIRMED';

export interface DecisionOutcome {
  accepted: boolean;
  code: AcceptedCode | AppErrorCode;
  message: string;
  jobId: number;
  step: string | null;
  /** True when this post was already decided: nothing changed, nothing to answer twice. */
  replayed: boolean;
  decisionId: number | null;
  /** After an approval that did not mint: what is still missing. */
  missing?: { approvals: number; openGroups: string[]; simulationStep: string | null };
  minted?: MintedToken;
  ended?: JobEnded;
}

export class Rejection extends Error {
  constructor(
    readonly code: AppErrorCode,
    message: string,
    readonly jobExists: boolean,
  ) {
    super(message);
  }
}

/**
 * The earlier decision on this chat post, if any. Call it first in the deciding transaction:
 * it holds a lock on the post id until commit, so the same post delivered twice at once (two
 * bot replicas, a catch-up overlapping the WebSocket) is decided by one and replayed by the other.
 */
export async function previousDecision(db: Db, postId: string | undefined): Promise<DecisionOutcome | null> {
  if (postId === undefined) return null;
  await sql`select pg_advisory_xact_lock(hashtextextended(${postId}, 0))`.execute(db);
  const d = await db.selectFrom('decisions').selectAll().where('post_id', '=', postId).executeTakeFirst();
  if (!d) return null;
  return {
    accepted: d.outcome === 'accepted',
    code: d.reason_code as DecisionOutcome['code'],
    message: 'this post was already decided',
    jobId: d.job_id ?? d.named_job ?? 0,
    step: d.step_id,
    replayed: true,
    decisionId: d.id,
  };
}

/**
 * Records a decision row (and, for an existing job, its event). Every decision, accepted or
 * rejected, is written here, and counted by the metrics once its transaction commits.
 */
export async function recordDecision(
  ctx: EngineContext,
  trx: Db,
  at: Date,
  d: {
    job: JobRow | null;
    namedJob: number;
    step: string | null;
    kind: DecisionKind;
    userId: string;
    post?: PostContext;
    button?: ButtonClick;
    outcome: 'accepted' | 'rejected';
    code: string;
    reason?: string | null;
    groups?: readonly string[];
    source: DecisionSource;
  },
): Promise<number> {
  const row = await trx
    .insertInto('decisions')
    .values({
      job_id: d.job?.id ?? null,
      named_job: d.namedJob,
      step_id: d.step,
      kind: d.kind,
      user_id: d.userId,
      post_id: d.post?.postId ?? null,
      outcome: d.outcome,
      reason_code: d.code,
      reason: d.reason ?? null,
      groups: JSON.stringify([...(d.groups ?? [])].sort()),
      created_at: at,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  await noteDecision(ctx, trx, { kind: d.kind, outcome: d.outcome, code: d.code, source: d.source });
  // A closed job's chain is sealed in its bundle; later attempts are kept in decisions only.
  // Repeats of one person's refusal for one reason are counted when the job ends, not chained.
  if (
    d.job &&
    d.job.status === 'open' &&
    d.outcome === 'rejected' &&
    (await firstRejection(trx, { id: row.id, jobId: d.job.id, userId: d.userId, code: d.code }))
  ) {
    await appendEvent(
      trx,
      d.job.id,
      'approval_rejected',
      {
        decision_id: row.id,
        kind: d.kind,
        step: d.step,
        user_id: d.userId,
        post_id: d.post?.postId ?? null,
        code: d.code,
        ...buttonFields(d.button),
      },
      at,
    );
  }
  return row.id;
}

/**
 * A refused decision: recorded with its reason code (and, for an existing open job, its event),
 * answered as an outcome that carries the expiry it may have caused.
 */
export async function rejectedOutcome(
  ctx: EngineContext,
  trx: Db,
  at: Date,
  err: Rejection,
  d: {
    job: JobRow | null;
    jobId: number;
    step: string | null;
    kind: DecisionKind;
    userId: string;
    post?: PostContext;
    button?: ButtonClick;
    reason?: string | null;
    groups?: readonly string[];
    expired?: JobEnded;
    source: DecisionSource;
  },
): Promise<DecisionOutcome> {
  const decisionId = await recordDecision(ctx, trx, at, {
    job: err.jobExists ? d.job : null,
    namedJob: d.jobId,
    step: d.step,
    kind: d.kind,
    userId: d.userId,
    post: d.post,
    ...(d.button ? { button: d.button } : {}),
    outcome: 'rejected',
    code: err.code,
    reason: d.reason ?? null,
    ...(d.groups ? { groups: d.groups } : {}),
    source: d.source,
  });
  return {
    accepted: false,
    code: err.code,
    message: err.message,
    jobId: d.jobId,
    step: d.step,
    replayed: false,
    decisionId,
    ...(d.expired ? { ended: d.expired } : {}),
  };
}

/**
 * Checks common to every decision on an open job: the job exists, the post is in its thread,
 * it has not expired (expiring it now if its deadline passed), and it is still open.
 */
export async function openJobFor(
  ctx: EngineContext,
  trx: Db,
  jobId: number,
  post: PostContext | undefined,
  at: Date,
): Promise<{ job: JobRow; expired?: JobEnded }> {
  const job = await lockJob(trx, jobId);
  if (!job) throw new Rejection('ERR_JOB_NOT_FOUND', `job:${jobId} does not exist`, false);
  if (
    post &&
    // A job without a thread yet (an agent's job whose plan is not posted) takes no chat decision.
    (post.channelId !== job.channel_id || job.root_post_id === null || post.rootId !== job.root_post_id)
  ) {
    throw new Rejection('ERR_WRONG_THREAD', `decisions for job:${jobId} count only in its own thread`, true);
  }
  if (isExpired(job, at)) {
    const expired = await endJob(ctx, trx, job, 'expired', 'approval window elapsed', at);
    return { job: { ...job, status: 'expired' }, expired };
  }
  return { job };
}

/**
 * A button decides only for the job it was rendered for: in the job's channel, for the plan and
 * policy the job still has (the MAC proves what the button said, this that it still holds).
 */
function buttonMatchesJob(button: ButtonClick, job: JobRow): void {
  if (button.channelId !== job.channel_id)
    throw new Rejection(
      'ERR_WRONG_THREAD',
      `decisions for job:${job.id} count only in its own channel`,
      true,
    );
  if (button.planHash !== job.plan_hash_b64u || button.policyHash !== job.policy_hash_b64u) {
    throw new Rejection(
      'ERR_STEP_RULE_MISMATCH',
      `this button was made for another plan or policy than job:${job.id}'s; nothing was recorded`,
      true,
    );
  }
}

/**
 * An APPROVE or DENY for one step (SPEC section 2). Everything happens in one transaction
 * with the job row locked: eligibility, the decision row, quorum with current memberships,
 * and, when quorum is met, the CST. Rejections are recorded too, with their reason code.
 */
export async function decideStep(
  ctx: EngineContext,
  input: StepDecisionInput,
  callerTrx?: Db,
): Promise<DecisionOutcome> {
  const outcome = await inTransaction(ctx, callerTrx, async (trx): Promise<DecisionOutcome> => {
    const replay = await previousDecision(trx, input.post?.postId);
    if (replay) return replay;
    const at = ctx.clock();
    let job: JobRow | null = null;
    let groups: string[] = [];
    let expired: JobEnded | undefined;
    try {
      ({ job, expired } = await openJobFor(ctx, trx, input.jobId, input.post, at));
      if (expired) throw new Rejection('ERR_JOB_EXPIRED', `job:${job.id} has expired`, true);
      if (job.status !== 'open') throw new Rejection(closedCode(job), `job:${job.id} is ${job.status}`, true);
      if (input.button) buttonMatchesJob(input.button, job);
      // The kill switch stops approvals; a DENY only ever stops work, so it still counts.
      if (input.kind === 'approve') {
        const pause = await pauseState(trx, 'share');
        if (pause.paused) throw new Rejection('ERR_PAUSED', pausedReason(pause), true);
      }
      const steps = await jobSteps(trx, job.id);
      const step = steps.find((s) => s.step_id === input.step);
      if (!step) {
        throw new Rejection(
          'ERR_STEP_NOT_FOUND',
          `job:${job.id} has no step ${input.step}; its steps are ${steps.map((s) => s.step_id).join(', ')}`,
          true,
        );
      }
      let pinned: PinnedStep;
      try {
        pinned = await pinnedStep(ctx, trx, job, step);
      } catch (err) {
        if (isAppError(err, 'ERR_STEP_RULE_MISMATCH')) throw new Rejection(err.code, err.message, true);
        throw err;
      }
      if (input.button && !(pinned.policy.execution.approval_methods ?? []).includes('button')) {
        throw new Rejection(
          'ERR_FORBIDDEN',
          `policy ${pinned.policy.policy_name} does not take decisions by button; reply with the phrase`,
          true,
        );
      }
      const rule = pinned.rule;
      if (!rule)
        throw new Rejection('ERR_STEP_NOT_GATED', `step ${step.step_id} runs without approval`, true);
      if (step.status !== 'awaiting_approval') {
        throw new Rejection('ERR_STEP_DECIDED', `step ${step.step_id} is already ${step.status}`, true);
      }
      groups = [...(await ctx.directory.groupsOf(input.userId, rule.allowed_approver_groups))];
      if (groups.length === 0) {
        throw new Rejection(
          'ERR_NOT_ELIGIBLE',
          `only members of ${rule.allowed_approver_groups.join(' or ')} may decide step ${step.step_id}`,
          true,
        );
      }
      if (input.userId === job.requester_id && !rule.allow_requester_approval) {
        throw new Rejection('ERR_SELF_APPROVAL', 'the requester cannot approve or deny their own job', true);
      }
      // An agent only asserts who the requester is: approvals count once that person confirms.
      if (input.kind === 'approve' && job.submitted_by !== null && job.requester_confirmed_at === null) {
        throw new Rejection(
          'ERR_REQUESTER_UNCONFIRMED',
          `approvals for job:${job.id} count once its requester confirms with CONFIRM job:${job.id}`,
          true,
        );
      }
      // Asked now, not from a cache: an account deactivated since it posted decides nothing.
      const account = ctx.chat ? await ctx.chat.freshUser(input.userId) : undefined;
      if (account === null || (account && account.delete_at > 0)) {
        throw new Rejection('ERR_APPROVER_DEACTIVATED', 'your Mattermost account is deactivated', true);
      }

      if (input.kind === 'deny') {
        const decisionId = await recordDecision(ctx, trx, at, {
          job,
          namedJob: input.jobId,
          step: step.step_id,
          kind: 'deny',
          userId: input.userId,
          post: input.post,
          ...(input.button ? { button: input.button } : {}),
          outcome: 'accepted',
          code: 'STEP_DENIED',
          reason: input.reason ?? null,
          groups,
          source: stepDecisionSource(input),
        });
        const t = stepTransition(step.status, 'deny');
        if (!t.ok)
          throw new Rejection('ERR_STEP_DECIDED', `step ${step.step_id} is already ${step.status}`, true);
        await setStepStatus(trx, job.id, step.step_id, t.next, at);
        await appendEvent(
          trx,
          job.id,
          'step_denied',
          {
            decision_id: decisionId,
            step: step.step_id,
            user_id: input.userId,
            post_id: input.post?.postId ?? null,
            groups,
            reason: input.reason ?? null,
            ...buttonFields(input.button),
          },
          at,
        );
        const after = (await jobSteps(trx, job.id)).map((s) => s.status);
        const settled = settledStatus(after) ?? 'denied';
        const ended = await endJob(
          ctx,
          trx,
          job,
          settled,
          `step ${step.step_id} denied by ${input.userId}`,
          at,
        );
        return {
          accepted: true,
          code: 'STEP_DENIED',
          message: `step ${step.step_id} denied; job:${job.id} is closed`,
          jobId: job.id,
          step: step.step_id,
          replayed: false,
          decisionId,
          ended,
        };
      }

      const already = await trx
        .selectFrom('decisions')
        .select('id')
        .where('job_id', '=', job.id)
        .where('step_id', '=', step.step_id)
        .where('user_id', '=', input.userId)
        .where('kind', '=', 'approve')
        .where('outcome', '=', 'accepted')
        .where('withdrawn_at', 'is', null)
        .executeTakeFirst();
      if (already) {
        throw new Rejection(
          'ERR_DUPLICATE_APPROVAL',
          `your approval of step ${step.step_id} already counts`,
          true,
        );
      }
      const decisionId = await recordDecision(ctx, trx, at, {
        job,
        namedJob: input.jobId,
        step: step.step_id,
        kind: 'approve',
        userId: input.userId,
        post: input.post,
        ...(input.button ? { button: input.button } : {}),
        outcome: 'accepted',
        code: 'APPROVAL_COUNTED',
        groups,
        source: stepDecisionSource(input),
      });
      await appendEvent(
        trx,
        job.id,
        'approval_recorded',
        {
          decision_id: decisionId,
          step: step.step_id,
          user_id: input.userId,
          post_id: input.post?.postId ?? null,
          groups,
          ...buttonFields(input.button),
        },
        at,
      );
      await publish(ctx, trx, { type: 'job_progressed', job }, at);
      const attempt = await tryMintStep(ctx, trx, job, step, at, pinned);
      if (attempt.minted) {
        return {
          accepted: true,
          code: 'QUORUM_MET',
          message: `step ${step.step_id} approved; CST ${attempt.token.jti} minted for ${attempt.token.sub}`,
          jobId: job.id,
          step: step.step_id,
          replayed: false,
          decisionId,
          minted: attempt.token,
        };
      }
      const quorum =
        attempt.waiting === 'approvals' ? attempt.quorum : await currentQuorum(ctx, trx, job, step, rule);
      return {
        accepted: true,
        code: 'APPROVAL_COUNTED',
        message:
          attempt.waiting === 'simulation'
            ? `approval counted; step ${step.step_id} waits for simulation step ${attempt.simulationStep} to succeed`
            : attempt.waiting === 'deadline'
              ? `approval counted, but job:${job.id} expires before a token could be used; none was minted`
              : attempt.waiting === 'confirmation'
                ? `approval counted; job:${job.id} waits for its requester to confirm it`
                : `approval counted; ${quorum.missing} more needed`,
        jobId: job.id,
        step: step.step_id,
        replayed: false,
        decisionId,
        missing: {
          approvals: quorum.missing,
          openGroups: quorum.openGroups,
          simulationStep: attempt.waiting === 'simulation' ? attempt.simulationStep : null,
        },
      };
    } catch (err) {
      if (!(err instanceof Rejection)) throw err;
      return rejectedOutcome(ctx, trx, at, err, {
        job,
        jobId: input.jobId,
        step: input.step,
        kind: input.kind,
        userId: input.userId,
        post: input.post,
        ...(input.button ? { button: input.button } : {}),
        reason: input.reason ?? null,
        groups,
        ...(expired ? { expired } : {}),
        source: stepDecisionSource(input),
      });
    }
  });
  if (!outcome.replayed && !callerTrx) ctx.notifier.changed(outcome.jobId);
  ctx.log.info(
    {
      jobId: outcome.jobId,
      step: outcome.step,
      kind: input.kind,
      method: input.button ? 'button' : 'phrase',
      code: outcome.code,
      userId: input.userId,
    },
    outcome.accepted ? 'decision accepted' : 'decision rejected',
  );
  return outcome;
}

export interface Withdrawal {
  withdrawn: boolean;
  jobId: number | null;
  step: string | null;
  /** Who had approved (when there was a counted approval on the post). */
  userId?: string;
  reason: string;
}

/**
 * An approval whose post was edited or deleted before its step was minted no longer counts
 * (SPEC section 2 rule 5). After minting it is too late; the edit is recorded in the log only.
 */
export async function withdrawApproval(
  ctx: EngineContext,
  input: { postId: string; why: 'edited' | 'deleted' },
  callerTrx?: Db,
): Promise<Withdrawal> {
  const result = await inTransaction(ctx, callerTrx, async (trx): Promise<Withdrawal> => {
    const d = await trx
      .selectFrom('decisions')
      .selectAll()
      .where('post_id', '=', input.postId)
      .executeTakeFirst();
    if (!d || d.job_id === null || d.kind !== 'approve' || d.outcome !== 'accepted') {
      return {
        withdrawn: false,
        jobId: d?.job_id ?? null,
        step: d?.step_id ?? null,
        reason: 'no counted approval on this post',
      };
    }
    const job = await lockExistingJob(trx, d.job_id);
    const fresh = await trx
      .selectFrom('decisions')
      .selectAll()
      .where('id', '=', d.id)
      .executeTakeFirstOrThrow();
    if (fresh.withdrawn_at !== null)
      return { withdrawn: false, jobId: job.id, step: d.step_id, reason: 'already withdrawn' };
    const step = await trx
      .selectFrom('job_steps')
      .select('status')
      .where('job_id', '=', job.id)
      .where('step_id', '=', d.step_id ?? '')
      .executeTakeFirst();
    if (job.status !== 'open' || step?.status !== 'awaiting_approval') {
      return { withdrawn: false, jobId: job.id, step: d.step_id, reason: 'the step was already decided' };
    }
    const at = ctx.clock();
    await markWithdrawn(
      ctx,
      trx,
      job,
      { id: d.id, step: d.step_id ?? '', userId: d.user_id, postId: input.postId },
      input.why,
      at,
      'event',
    );
    return {
      withdrawn: true,
      jobId: job.id,
      step: d.step_id,
      userId: d.user_id,
      reason: `approval withdrawn: post ${input.why}`,
    };
  });
  if (result.withdrawn && result.jobId !== null && !callerTrx) ctx.notifier.changed(result.jobId);
  return result;
}
