import type { CreatedJob } from '../../src/jobs/job-events.js';
import { type ChainEvent, boardOf, statusBoardMessage } from '../../src/presenter/status-board.js';

/** A job just created, as the tests describe it: what its `job_created` event would record. */
export interface PlanPostInput extends CreatedJob {
  requesterId: string;
  runbook?: string | null;
  params?: Readonly<Record<string, unknown>> | null;
  assertedBy?: string | null;
}

/** The chain of a job just created: `job_created`, then a `token_minted` per auto step minted. */
export function createdChain(job: PlanPostInput): ChainEvent[] {
  const created = {
    requester_id: job.requesterId,
    submitted_by: job.assertedBy ?? null,
    runbook: job.runbook ?? null,
    params: job.params ?? null,
    policy_name: job.policyName,
    policy_hash_b64u: job.policyHash,
    plan_hash_b64u: job.planHash,
    executor: job.executor,
    expires_at: job.expiresAt.toISOString(),
    plan: job.steps.map((s) => ({ id: s.id, tool: s.tool, args: s.args })),
    steps: job.steps.map((s) => ({
      id: s.id,
      tool: s.tool,
      summary: s.summary,
      gate: s.classification.gate,
      simulation_step: s.simulationStep,
      ...(s.classification.gate === 'gated' ? { rule: s.classification.rule } : {}),
    })),
  };
  return [
    { event_type: 'job_created', payload: JSON.stringify(created) },
    ...job.minted.map((t) => ({
      event_type: 'token_minted',
      payload: JSON.stringify({ step: t.step, jti: t.jti, sub: t.sub }),
    })),
  ];
}

/** The status post of a job just created (its plan post), through the real fold and renderer. */
export function planMessage(job: PlanPostInput, publicUrl: string | null = null): string {
  return statusBoardMessage(boardOf(job.jobId, createdChain(job), null)!, publicUrl);
}
