import { canonicalJson } from '../crypto/jcs.js';
import type { Db } from '../db/database.js';
import type { JobRow, JobStepRow, WpcRegistryRow } from '../db/schema.js';
import { AppError, isAppError } from '../errors.js';
import { ChatSnapshot, type FactsNeeded } from '../approvals/chat-snapshot.js';
import type { GroupMembership } from '../approvals/directory.js';
import { evaluateQuorum, type QuorumResult } from '../approvals/quorum.js';
import { recheckOnSnapshot } from '../approvals/recheck-approvals.js';
import { confirmationStandsOn } from '../approvals/requester-confirmation.js';
import { type EngineContext, publish } from '../jobs/context.js';
import { noteMint } from '../jobs/engine-metrics.js';
import type { JobEvent, MintedToken } from '../jobs/job-events.js';
import { jobPlan } from '../jobs/job-repository.js';
import {
  type ConfirmDecision,
  type JobState,
  type LiveDecision,
  readJobState,
  WriteBatch,
} from '../jobs/job-state.js';
import { classifyPlan, planHash } from '../jobs/plan.js';
import { stepTransition } from '../jobs/state-machine.js';
import type { ApprovalRecord } from '../proofs/two-person.js';
import { assertHashFormat, verifiedApprovalPolicy } from '../policy/registry.js';
import { matchesPattern } from '../policy/tool-pattern.js';
import type { ApprovalRule, Wpc } from '../policy/types.js';
import { missionId, stepScope } from './cst-claims.js';
import { issueToken } from './issue-token.js';

export type MintAttempt =
  | { minted: true; token: MintedToken }
  | { minted: false; waiting: 'approvals'; quorum: QuorumResult }
  | { minted: false; waiting: 'simulation'; simulationStep: string }
  | { minted: false; waiting: 'nothing' }
  /** The stored step disagrees with the pinned policy: nothing is minted on it (logged as an error). */
  | { minted: false; waiting: 'rule_mismatch' }
  /** Less than a whole second of the job is left: no token could outlive it, so none is minted. */
  | { minted: false; waiting: 'deadline' }
  /** An agent's job whose requester has not confirmed it (or whose confirmation was withdrawn). */
  | { minted: false; waiting: 'confirmation' }
  /** Work is paused (the kill switch): nothing is minted until it resumes (the mint sweep then does). */
  | { minted: false; waiting: 'paused' };

/** The job's pinned policy from its registry rows, verified (by bytes, see `verifiedApprovalPolicy`). */
function pinnedPolicyOf(ctx: EngineContext, job: JobRow, rows: readonly WpcRegistryRow[]): Wpc {
  try {
    assertHashFormat(job.policy_hash_b64u);
    return verifiedApprovalPolicy(job.policy_hash_b64u, rows, ctx.keyRing.trusts);
  } catch (err) {
    throw new AppError(
      'ERR_POLICY_UNAVAILABLE',
      `job:${job.id}'s pinned policy cannot be verified; nothing is minted`,
      {
        cause: err,
      },
    );
  }
}

async function policyRows(trx: Db, hash: string): Promise<WpcRegistryRow[]> {
  return trx.selectFrom('wpc_registry').selectAll().where('policy_hash_b64u', '=', hash).execute();
}

/** The job's pinned policy, verified from the registry (signature and hash; see `verifiedApprovalPolicy`) on every use. */
export async function pinnedPolicy(ctx: EngineContext, trx: Db, job: JobRow): Promise<Wpc> {
  return pinnedPolicyOf(ctx, job, await policyRows(trx, job.policy_hash_b64u));
}

/** A step as the job's pinned policy classifies it: its approval rule (null: runs without approval) and simulation step. */
export interface PinnedStep {
  policy: Wpc;
  rule: ApprovalRule | null;
  simulationStep: string | null;
}

/** What a job's plan classifies to under a verified policy: the same answer for the same pair. */
const classifiedPlans = new WeakMap<Wpc, Map<string, ReturnType<typeof classifyPlan> | null>>();
const CLASSIFIED_PER_POLICY_MAX = 256;

function classifiedPlan(policy: Wpc, job: JobRow): ReturnType<typeof classifyPlan> | null {
  let plans = classifiedPlans.get(policy);
  if (!plans) classifiedPlans.set(policy, (plans = new Map()));
  const key = `${job.plan_hash_b64u}\n${job.plan}`;
  if (plans.has(key)) return plans.get(key)!;
  const plan = jobPlan(job);
  const classified = planHash(plan) === job.plan_hash_b64u ? classifyPlan(policy, plan) : null;
  plans.set(key, classified);
  if (plans.size > CLASSIFIED_PER_POLICY_MAX) plans.delete(plans.keys().next().value!);
  return classified;
}

