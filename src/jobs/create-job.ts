import { canonicalJson } from '../crypto/jcs.js';
import { AppError } from '../errors.js';
import { appendEvent } from '../proofs/event-chain.js';
import { matchesPattern } from '../policy/tool-pattern.js';
import { missionId, stepScope, tokenScopeHash } from '../tokens/cst-claims.js';
import { tryMintStep } from '../tokens/mint-step-token.js';
import type { Db } from '../db/database.js';
import { type EngineContext, inTransaction, publish } from './context.js';
import type { CreatedJob, MintedToken } from './job-events.js';
import { jobSteps } from './job-repository.js';
import { assertNotPaused } from './kill-switch.js';
import {
  type ArgValue,
  classifyPlan,
  expandRunbook,
  type Plan,
  planHash,
  planShapeProblems,
} from './plan.js';

export type JobOrigin =
  | { kind: 'mattermost'; teamId: string; channelId: string; rootPostId: string }
  | { kind: 'api'; agentId: string; channelId: string; teamId?: string }
  /** The requester ran `/claw run` in the channel: no post of theirs; the plan post starts the thread. */
  | { kind: 'command'; teamId: string; channelId: string };

export interface CreateJobInput {
  origin: JobOrigin;
  /** Mattermost user id of the person the work is for. */
  requesterId: string;
  /** Either a runbook of the channel's policy with its params, or (API only) explicit steps. */
  runbook?: { name: string; params: Record<string, unknown> };
  steps?: Plan;
}

/**
 * Creates a job: resolves the channel's pinned policy (fail closed), checks the requester,
 * expands or validates the plan, classifies every step, and records the job with its first
 * event; auto-allowed steps get their CST at once. A plan with a denied step is refused
 * whole, with every reason.
 */
