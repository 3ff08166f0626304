import type { Db } from '../db/database.js';
import type { JobRow, JobStepRow, StepStatus } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { ApprovalRule } from '../policy/types.js';
import type { Plan } from './plan.js';

/** Reads a job and takes its row lock for the rest of the transaction: every decision about a job starts here. */
export async function lockJob(trx: Db, jobId: number): Promise<JobRow> {
  const job = await trx.selectFrom('jobs').selectAll().where('id', '=', jobId).forUpdate().executeTakeFirst();
  if (!job) throw new AppError('ERR_JOB_NOT_FOUND', `job:${jobId} does not exist`);
  return job;
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

/** Largest job id accepted from text or URLs; ids beyond it cannot exist. */
export const MAX_JOB_ID = Number.MAX_SAFE_INTEGER;