/**
 * The step's gate, rule and simulation prerequisite, derived now from the pinned, verified
 * policy and the job's plan (SPEC section 2 rule 5: "the rule applied is the one in the pinned,
 * verified policy"). The `job_steps` row is the copy written at creation; if it or the plan no
 * longer agrees, something changed them behind the engine's back, and nothing is decided or
 * minted on them: ERR_STEP_RULE_MISMATCH, logged as an error.
 */
export function pinnedStepOf(
  ctx: EngineContext,
  job: JobRow,
  step: JobStepRow,
  rows: readonly WpcRegistryRow[],
): PinnedStep {
  const policy = pinnedPolicyOf(ctx, job, rows);
  const classified = classifiedPlan(policy, job);
  const expected = classified?.ok ? classified.steps.find((s) => s.id === step.step_id) : undefined;
  const rule = expected?.classification.gate === 'gated' ? expected.classification.rule : null;
  if (
    !expected ||
    expected.tool !== step.tool ||
    expected.classification.gate !== step.gate ||
    (rule === null ? null : canonicalJson(rule)) !== step.rule ||
    expected.simulationStep !== step.simulation_step
  ) {
    ctx.log.error(
      { jobId: job.id, step: step.step_id, policyHash: job.policy_hash_b64u },
      'stored step disagrees with the pinned policy; refusing to decide or mint',
    );
    throw new AppError(
      'ERR_STEP_RULE_MISMATCH',
      `step ${step.step_id} of job:${job.id} no longer matches its pinned policy; nothing is decided or minted`,
    );
  }
  return { policy, rule, simulationStep: expected.simulationStep };
}

/** `pinnedStepOf`, reading the registry rows. */
export async function pinnedStep(
  ctx: EngineContext,
  trx: Db,
  job: JobRow,
  step: JobStepRow,
): Promise<PinnedStep> {
  return pinnedStepOf(ctx, job, step, await policyRows(trx, job.policy_hash_b64u));
}

/** A live approval as quorum saw it: its decision, its post, and how its author was found in each allowed group. */
export interface LiveApproval {
  decisionId: number;
  postId: string | null;
  foundIn: GroupMembership[];
}

export type CurrentQuorum = QuorumResult & { live: Map<string, LiveApproval> };

/**
 * The two-person rule over live approvals, with memberships as `membershipsOf` answers them
 * (SPEC section 2: "at the moment quorum is evaluated"). Approvers in `inactive` do not count.
 */
async function quorumOver(
  job: JobRow,
  rule: ApprovalRule,
  live: readonly Pick<LiveDecision, 'id' | 'user_id' | 'post_id'>[],
  membershipsOf: (
    userId: string,
    groups: readonly string[],
  ) => GroupMembership[] | Promise<GroupMembership[]>,
  inactive: ReadonlySet<string>,
): Promise<CurrentQuorum> {
  const approvals = [];
  const seen = new Map<string, LiveApproval>();
  for (const d of live) {
    if (d.user_id === job.requester_id && !rule.allow_requester_approval) continue;
    if (inactive.has(d.user_id)) continue;
    const foundIn = await membershipsOf(d.user_id, rule.allowed_approver_groups);
    seen.set(d.user_id, { decisionId: d.id, postId: d.post_id, foundIn });
    approvals.push({ userId: d.user_id, groups: foundIn.map((m) => m.group) });
  }
  const quorum = evaluateQuorum(
    {
      requiredApprovals: rule.required_approvals,
      distinctGroups: rule.distinct_groups,
      allowedGroups: rule.allowed_approver_groups,
    },
    approvals,
  );
  return { ...quorum, live: seen };
}

/** The quorum on the snapshot's memberships (no network: the caller holds the job row lock). */
export function quorumOn(
  job: JobRow,
  rule: ApprovalRule,
  live: readonly LiveDecision[],
  facts: ChatSnapshot,
  inactive: ReadonlySet<string> = new Set(),
): Promise<CurrentQuorum> {
  return quorumOver(job, rule, live, (u, g) => facts.membershipsOf(u, g), inactive);
}

/**
 * Live approvals for a step, re-checked against the directory now, for display (the job view):
 * it asks the directory, so never call it holding a job row lock.
 */