export async function createJob(
  ctx: EngineContext,
  input: CreateJobInput,
  callerTrx?: Db,
): Promise<CreatedJob> {
  const { origin } = input;
  const binding = ctx.policies.channelPolicy(origin.channelId);
  if (!binding.open) {
    throw new AppError(
      'ERR_CHANNEL_CLOSED',
      `channel ${origin.channelId} takes no jobs: ${binding.reasons.join('; ')}`,
    );
  }
  const policy = binding.policy;
  const teamId = origin.teamId;
  if (teamId !== undefined && !policy.channel_context.allowed_team_ids.includes(teamId)) {
    throw new AppError('ERR_CHANNEL_CLOSED', `team ${teamId} is not allowed by policy ${binding.policyName}`);
  }
  const requesterGroups = await ctx.directory.groupsOf(
    input.requesterId,
    policy.channel_context.requester_groups,
  );
  if (requesterGroups.size === 0) {
    throw new AppError(
      'ERR_NOT_A_REQUESTER',
      `user ${input.requesterId} is not in a requester group of ${binding.policyName}`,
    );
  }

  let plan: Plan;
  let executor: string;
  let params: Record<string, ArgValue> | null = null;
  if (input.runbook && input.steps)
    throw new AppError('ERR_PLAN_INVALID', 'give either a runbook or steps, not both');
  if (input.runbook) {
    const expansion = expandRunbook(policy, input.runbook.name, input.runbook.params);
    if (!expansion.ok)
      throw new AppError('ERR_PLAN_INVALID', expansion.problems.join('; '), { details: expansion.problems });
    ({ plan, executor, params } = expansion);
    if (origin.kind === 'api' && executor !== origin.agentId) {
      throw new AppError(
        'ERR_FORBIDDEN',
        `runbook ${input.runbook.name} is executed by ${executor}, not by ${origin.agentId}`,
      );
    }
  } else if (input.steps && origin.kind === 'api') {
    plan = input.steps.map((s) => ({ id: s.id, tool: s.tool, args: s.args ?? {}, summary: s.summary }));
    executor = origin.agentId;
  } else {
    throw new AppError(
      'ERR_PLAN_INVALID',
      origin.kind === 'api' ? 'a runbook or steps are required' : 'a runbook is required',
    );
  }
  const shape = planShapeProblems(plan);
  if (shape.length > 0) throw new AppError('ERR_PLAN_INVALID', shape.join('; '), { details: shape });
  if (!matchesPattern(policy.token_requirements.subject, executor)) {
    throw new AppError(
      'ERR_PLAN_DENIED',
      `executor ${executor} is not a permitted token subject (${policy.token_requirements.subject})`,
    );
  }
  const classified = classifyPlan(policy, plan);
  if (!classified.ok) {
    throw new AppError(
      'ERR_PLAN_DENIED',
      classified.denied.map((d) => `step ${d.step}: ${d.reason}`).join('; '),
      {
        details: classified.denied,
      },
    );
  }
  const hash = planHash(plan);
  const at = ctx.clock();
  const ttls = classified.steps.flatMap((s) =>
    s.classification.gate === 'gated' ? [s.classification.rule.approval_ttl_seconds] : [],
  );
  const ttl = ttls.length > 0 ? Math.max(...ttls) : policy.execution.approval_rule.approval_ttl_seconds;
  const expiresAt = new Date(at.getTime() + ttl * 1000);

  const result = await inTransaction(ctx, callerTrx, async (trx) => {
    await assertNotPaused(trx);
    const job = await trx
      .insertInto('jobs')
      .values({
        status: 'open',
        origin: origin.kind,
        team_id: origin.teamId ?? null,
        channel_id: origin.channelId,
        root_post_id: origin.kind === 'mattermost' ? origin.rootPostId : null,
        submitted_by: origin.kind === 'api' ? origin.agentId : null,
        executor,
        requester_id: input.requesterId,
        policy_name: binding.policyName,
        policy_hash_b64u: binding.hash,
        runbook: input.runbook?.name ?? null,
        params: params === null ? null : canonicalJson(params),
        plan: canonicalJson(plan),
        plan_hash_b64u: hash,
        created_at: at,
        expires_at: expiresAt,
        updated_at: at,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await trx
      .insertInto('job_steps')
      .values(
        classified.steps.map((s, position) => ({
          job_id: job.id,
          step_id: s.id,
          position,
          tool: s.tool,
          gate: s.classification.gate,
          rule: s.classification.gate === 'gated' ? canonicalJson(s.classification.rule) : null,
          simulation_step: s.simulationStep,
          status: 'awaiting_approval' as const,
          updated_at: at,
        })),
      )
      .execute();
    const req = policy.token_requirements;
    await appendEvent(
      trx,
      job.id,
      'job_created',
      {
        job_id: missionId(job.id),
        origin: origin.kind,
        team_id: origin.teamId ?? null,
        channel_id: origin.channelId,
        root_post_id: origin.kind === 'mattermost' ? origin.rootPostId : null,
        submitted_by: origin.kind === 'api' ? origin.agentId : null,
        requester_id: input.requesterId,
        executor,
        policy_name: binding.policyName,
        policy_hash_b64u: binding.hash,
        runbook: input.runbook?.name ?? null,
        params,
        plan,
        plan_hash_b64u: hash,
        expires_at: expiresAt.toISOString(),
        steps: classified.steps.map((s) => ({
          id: s.id,
          tool: s.tool,
          summary: s.summary,
          gate: s.classification.gate,
          simulation_step: s.simulationStep,
          ...(s.classification.gate === 'gated' ? { rule: s.classification.rule } : {}),
          token_scope_hash_b64u: tokenScopeHash({
            sub: executor,
            aud: req.audience,
            scope: stepScope(s, hash, req.extra_scopes),
            policy_hash_b64u: binding.hash,
            mission_id: missionId(job.id),
          }),
        })),
      },
      at,
    );
    const minted: MintedToken[] = [];
    // Auto steps minted with the job are told in its plan post (job_created), not one by one.
    const quiet: EngineContext = { ...ctx, events: undefined };
    for (const step of await jobSteps(trx, job.id)) {
      if (step.gate !== 'auto') continue;
      const attempt = await tryMintStep(quiet, trx, job, step, at);
      if (attempt.minted) minted.push(attempt.token);
    }
    await publish(
      ctx,
      trx,
      {
        type: 'job_created',
        job,
        plan: {
          jobId: job.id,
          policyName: binding.policyName,
          policyHash: binding.hash,
          planHash: hash,
          executor,
          expiresAt,
          steps: classified.steps,
          minted,
          requesterId: input.requesterId,
          runbook: input.runbook?.name ?? null,
          params,
          assertedBy: origin.kind === 'api' ? origin.agentId : null,
        },
      },
      at,
    );
    return { job, minted };
  });
  if (!callerTrx) ctx.notifier.changed(result.job.id);
  ctx.log.info({ jobId: result.job.id, policy: binding.policyName, steps: plan.length }, 'job created');
  return {
    jobId: result.job.id,
    policyName: binding.policyName,
    policyHash: binding.hash,
    planHash: hash,
    executor,
    expiresAt,
    steps: classified.steps,
    minted: result.minted,
  };
}
