import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { DecisionKind, DecisionRow, JobEventRow, JobRow } from '../db/schema.js';
import { AppError, type AppErrorCode, isAppError } from '../errors.js';
import { type EngineContext, inTransaction } from '../jobs/context.js';
import { type DecisionSource, noteDecision } from '../jobs/engine-metrics.js';
import { endJob } from '../jobs/end-job.js';
import { pausedReason } from '../jobs/kill-switch.js';
import type { JobEnded } from '../jobs/job-events.js';
import { closedCode, lockExistingJob, lockJob } from '../jobs/job-repository.js';
import {
  type DecisionNeedsState,
  lockForDecision,
  readDecisionNeeds,
  readJobState,
  WriteBatch,
} from '../jobs/job-state.js';
import { isExpired, settledStatus, stepTransition } from '../jobs/state-machine.js';
import { planPostKey, writeThreadBinding } from '../chat/outbox.js';
import { OUTBOX_KEY_PROP } from '../chat/outbox-delivery.js';
import { appendEvent } from '../proofs/event-chain.js';
import { firstRejection } from '../proofs/rejection-summary.js';
import type { ApprovalRule } from '../policy/types.js';
import { ChatSnapshot, type FactsNeeded, SnapshotMiss } from './chat-snapshot.js';
import { markWithdrawn } from './recheck-approvals.js';
import type { MintedToken } from '../jobs/job-events.js';
import {
  mintNeeds,
  mintOn,
  type MintScope,
  type PinnedStep,
  pinnedStepOf,
  publishAll,
  quorumOn,
} from '../tokens/mint-step-token.js';

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
  /**
   * What `readDecisionNeeds` gives for this job and step, read by the caller in the transaction it
   * passes, after the post's lock (one statement less): the first attempt uses it, a later one
   * reads again.
   */
  needsRead?: { state: DecisionNeedsState | undefined };
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
  facts: ChatSnapshot,
): Promise<{ job: JobRow; expired?: JobEnded }> {
  let job = await lockJob(trx, jobId);
  // What Mattermost said while this waited for the locks counts: a changed answer starts again.
  facts.assertCurrent();
  if (!job) throw new Rejection('ERR_JOB_NOT_FOUND', `job:${jobId} does not exist`, false);
  if (post) ({ job } = await inJobThread(trx, job, post, facts, at));
  if (isExpired(job, at)) {
    const expired = await endJob(ctx, trx, job, 'expired', 'approval window elapsed', at);
    return { job: { ...job, status: 'expired' }, expired };
  }
  return { job };
}

/**
 * The root posts a decision on `job` by `post` may need to know (read without locks): the
 * post's root when the job has no thread recorded yet, so that `inJobThread` can tell whether
 * it is the job's plan post.
 */
export function threadNeeds(
  job: Pick<JobRow, 'channel_id' | 'root_post_id'> | undefined,
  post: PostContext | undefined,
): string[] {
  if (!job || !post || job.root_post_id !== null) return [];
  return post.channelId === job.channel_id && post.rootId !== post.postId ? [post.rootId] : [];
}

/**
 * With the job locked: `post` must be in the job's thread, else ERR_WRONG_THREAD. An agent's job
 * whose plan post Mattermost has made but whose thread is not recorded yet (another replica is
 * still posting it; a crash or a lost answer between the post and its recording) is bound here,
 * as its delivery would bind it (`bindJobThread`: the row's `root_post_id`, and a `thread_bound`
 * event while the job is open), when Mattermost, asked before the lock, said the post's root is
 * the bot's own root post in the job's channel carrying the plan post's outbox key. Returns the
 * job as it now is, and the event written, if any.
 */