export async function currentQuorum(
  ctx: EngineContext,
  db: Db,
  job: JobRow,
  step: JobStepRow,
  rule: ApprovalRule | null,
  inactive: ReadonlySet<string> = new Set(),
): Promise<CurrentQuorum> {
  if (!rule) return { met: true, counted: [], missing: 0, openGroups: [], live: new Map() };
  const live = await db
    .selectFrom('decisions')
    .select(['id', 'user_id', 'post_id'])
    .where('job_id', '=', job.id)
    .where('step_id', '=', step.step_id)
    .where('kind', '=', 'approve')
    .where('outcome', '=', 'accepted')
    .where('withdrawn_at', 'is', null)
    .orderBy('id')
    .execute();
  return quorumOver(job, rule, live, (u, g) => ctx.directory.membershipsOf(u, g), inactive);
}

/**
 * What Mattermost must be asked before a mint on `step` is evaluated with the job locked: every
 * live approver's memberships; and, when enough people approved that quorum may be met, their
 * posts and accounts and the requester's confirmation (SPEC section 2 rule 5). `extra` is an
 * approval about to be recorded in the same transaction (the deciding one).
 */
export function mintNeeds(
  job: JobRow,
  rule: ApprovalRule | null,
  live: readonly Pick<LiveDecision, 'user_id' | 'post_id'>[],
  confirmation: ConfirmDecision | null,
  extra?: { userId: string; postId: string | null },
): FactsNeeded {
  const needs: FactsNeeded & { accounts: Set<string>; posts: Set<string> } = {
    memberships: [],
    accounts: new Set(),
    posts: new Set(),
  };
  if (rule === null) return needs;
  const all = [...live, ...(extra ? [{ user_id: extra.userId, post_id: extra.postId }] : [])];
  const users = new Set<string>();
  for (const d of all) {
    if (d.user_id === job.requester_id && !rule.allow_requester_approval) continue;
    users.add(d.user_id);
  }
  for (const userId of users) needs.memberships.push({ userId, groups: rule.allowed_approver_groups });
  if (users.size >= rule.required_approvals) {
    for (const d of all) {
      needs.accounts.add(d.user_id);
      if (d.post_id !== null) needs.posts.add(d.post_id);
    }
    if (job.submitted_by !== null && confirmation) {
      needs.accounts.add(confirmation.userId);
      if (confirmation.postId !== null) needs.posts.add(confirmation.postId);
    }
  }
  return needs;
}

/** Everything a mint evaluated with the job locked reads and writes. */
export interface MintScope {
  job: JobRow;
  step: JobStepRow;
  state: JobState;
  facts: ChatSnapshot;
  batch: WriteBatch;
  /** Published, in this order, once the batch is written. */
  events: JobEvent[];
  pinned?: PinnedStep;
}

/**
 * The two-person snapshot of a mint (issue 10 section 3): the effective rule of the pinned
 * policy, the requester, and for each counted approver how they were found in each allowed
 * group. It goes into the `token_minted` payload, so it is hashed into the chain, and the
 * sealed bundle carries it for `checkTwoPerson` to re-check offline.
 */
function approvalRecord(
  job: JobRow,
  rule: ApprovalRule,
  quorum: CurrentQuorum,
  eventOfDecision: ReadonlyMap<number, string>,
  usernames: ReadonlyMap<string, string>,
  at: Date,
): ApprovalRecord {
  return {
    rule: {
      required_approvals: rule.required_approvals,
      allowed_approver_groups: [...rule.allowed_approver_groups],
      distinct_groups: rule.distinct_groups,
      allow_requester_approval: rule.allow_requester_approval,
    },
    requester_id: job.requester_id,
    evaluated_at: at.toISOString(),
    approvers: quorum.counted.map((c) => {
      const live = quorum.live.get(c.userId);
      const eventHash = live ? eventOfDecision.get(live.decisionId) : undefined;
      // Every accepted approval is chained when it is recorded: a gap here is corruption.
      if (!live || eventHash === undefined)
        throw new AppError(
          'ERR_INTERNAL',
          `job:${job.id}: approval by ${c.userId} has no approval_recorded event`,
        );
      return {
        user_id: c.userId,
        username: usernames.get(c.userId) ?? null,
        post_id: live.postId,
        approval_event_hash_b64u: eventHash,
        counted_for: c.group,
        found_in: live.foundIn.map((m) => ({ group: m.group, via: m.via, ref: m.ref })),
      };
    }),
  };
}

