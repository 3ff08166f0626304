import type {
  Decider,
  Decision,
  DecisionOutcome,
  JobStatus,
  JobStepView,
  JobView,
  StepOutcome,
  StepStatus,
} from './types.js';

const APPROVED: ReadonlySet<StepStatus> = new Set(['approved', 'claimed', 'succeeded', 'failed']);

/** The server's settled outcomes as a wait answers them: an auto step is approved without anyone. */
const SETTLED: Readonly<Record<StepOutcome, DecisionOutcome>> = {
  approved: 'approved',
  auto: 'approved',
  denied: 'denied',
  revoked: 'revoked',
  cancelled: 'cancelled',
  expired: 'expired',
};

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

/** From the statuses alone, for a server that does not send `decision`. */
function fromStatuses(job: JobView, step: JobStepView): DecisionOutcome {
  if (APPROVED.has(step.status)) return 'approved';
  if (step.status === 'denied' || step.status === 'revoked') return step.status;
  if (step.status === 'cancelled' || job.status !== 'open') return endingOf(job.status);
  return 'pending';
}

/**
 * Where the approval of `stepId` stands in `job`, and who decided it: from the step's
 * structured `decision` (the server's record of who settled it), or, from a server that does
 * not send one, from the step's and job's statuses; `pending` while it still awaits approval
 * in an open job. Undefined when the job has no such step.
 */
export function decisionOf(job: JobView, stepId: string): Decision | undefined {
  const step = job.steps.find((s) => s.id === stepId);
  if (!step) return undefined;
  const settled = step.decision ? SETTLED[step.decision.outcome] : undefined;
  const outcome = settled ?? fromStatuses(job, step);
  const by: Decider[] = settled !== undefined && Array.isArray(step.decision?.by) ? step.decision.by : [];
  return {
    outcome,
    by,
    ...(job.status !== 'open' && job.end_reason !== null ? { reason: job.end_reason } : {}),
    job,
    step,
  };
}

/**
 * Who decided, in words for a person or a model: `@alice (ops-oncall) and @dmitri
 * (sec-reviewers) via chat`. A decider without a username is named by id. Null when nobody
 * did (pending, expired, an auto step).
 */
export function decidersText(by: readonly Decider[]): string | null {
  if (by.length === 0) return null;
  const names = by.map((d) => {
    const who = d.username ? `@${d.username}` : d.user_id;
    return d.groups.length > 0 ? `${who} (${d.groups.join(', ')})` : who;
  });
  const vias = [...new Set(by.map((d) => d.via))];
  const list = names.length === 1 ? names[0]! : `${names.slice(0, -1).join(', ')} and ${names.at(-1)!}`;
  return `${list} via ${vias.join(' and ')}`;
}