async function inJobThread(
  trx: Db,
  job: JobRow,
  post: PostContext,
  facts: ChatSnapshot,
  at: Date,
): Promise<{ job: JobRow; bound: JobEventRow | null }> {
  const wrong = () =>
    new Rejection('ERR_WRONG_THREAD', `decisions for job:${job.id} count only in its own thread`, true);
  if (post.channelId !== job.channel_id) throw wrong();
  if (job.root_post_id !== null) {
    if (post.rootId !== job.root_post_id) throw wrong();
    return { job, bound: null };
  }
  // A job without a thread (no plan post made) takes no chat decision.
  const plan = { name: OUTBOX_KEY_PROP, value: planPostKey(job.id) };
  if (post.rootId === post.postId || !facts.isOwnRootPost(post.rootId, job.channel_id, plan)) throw wrong();
  const bound = await writeThreadBinding(trx, job, post.rootId, at);
  return { job: { ...job, root_post_id: post.rootId }, bound };
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

/** How many attempts of a decision may end without progress before it gives up. */
export const DECIDE_ATTEMPTS = 4;
/** The most attempts of one decision, progress or not. */
export const DECIDE_ATTEMPTS_MAX = 64;

/**
 * A deciding transaction on Mattermost's answers, asked before it takes any lock: `needs`
 * (read without locks) names what to ask, `work` decides with the job locked, and calls
 * `facts.assertCurrent()` once it holds its locks. When `work` throws `SnapshotMiss` (an
 * answer it needs was not asked, or one changed while it waited for the locks), its
 * transaction rolls back and Mattermost is asked again.
 *
 * An attempt that needed an answer not needed by any attempt before it made progress: the job
 * moved on (people approving at the same moment), and the next attempt asks about them too.
 * Twenty people approving one step at once must not starve one of them. Any other miss (an
 * answer that changed, or the same answer missing again) is an attempt without progress. After
 * `DECIDE_ATTEMPTS` of those, or `DECIDE_ATTEMPTS_MAX` attempts in all, nothing is decided and
 * `ERR_DIRECTORY_UNAVAILABLE` is thrown.
 */
export async function decideOnSnapshot<T>(
  ctx: EngineContext,
  callerTrx: Db | undefined,
  jobId: number,
  needs: (db: Db) => Promise<FactsNeeded>,
  work: (trx: Db, facts: ChatSnapshot) => Promise<T>,
): Promise<T> {
  const missed = new Set<string>();
  let stalled = 0;
  for (let n = 1; ; n++) {
    const facts = await ChatSnapshot.gather(ctx, await needs(callerTrx ?? ctx.db));
    try {
      return await attempt(ctx, callerTrx, (trx) => work(trx, facts));
    } catch (err) {
      if (!(err instanceof SnapshotMiss)) throw err;
      ctx.log.info({ jobId, attempt: n, why: err.message }, 'decision starts again');
      if (err.changed || missed.has(err.message)) stalled += 1;
      missed.add(err.message);
      if (stalled >= DECIDE_ATTEMPTS || n >= DECIDE_ATTEMPTS_MAX) {
        throw new AppError(
          'ERR_DIRECTORY_UNAVAILABLE',
          `what Mattermost said about job:${jobId} kept changing while it was asked; nothing was decided, try again`,
          { cause: err },
        );
      }
    }
  }
}

/**
 * Runs one attempt of a deciding transaction: its own, or (inside the caller's) under a
 * savepoint, so that an attempt that must start again releases the job row lock it took.
 */
async function attempt<T>(
  ctx: EngineContext,
  callerTrx: Db | undefined,
  work: (trx: Db) => Promise<T>,
): Promise<T> {
  if (!callerTrx) return ctx.db.transaction().execute(work);
  await sql`savepoint decide_step`.execute(callerTrx);
  try {
    return await work(callerTrx);
  } catch (err) {
    if (err instanceof SnapshotMiss) await sql`rollback to savepoint decide_step`.execute(callerTrx);
    throw err;
  }
}

/**
 * What a decision may ask Mattermost, read without locks: the decider's memberships and
 * account and, for an APPROVE, what minting may need (see `mintNeeds`). Nothing when the job
 * or step cannot take the decision as it stands: the locked re-read will refuse it without
 * asking, or, if it changed meanwhile, start again.
 */
async function decisionNeeds(
  db: Db,
  input: StepDecisionInput,
  read: { state: DecisionNeedsState | undefined } | undefined,
): Promise<FactsNeeded> {
  const state = read ? read.state : await readDecisionNeeds(db, { jobId: input.jobId, stepId: input.step });
  const job = state?.job;
  const thread = threadNeeds(job, input.post);
  const none: FactsNeeded = { memberships: [], accounts: [], posts: thread };
  if (!state || !job || job.status !== 'open') return none;
  const step = state.steps.find((x) => x.step_id === input.step);
  if (!step || step.rule === null || step.status !== 'awaiting_approval') return none;
  const rule = JSON.parse(step.rule) as ApprovalRule;
  const decider = { userId: input.userId, groups: rule.allowed_approver_groups };
  if (input.kind === 'deny') return { memberships: [decider], accounts: [input.userId], posts: thread };
  const mint = mintNeeds(job, rule, state.live, state.confirmation, {
    userId: input.userId,
    postId: input.post?.postId ?? null,
  });
  return {
    memberships: [decider, ...mint.memberships],
    accounts: [input.userId, ...mint.accounts],
    posts: [...thread, ...mint.posts],
  };
}

/**
 * An APPROVE or DENY for one step (SPEC section 2). Mattermost is asked first, before any lock
 * (the decider's and every live approver's memberships and accounts, the approval posts, the
 * requester's confirmation); then one transaction, with the job row locked, evaluates every
 * rule on those answers and what the database holds now: eligibility, the decision row, quorum
 * and, when it is met, the CST. If it needs an answer that was not asked (an approval arrived
 * meanwhile), it rolls back and starts again. Rejections are recorded too, with their reason code.
 */
export async function decideStep(
  ctx: EngineContext,
  input: StepDecisionInput,
  callerTrx?: Db,
): Promise<DecisionOutcome> {
  // Read by the caller only in its own transaction, and good for the first attempt only.
  let read = callerTrx ? input.needsRead : undefined;
  const outcome = await decideOnSnapshot(
    ctx,
    callerTrx,
    input.jobId,
    (db) => {
      const first = read;
      read = undefined;
      return decisionNeeds(db, input, first);
    },
    (trx, facts) => decideLocked(ctx, trx, input, facts),
  );
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

function replayOf(d: DecisionRow): DecisionOutcome {
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
 * One attempt of `decideStep`, in its transaction: two statements read (the locks, then the
 * state), one writes (decision, events, token, step), and nothing but `facts` is asked of
 * Mattermost. Once locked, `facts` must still be current (`assertCurrent`).
 */
async function decideLocked(
  ctx: EngineContext,
  trx: Db,
  input: StepDecisionInput,
  facts: ChatSnapshot,
): Promise<DecisionOutcome> {
  const locked = await lockForDecision(trx, input.jobId, input.post?.postId);
  // What Mattermost said while this waited for the locks counts: a changed answer starts again.
  facts.assertCurrent();
  const at = ctx.clock();
  let job: JobRow | null = null;
  let groups: string[] = [];
  let expired: JobEnded | undefined;
  const source = stepDecisionSource(input);
  try {
    if (!locked) {
      const replay = await previousDecision(trx, input.post?.postId);
      if (replay) return replay;
      throw new Rejection('ERR_JOB_NOT_FOUND', `job:${input.jobId} does not exist`, false);
    }
    const state = await readJobState(trx, {
      jobId: locked.id,
      stepId: input.step,
      policyHash: locked.policy_hash_b64u,
      decisionFor: { userId: input.userId, postId: input.post?.postId ?? null },
    });
    if (state.previous) return replayOf(state.previous);
    job = locked;
    if (input.post) {
      const inThread = await inJobThread(trx, job, input.post, facts, at);
      job = inThread.job;
      // The batch's events follow the binding in the chain.
      if (inThread.bound) state.head = { seq: inThread.bound.seq, hash: inThread.bound.event_hash_b64u };
    }
    if (isExpired(job, at)) {
      expired = await endJob(ctx, trx, job, 'expired', 'approval window elapsed', at);
      job = { ...job, status: 'expired' };
      throw new Rejection('ERR_JOB_EXPIRED', `job:${job.id} has expired`, true);
    }
    if (job.status !== 'open') throw new Rejection(closedCode(job), `job:${job.id} is ${job.status}`, true);
    if (input.button) buttonMatchesJob(input.button, job);
    // The kill switch stops approvals; a DENY only ever stops work, so it still counts.
    if (input.kind === 'approve' && state.paused)
      throw new Rejection('ERR_PAUSED', pausedReason({ reason: state.pauseReason }), true);
    const steps = state.steps;
    const step = steps.find((x) => x.step_id === input.step);
    if (!step) {
      throw new Rejection(
        'ERR_STEP_NOT_FOUND',
        `job:${job.id} has no step ${input.step}; its steps are ${steps.map((x) => x.step_id).join(', ')}`,
        true,
      );
    }
    let pinned: PinnedStep;
    try {
      pinned = pinnedStepOf(ctx, job, step, state.policyRows);
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
    if (!rule) throw new Rejection('ERR_STEP_NOT_GATED', `step ${step.step_id} runs without approval`, true);
    if (step.status !== 'awaiting_approval') {
      throw new Rejection('ERR_STEP_DECIDED', `step ${step.step_id} is already ${step.status}`, true);
    }
    groups = [
      ...new Set(facts.membershipsOf(input.userId, rule.allowed_approver_groups).map((m) => m.group)),
    ];
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
    // Asked of Mattermost just before the lock, not from a cache: an account deactivated since it posted decides nothing.
    const account = facts.account(input.userId);
    if (account === null || (account && account.delete_at > 0)) {
      throw new Rejection('ERR_APPROVER_DEACTIVATED', 'your Mattermost account is deactivated', true);
    }
    if (input.kind === 'approve' && state.live.some((d) => d.user_id === input.userId)) {
      throw new Rejection(
        'ERR_DUPLICATE_APPROVAL',
        `your approval of step ${step.step_id} already counts`,
        true,
      );
    }

    const decisionId = state.decisionId!;
    const batch = new WriteBatch(job.id, state.head);
    batch.decisions.push({
      id: decisionId,
      job_id: job.id,
      named_job: input.jobId,
      step_id: step.step_id,
      kind: input.kind,
      user_id: input.userId,
      post_id: input.post?.postId ?? null,
      outcome: 'accepted',
      reason_code: input.kind === 'deny' ? 'STEP_DENIED' : 'APPROVAL_COUNTED',
      reason: input.kind === 'deny' ? (input.reason ?? null) : null,
      groups: JSON.stringify([...groups].sort()),
      created_at: at,
    });
    await noteDecision(ctx, trx, {
      kind: input.kind,
      outcome: 'accepted',
      code: input.kind === 'deny' ? 'STEP_DENIED' : 'APPROVAL_COUNTED',
      source,
    });

    if (input.kind === 'deny') {
      const t = stepTransition(step.status, 'deny');
      if (!t.ok)
        throw new Rejection('ERR_STEP_DECIDED', `step ${step.step_id} is already ${step.status}`, true);
      batch.setStep(step.step_id, t.next, at);
      batch.append(
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
      await batch.flush(trx);
      const after = steps.map((x) => (x.step_id === step.step_id ? t.next : x.status));
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

    const recorded = batch.append(
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
    state.live = [
      ...state.live,
      { id: decisionId, user_id: input.userId, post_id: input.post?.postId ?? null, created_at: at },
    ];
    state.approvalEvents.set(decisionId, recorded.event_hash_b64u);
    const scope: MintScope = { job, step, state, facts, batch, events: [], pinned };
    const tried = await mintOn(ctx, trx, scope, at);
    await batch.flush(trx);
    // A mint re-renders the job's status as well: the approval needs no announcement of its own.
    await publishAll(
      ctx,
      trx,
      tried.minted ? scope.events : [{ type: 'job_progressed', job }, ...scope.events],
      at,
    );
    if (tried.minted) {
      return {
        accepted: true,
        code: 'QUORUM_MET',
        message: `step ${step.step_id} approved; CST ${tried.token.jti} minted for ${tried.token.sub}`,
        jobId: job.id,
        step: step.step_id,
        replayed: false,
        decisionId,
        minted: tried.token,
      };
    }
    const quorum =
      tried.waiting === 'approvals' ? tried.quorum : await quorumOn(job, rule, state.live, facts);
    return {
      accepted: true,
      code: 'APPROVAL_COUNTED',
      message:
        tried.waiting === 'simulation'
          ? `approval counted; step ${step.step_id} waits for simulation step ${tried.simulationStep} to succeed`
          : tried.waiting === 'deadline'
            ? `approval counted, but job:${job.id} expires before a token could be used; none was minted`
            : tried.waiting === 'confirmation'
              ? `approval counted; job:${job.id} waits for its requester to confirm it`
              : `approval counted; ${quorum.missing} more needed`,
      jobId: job.id,
      step: step.step_id,
      replayed: false,
      decisionId,
      missing: {
        approvals: quorum.missing,
        openGroups: quorum.openGroups,
        simulationStep: tried.waiting === 'simulation' ? tried.simulationStep : null,
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
      source,
    });
  }
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