/**
 * Mints the step's CST if everything SPEC section 2 asks holds now: the step still awaits
 * approval, its simulation (if any) succeeded, and the quorum is met with the memberships,
 * posts and accounts Mattermost gave just before the lock was taken. Runs with the job row
 * locked, on the state read after the lock; writes go to the scope's batch (the unique
 * (job, step) constraint on tokens makes a second token impossible even if the lock failed).
 * Throws `SnapshotMiss` when it needs an answer the snapshot lacks.
 */
export async function mintOn(ctx: EngineContext, trx: Db, s: MintScope, at: Date): Promise<MintAttempt> {
  const { job, step, state, facts, batch } = s;
  if (step.status !== 'awaiting_approval') return { minted: false, waiting: 'nothing' };
  if (state.paused) return { minted: false, waiting: 'paused' };
  let effective: PinnedStep;
  try {
    effective = s.pinned ?? pinnedStepOf(ctx, job, step, state.policyRows);
  } catch (err) {
    if (isAppError(err, 'ERR_STEP_RULE_MISMATCH')) return { minted: false, waiting: 'rule_mismatch' };
    throw err;
  }
  if (effective.simulationStep !== null) {
    const sim = state.steps.find((x) => x.step_id === effective.simulationStep);
    if (sim?.status !== 'succeeded')
      return { minted: false, waiting: 'simulation', simulationStep: effective.simulationStep };
  }
  // Gated work of an agent's job needs its requester's confirmation (checked again below).
  if (effective.rule !== null && job.submitted_by !== null && job.requester_confirmed_at === null)
    return { minted: false, waiting: 'confirmation' };
  let live = state.live;
  let quorum: CurrentQuorum =
    effective.rule === null
      ? { met: true, counted: [], missing: 0, openGroups: [], live: new Map() }
      : await quorumOn(job, effective.rule, live, facts);
  if (!quorum.met) return { minted: false, waiting: 'approvals', quorum };
  let usernames: ReadonlyMap<string, string> = new Map();
  if (effective.rule !== null) {
    // Met on what the database says: confirm with Mattermost's answers (posts unedited, approvers active).
    const recheck = recheckOnSnapshot(ctx, s, at);
    usernames = recheck.usernames;
    if (recheck.withdrawn.size > 0 || recheck.inactive.size > 0) {
      live = live.filter((d) => !recheck.withdrawn.has(d.id));
      state.live = live;
      quorum = await quorumOn(job, effective.rule, live, facts, recheck.inactive);
      if (!quorum.met) return { minted: false, waiting: 'approvals', quorum };
    }
    // The requester's confirmation, like the approvals, is read from Mattermost's answers.
    if (!confirmationStandsOn(ctx, s, at)) return { minted: false, waiting: 'confirmation' };
  }

  const req = effective.policy.token_requirements;
  if (!matchesPattern(req.subject, job.executor)) {
    throw new AppError(
      'ERR_FORBIDDEN',
      `executor ${job.executor} does not match the policy's token subject ${req.subject}`,
    );
  }
  const transition = stepTransition(step.status, 'mint');
  if (!transition.ok)
    throw new AppError('ERR_STEP_STATE', `step ${step.step_id} cannot be minted from ${step.status}`);
  // In whole seconds as the token states them: exp never passes the job's deadline.
  const remaining = Math.floor(job.expires_at.getTime() / 1000) - Math.floor(at.getTime() / 1000);
  const ttl = Math.min(req.cst_ttl_seconds_max, remaining);
  if (ttl < 1) return { minted: false, waiting: 'deadline' };

  const approval =
    effective.rule === null
      ? null
      : approvalRecord(job, effective.rule, quorum, state.approvalEvents, usernames, at);
  const issued = await issueToken({
    key: ctx.keyRing.active,
    scope: {
      sub: job.executor,
      aud: req.audience,
      scope: stepScope({ id: step.step_id, tool: step.tool }, job.plan_hash_b64u, req.extra_scopes),
      policy_hash_b64u: job.policy_hash_b64u,
      mission_id: missionId(job.id),
    },
    issuedAt: at,
    ttlSeconds: ttl,
  });
  const c = issued.claims;
  batch.tokens.push({
    jti: c.jti,
    job_id: job.id,
    step_id: step.step_id,
    sub: c.sub,
    kid: issued.kid,
    token_hash: issued.tokenHash,
    scope_hash_b64u: c.token_scope_hash_b64u,
    compact: issued.compact,
    issued_at: new Date(c.iat * 1000),
    expires_at: new Date(c.exp * 1000),
  });
  batch.setStep(step.step_id, transition.next, at);
  batch.append(
    'token_minted',
    {
      step: step.step_id,
      tool: step.tool,
      gate: step.gate,
      jti: c.jti,
      token_hash: issued.tokenHash,
      kid: issued.kid,
      sub: c.sub,
      aud: c.aud,
      scope: c.scope,
      iat: c.iat,
      exp: c.exp,
      token_scope_hash_b64u: c.token_scope_hash_b64u,
      policy_hash_b64u: c.policy_hash_b64u,
      plan_hash_b64u: job.plan_hash_b64u,
      counted: quorum.counted.map((q) => ({
        user_id: q.userId,
        group: q.group,
        decision_id: quorum.live.get(q.userId)?.decisionId ?? null,
      })),
      approval,
    },
    at,
  );
  const token: MintedToken = {
    step: step.step_id,
    jti: c.jti,
    sub: c.sub,
    expiresAt: new Date(c.exp * 1000),
    scopeHash: c.token_scope_hash_b64u,
    counted: quorum.counted,
  };
  s.events.push({ type: 'token_minted', job, token });
  if (ctx.metrics) {
    const counted = new Set(quorum.counted.flatMap((q) => quorum.live.get(q.userId)?.decisionId ?? []));
    // When the last of the counted approvals was recorded: the one that completed the quorum.
    const times = live.filter((d) => counted.has(d.id)).map((d) => d.created_at.getTime());
    await noteMint(ctx, trx, {
      gate: effective.rule === null ? 'auto' : 'gated',
      decidedAt: effective.rule === null || times.length === 0 ? null : new Date(Math.max(...times)),
    });
  }
  ctx.log.info({ jobId: job.id, step: step.step_id, jti: c.jti, sub: c.sub }, 'token minted');
  return { minted: true, token };
}

