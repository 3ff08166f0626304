import type { Db } from '../db/database.js';
import type { JobRow, JobStepRow } from '../db/schema.js';
import type { ApprovalRule } from '../policy/types.js';
import { currentQuorum } from '../tokens/mint-step-token.js';
import type { EngineContext } from './context.js';
import { jobPlan, jobSteps, stepRule } from './job-repository.js';

/** What an agent (or the bot) sees of a job: never a token, never another agent's data. */
export interface JobView {
  id: string;
  job_id: number;
  status: string;
  origin: string;
  channel_id: string | null;
  root_post_id: string | null;
  requester_id: string;
  executor: string;
  runbook: string | null;
  policy: { name: string; policy_hash_b64u: string };
  plan_hash_b64u: string;
  created_at: string;
  expires_at: string;
  ended_at: string | null;
  end_reason: string | null;
  bundle_id: string | null;
  steps: {
    id: string;
    tool: string;
    args: Record<string, string | number | boolean>;
    summary: string;
    gate: string;
    status: string;
    required_approvals: number;
    approver_groups: string[];
    distinct_groups: boolean;
    /**
     * Approvals that count now, as the quorum would count them (current group membership, the
     * requester excluded, one per person); null when membership cannot be checked at the moment.
     */
    approvals: number | null;
    simulation_step: string | null;
    token: { jti: string; expires_at: string; claimable: boolean } | null;
  }[];
}

/**
 * The job as an agent (or `status`) sees it. Approvals are counted as the quorum would count
 * them now, which needs the engine's directory; without `engine` they are reported as unknown
 * (null), never as the stale number of decision rows.
 */
export async function jobView(db: Db, job: JobRow, engine?: EngineContext): Promise<JobView> {
  const steps = await jobSteps(db, job.id);
  const plan = new Map(jobPlan(job).map((s) => [s.id, s]));
  const tokens = new Map(
    (
      await db
        .selectFrom('tokens')
        .select(['step_id', 'jti', 'expires_at', 'compact', 'revoked_at'])
        .where('job_id', '=', job.id)
        .execute()
    ).map((t) => [t.step_id, t]),
  );
  const counts = new Map<string, number | null>();
  for (const s of steps) {
    const rule = stepRule(s);
    if (s.gate !== 'gated' || rule === null) continue;
    counts.set(s.step_id, await countingNow(engine, db, job, s, rule));
  }
  return {
    id: `job:${job.id}`,
    job_id: job.id,
    status: job.status,
    origin: job.origin,
    channel_id: job.channel_id,
    root_post_id: job.root_post_id,
    requester_id: job.requester_id,
    executor: job.executor,
    runbook: job.runbook,
    policy: { name: job.policy_name, policy_hash_b64u: job.policy_hash_b64u },
    plan_hash_b64u: job.plan_hash_b64u,
    created_at: job.created_at.toISOString(),
    expires_at: job.expires_at.toISOString(),
    ended_at: job.ended_at?.toISOString() ?? null,
    end_reason: job.end_reason,
    bundle_id: job.bundle_id,
    steps: steps.map((s) => {
      const rule = stepRule(s);
      const t = tokens.get(s.step_id);
      const p = plan.get(s.step_id);
      return {
        id: s.step_id,
        tool: s.tool,
        args: p?.args ?? {},
        summary: p?.summary ?? '',
        gate: s.gate,
        status: s.status,
        required_approvals: rule?.required_approvals ?? 0,
        approver_groups: rule?.allowed_approver_groups ?? [],
        distinct_groups: rule?.distinct_groups ?? false,
        approvals: counts.has(s.step_id) ? (counts.get(s.step_id) ?? null) : 0,
        simulation_step: s.simulation_step,
        token: t
          ? {
              jti: t.jti,
              expires_at: t.expires_at.toISOString(),
              claimable: t.compact !== null && t.revoked_at === null && job.status === 'open',
            }
          : null,
      };
    }),
  };
}

/** How many approvals of a step count now; null when the directory cannot say. */
async function countingNow(
  engine: EngineContext | undefined,
  db: Db,
  job: JobRow,
  step: JobStepRow,
  rule: ApprovalRule,
): Promise<number | null> {
  if (!engine) return null;
  try {
    return (await currentQuorum(engine, db, job, step, rule)).counted.length;
  } catch (err) {
    engine.log.warn({ err, jobId: job.id, step: step.step_id }, 'approvals of a step could not be counted');
    return null;
  }
}
