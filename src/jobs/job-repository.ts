import type { Db } from '../db/database.js';
import type { JobRow, JobStepRow, StepStatus } from '../db/schema.js';
import type { ApprovalRule } from '../policy/types.js';
import { holdKillSwitch } from './kill-switch.js';
import type { Plan } from './plan.js';

/**
 * Reads a job and takes its row lock for the rest of the transaction: every decision about a
 * job starts here, so decisions on one job are serialized. Undefined when there is no such job.
 * The kill switch's row is share-locked first: a pause locks the switch, then every open job,
 * so taking them in the same order means a pause and a decision wait for each other and never
 * deadlock (the decision then reads the switch as it stands, without waiting again).
 */
export async function lockJob(trx: Db, jobId: number): Promise<JobRow | undefined> {
  await holdKillSwitch(trx);
  return trx.selectFrom('jobs').selectAll().where('id', '=', jobId).forUpdate().executeTakeFirst();
}

/** `lockJob` for a job that must exist (a row referencing it was just read). */
export async function lockExistingJob(trx: Db, jobId: number): Promise<JobRow> {
  const job = await lockJob(trx, jobId);
  if (!job) throw new Error(`job:${jobId} vanished while referenced`);
  return job;
}

/** The error for acting on a job that has ended. */
export function closedCode(job: JobRow): 'ERR_JOB_REVOKED' | 'ERR_JOB_EXPIRED' | 'ERR_JOB_CLOSED' {
  return job.status === 'revoked'
    ? 'ERR_JOB_REVOKED'
    : job.status === 'expired'
      ? 'ERR_JOB_EXPIRED'
      : 'ERR_JOB_CLOSED';
}

export async function findJob(db: Db, jobId: number): Promise<JobRow | undefined> {
  return db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirst();
}

export async function jobSteps(db: Db, jobId: number): Promise<JobStepRow[]> {
  return db.selectFrom('job_steps').selectAll().where('job_id', '=', jobId).orderBy('position').execute();
}

export async function setStepStatus(trx: Db, jobId: number, stepId: string, status: StepStatus, at: Date) {
  await trx
    .updateTable('job_steps')
    .set({ status, updated_at: at })
    .where('job_id', '=', jobId)
    .where('step_id', '=', stepId)
    .execute();
}

export function stepRule(step: JobStepRow): ApprovalRule | null {
  return step.rule === null ? null : (JSON.parse(step.rule) as ApprovalRule);
}

export function jobPlan(job: JobRow): Plan {
  return JSON.parse(job.plan) as Plan;
}
