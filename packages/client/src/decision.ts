import type { Decision, DecisionOutcome, JobStatus, JobView, StepStatus } from './types.js';

const APPROVED: ReadonlySet<StepStatus> = new Set(['approved', 'claimed', 'succeeded', 'failed']);

/** A step stopped by its job's ending answers why the job ended. */
function endingOf(status: JobStatus): DecisionOutcome {
  switch (status) {
    case 'expired':
    case 'revoked':
    case 'denied':
      return status;
    default:
      return 'cancelled';
  }
}

/**
 * Where the approval of `stepId` stands in `job`, from the step's status and, for a step
 * its job's ending stopped, the job's: `pending` while it still awaits approval in an open job.
 * Undefined when the job has no such step.
 */
export function decisionOf(job: JobView, stepId: string): Decision | undefined {
  const step = job.steps.find((s) => s.id === stepId);
  if (!step) return undefined;
  let outcome: DecisionOutcome;
  if (APPROVED.has(step.status)) outcome = 'approved';
  else if (step.status === 'denied' || step.status === 'revoked') outcome = step.status;
  else if (step.status === 'cancelled' || job.status !== 'open') outcome = endingOf(job.status);
  else outcome = 'pending';
  return {
    outcome,
    ...(job.status !== 'open' && job.end_reason !== null ? { reason: job.end_reason } : {}),
    job,
    step,
  };
}