/** Publishes `events` in order, after the batch that recorded them is written. */
export async function publishAll(ctx: EngineContext, trx: Db, events: JobEvent[], at: Date): Promise<void> {
  for (const e of events) await publish(ctx, trx, e, at);
}

/**
 * `mintOn` for a caller that holds the job row lock (and the kill switch's share lock) and has
 * not read the job's state: reads it in one statement, evaluates, writes in one, publishes.
 * `facts` are Mattermost's answers asked before the lock (see `gatherMintFacts`); without them
 * only a step that needs none (an auto step) can be minted, and a gated one throws `SnapshotMiss`.
 */
export async function tryMintStep(
  ctx: EngineContext,
  trx: Db,
  job: JobRow,
  step: JobStepRow,
  at: Date,
  opts: { pinned?: PinnedStep; facts?: ChatSnapshot } = {},
): Promise<MintAttempt> {
  if (step.status !== 'awaiting_approval') return { minted: false, waiting: 'nothing' };
  const state = await readJobState(trx, {
    jobId: job.id,
    stepId: step.step_id,
    policyHash: job.policy_hash_b64u,
  });
  const scope: MintScope = {
    job,
    step,
    state,
    facts: opts.facts ?? ChatSnapshot.empty(ctx),
    batch: new WriteBatch(job.id, state.head),
    events: [],
    ...(opts.pinned ? { pinned: opts.pinned } : {}),
  };
  const attempt = await mintOn(ctx, trx, scope, at);
  await scope.batch.flush(trx);
  await publishAll(ctx, trx, scope.events, at);
  return attempt;
}

/**
 * Asks Mattermost, before any lock, what minting the given steps of a job may need (read
 * without locks; the mint re-reads under the lock and throws `SnapshotMiss` if it changed).
 */
export async function gatherMintFacts(
  ctx: EngineContext,
  db: Db,
  jobId: number,
  stepIds: readonly string[],
): Promise<ChatSnapshot> {
  const job = await db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirst();
  if (!job || job.status !== 'open') return ChatSnapshot.empty(ctx);
  const needs: FactsNeeded & { accounts: string[]; posts: string[] } = {
    memberships: [],
    accounts: [],
    posts: [],
  };
  for (const stepId of stepIds) {
    const state = await readJobState(db, { jobId, stepId, policyHash: job.policy_hash_b64u });
    const step = state.steps.find((x) => x.step_id === stepId);
    if (!step || step.rule === null) continue;
    const n = mintNeeds(job, JSON.parse(step.rule) as ApprovalRule, state.live, state.confirmation);
    needs.memberships.push(...n.memberships);
    needs.accounts.push(...n.accounts);
    needs.posts.push(...n.posts);
  }
  return ChatSnapshot.gather(ctx, needs);
}
