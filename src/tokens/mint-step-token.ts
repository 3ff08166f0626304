import { canonicalJson } from '../crypto/jcs.js';
import type { Db } from '../db/database.js';
import type { JobRow, JobStepRow } from '../db/schema.js';
import { AppError, isAppError } from '../errors.js';
import type { GroupMembership } from '../approvals/directory.js';
import { evaluateQuorum, type QuorumResult } from '../approvals/quorum.js';
import { recheckApprovals } from '../approvals/recheck-approvals.js';
import { confirmationStands } from '../approvals/requester-confirmation.js';
import { type EngineContext, publish } from '../jobs/context.js';
import { noteMint } from '../jobs/engine-metrics.js';
import { isPaused } from '../jobs/kill-switch.js';
import type { MintedToken } from '../jobs/job-events.js';
import { jobPlan, setStepStatus } from '../jobs/job-repository.js';
import { classifyPlan, planHash } from '../jobs/plan.js';
import { stepTransition } from '../jobs/state-machine.js';
import { appendEvent } from '../proofs/event-chain.js';
import type { ApprovalRecord } from '../proofs/two-person.js';
import { getVerifiedApprovalPolicy } from '../policy/registry.js';
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

/** The job's pinned policy, re-verified from the registry (signature and hash) on every use. */
export async function pinnedPolicy(ctx: EngineContext, trx: Db, job: JobRow): Promise<Wpc> {
  try {
    return await getVerifiedApprovalPolicy(trx, job.policy_hash_b64u, ctx.keyRing.trusts);
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

/** A step as the job's pinned policy classifies it: its approval rule (null: runs without approval) and simulation step. */
export interface PinnedStep {
  policy: Wpc;
  rule: ApprovalRule | null;
  simulationStep: string | null;
}

/**
 * The step's gate, rule and simulation prerequisite, derived now from the pinned, verified
 * policy and the job's plan (SPEC section 2 rule 5: "the rule applied is the one in the pinned,
 * verified policy"). The `job_steps` row is the copy written at creation; if it or the plan no
 * longer agrees, something changed them behind the engine's back, and nothing is decided or
 * minted on them: ERR_STEP_RULE_MISMATCH, logged as an error.
 */
export async function pinnedStep(
  ctx: EngineContext,
  trx: Db,
  job: JobRow,
  step: JobStepRow,
): Promise<PinnedStep> {
  const policy = await pinnedPolicy(ctx, trx, job);
  const plan = jobPlan(job);
  const classified = planHash(plan) === job.plan_hash_b64u ? classifyPlan(policy, plan) : null;
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

/** A live approval as quorum saw it: its decision, its post, and how its author was found in each allowed group. */
export interface LiveApproval {
  decisionId: number;
  postId: string | null;
  foundIn: GroupMembership[];
}

/** Live approvals for a step, re-checked against the directory now (SPEC section 2: "at the moment quorum is evaluated"). */
export async function currentQuorum(
  ctx: EngineContext,
  trx: Db,
  job: JobRow,
  step: JobStepRow,
  rule: ApprovalRule | null,
  /** Approvers found deactivated when Mattermost was asked just now: they do not count. */
  inactive: ReadonlySet<string> = new Set(),
): Promise<QuorumResult & { live: Map<string, LiveApproval> }> {
  if (!rule) return { met: true, counted: [], missing: 0, openGroups: [], live: new Map() };
  const live = await trx
    .selectFrom('decisions')
    .select(['id', 'user_id', 'post_id'])
    .where('job_id', '=', job.id)
    .where('step_id', '=', step.step_id)
    .where('kind', '=', 'approve')
    .where('outcome', '=', 'accepted')
    .where('withdrawn_at', 'is', null)
    .orderBy('id')
    .execute();
  const approvals = [];
  const seen = new Map<string, LiveApproval>();
  for (const d of live) {
    if (d.user_id === job.requester_id && !rule.allow_requester_approval) continue;
    if (inactive.has(d.user_id)) continue;
    const foundIn = await ctx.directory.membershipsOf(d.user_id, rule.allowed_approver_groups);
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

/**
 * The two-person snapshot of a mint (issue 10 section 3): the effective rule of the pinned
 * policy, the requester, and for each counted approver how they were found in each allowed
 * group. It goes into the `token_minted` payload, so it is hashed into the chain, and the
 * sealed bundle carries it for `checkTwoPerson` to re-check offline.
 */
async function approvalRecord(
  trx: Db,
  job: JobRow,
  rule: ApprovalRule,
  quorum: QuorumResult & { live: Map<string, LiveApproval> },
  usernames: ReadonlyMap<string, string>,
  at: Date,
): Promise<ApprovalRecord> {
  const recorded = await trx
    .selectFrom('job_events')
    .select(['payload', 'event_hash_b64u'])
    .where('job_id', '=', job.id)
    .where('event_type', '=', 'approval_recorded')
    .execute();
  const eventOfDecision = new Map(
    recorded.map((e) => [
      (JSON.parse(e.payload) as { decision_id?: unknown }).decision_id,
      e.event_hash_b64u,
    ]),
  );
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

/** When the last of the counted approvals was recorded: the one that completed the quorum. */
async function decidingApprovalAt(trx: Db, decisionIds: number[]): Promise<Date | null> {
  if (decisionIds.length === 0) return null;
  const row = await trx
    .selectFrom('decisions')
    .select((eb) => eb.fn.max('created_at').as('at'))
    .where('id', 'in', decisionIds)
    .executeTakeFirst();
  return row?.at ? new Date(row.at) : null;
}

/**
 * Mints the step's CST if everything SPEC section 2 asks holds now: the step still awaits
 * approval, its simulation (if any) succeeded, and the quorum is met with current
 * memberships. Runs inside the caller's transaction with the job row locked; the unique
 * (job, step) constraint on tokens makes a second token impossible even if that were broken.
 */
export async function tryMintStep(
  ctx: EngineContext,
  trx: Db,
  job: JobRow,
  step: JobStepRow,
  at: Date,
  pinned?: PinnedStep,
): Promise<MintAttempt> {
  if (step.status !== 'awaiting_approval') return { minted: false, waiting: 'nothing' };
  if (await isPaused(trx)) return { minted: false, waiting: 'paused' };
  let effective: PinnedStep;
  try {
    effective = pinned ?? (await pinnedStep(ctx, trx, job, step));
  } catch (err) {
    if (isAppError(err, 'ERR_STEP_RULE_MISMATCH')) return { minted: false, waiting: 'rule_mismatch' };
    throw err;
  }
  if (effective.simulationStep !== null) {
    const sim = await trx
      .selectFrom('job_steps')
      .select('status')
      .where('job_id', '=', job.id)
      .where('step_id', '=', effective.simulationStep)
      .executeTakeFirst();
    if (sim?.status !== 'succeeded')
      return { minted: false, waiting: 'simulation', simulationStep: effective.simulationStep };
  }
  // Gated work of an agent's job needs its requester's confirmation (checked again below).
  if (effective.rule !== null && job.submitted_by !== null && job.requester_confirmed_at === null)
    return { minted: false, waiting: 'confirmation' };
  let quorum = await currentQuorum(ctx, trx, job, step, effective.rule);
  if (!quorum.met) return { minted: false, waiting: 'approvals', quorum };
  let usernames: ReadonlyMap<string, string> = new Map();
  if (effective.rule !== null) {
    // Met on what the database says: confirm with Mattermost now (posts unedited, approvers active).
    const recheck = await recheckApprovals(ctx, trx, job, step.step_id, at);
    usernames = recheck.usernames;
    if (recheck.withdrawn > 0 || recheck.inactive.size > 0) {
      quorum = await currentQuorum(ctx, trx, job, step, effective.rule, recheck.inactive);
      if (!quorum.met) return { minted: false, waiting: 'approvals', quorum };
    }
    // The requester's confirmation, like the approvals, is read from Mattermost now.
    if (!(await confirmationStands(ctx, trx, job, at))) return { minted: false, waiting: 'confirmation' };
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
    effective.rule === null ? null : await approvalRecord(trx, job, effective.rule, quorum, usernames, at);
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
  await trx
    .insertInto('tokens')
    .values({
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
    })
    .execute();
  await setStepStatus(trx, job.id, step.step_id, transition.next, at);
  await appendEvent(
    trx,
    job.id,
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
  await publish(ctx, trx, { type: 'token_minted', job, token }, at);
  if (ctx.metrics) {
    const counted = quorum.counted.flatMap((q) => quorum.live.get(q.userId)?.decisionId ?? []);
    await noteMint(ctx, trx, {
      gate: effective.rule === null ? 'auto' : 'gated',
      decidedAt: effective.rule === null ? null : await decidingApprovalAt(trx, counted),
    });
  }
  ctx.log.info({ jobId: job.id, step: step.step_id, jti: c.jti, sub: c.sub }, 'token minted');
  return { minted: true, token };
}
