import type { JobStatus, StepStatus } from '../db/schema.js';

/**
 * The lifecycle of jobs and steps as pure transitions. Services lock the rows, ask these
 * functions what may happen next, and write the answer; nothing else changes a status.
 *
 * Step:  awaiting_approval --mint--> approved --claim--> claimed --succeed/fail--> succeeded | failed
 *        awaiting_approval --deny--> denied;  any open step --revoke/cancel--> revoked | cancelled
 * Job:   open until a step fails (failed), is denied (denied), every step succeeds
 *        (completed), or it is revoked, cancelled or expires.
 */

export type StepAction = 'mint' | 'claim' | 'succeed' | 'fail' | 'deny' | 'revoke' | 'cancel';

const STEP_TRANSITIONS: Record<StepAction, Partial<Record<StepStatus, StepStatus>>> = {
  mint: { awaiting_approval: 'approved' },
  claim: { approved: 'claimed' },
  succeed: { claimed: 'succeeded' },
  fail: { claimed: 'failed', approved: 'failed' },
  deny: { awaiting_approval: 'denied' },
  revoke: { awaiting_approval: 'revoked', approved: 'revoked', claimed: 'revoked' },
  cancel: { awaiting_approval: 'cancelled', approved: 'cancelled', claimed: 'cancelled' },
};

export const TERMINAL_STEP: ReadonlySet<StepStatus> = new Set([
  'succeeded',
  'failed',
  'denied',
  'revoked',
  'cancelled',
]);

export const TERMINAL_JOB: ReadonlySet<JobStatus> = new Set([
  'completed',
  'failed',
  'denied',
  'expired',
  'revoked',
  'cancelled',
]);

export type Transition<S> = { ok: true; next: S } | { ok: false; from: S; action: string };

export function stepTransition(current: StepStatus, action: StepAction): Transition<StepStatus> {
  const next = STEP_TRANSITIONS[action][current];
  return next ? { ok: true, next } : { ok: false, from: current, action };
}

/** How a job ends on its own, from its steps: null while it is still open. */
export function settledStatus(
  steps: readonly StepStatus[],
): Extract<JobStatus, 'completed' | 'failed' | 'denied'> | null {
  if (steps.includes('failed')) return 'failed';
  if (steps.includes('denied')) return 'denied';
  if (steps.length > 0 && steps.every((s) => s === 'succeeded')) return 'completed';
  return null;
}

export type JobEnding = 'revoked' | 'cancelled' | 'expired';

/** Ending a job from outside (revoke, cancel, expiry) is allowed only while it is open. */
export function jobTransition(current: JobStatus, ending: JobEnding): Transition<JobStatus> {
  return current === 'open' ? { ok: true, next: ending } : { ok: false, from: current, action: ending };
}

/** What happens to the steps still open when a job ends. */
export function stepActionOnJobEnd(status: JobStatus): StepAction {
  return status === 'revoked' ? 'revoke' : 'cancel';
}

/** A job whose deadline passed is expired, whatever its stored status still says. */
export function isExpired(job: { status: JobStatus; expires_at: Date }, now: Date): boolean {
  return job.status === 'open' && now.getTime() >= job.expires_at.getTime();
}
