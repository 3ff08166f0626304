import type { Db } from '../db/database.js';
import type { JobRow, JobStatus } from '../db/schema.js';
import type { ClassifiedStep } from './plan.js';

/**
 * What the engine tells the rest of the product. Each event is published in the transaction
 * that decided it, so whatever a sink writes (the chat presenter's outbox rows) commits with the
 * decision or not at all. The engine never formats a message: it says what happened, and the
 * presenter decides who sees what. The job's event chain (`job_events`) remains the record;
 * these events only carry what a presenter needs beyond it.
 */

/** A step's CST, as people may see it: never the token itself. */
export interface MintedToken {
  step: string;
  jti: string;
  sub: string;
  expiresAt: Date;
  scopeHash: string;
  /** The approvals that made quorum (empty for an auto step). */
  counted: { userId: string; group: string }[];
}

export interface JobEnded {
  jobId: number;
  status: JobStatus;
  reason: string;
  bundleId: string;
}

/** What a job's creation decided: its policy, plan, deadline, classified steps and the tokens minted at once. */
export interface CreatedJob {
  jobId: number;
  policyName: string;
  policyHash: string;
  planHash: string;
  executor: string;
  expiresAt: Date;
  steps: ClassifiedStep[];
  minted: MintedToken[];
}

/** A new job's plan, with who asked for it. */
export interface PlannedJob extends CreatedJob {
  requesterId: string;
  /** The policy runbook the plan was expanded from; null for steps an agent submitted. */
  runbook: string | null;
  params: Readonly<Record<string, unknown>> | null;
  /** The agent that named the requester (API jobs): the requester is its claim, not a fact. */
  assertedBy: string | null;
}

export type JobEvent =
  | { type: 'job_created'; job: JobRow; plan: PlannedJob }
  /** An approval counted, a requester confirmed, a token claimed or redeemed: the job's state moved. */
  | { type: 'job_progressed'; job: JobRow }
  | { type: 'token_minted'; job: JobRow; token: MintedToken }
  | { type: 'step_finished'; job: JobRow; step: string; status: 'succeeded' | 'failed'; summary: string }
  /** A counted approval stopped counting because a re-check found its post changed. */
  | { type: 'approval_withdrawn'; job: JobRow; step: string; userId: string; postId: string; why: string }
  | {
      type: 'confirmation_withdrawn';
      job: JobRow;
      decisionId: number;
      userId: string;
      why: 'edited' | 'deleted' | 'deactivated';
    }
  | { type: 'job_ended'; job: JobRow; ended: JobEnded; gatewaySigners: readonly string[] }
  /** Work was paused or resumed everywhere (the kill switch); `job` is one open job it touched. */
  | { type: 'pause_changed'; job: JobRow; paused: boolean };

/** Receives the engine's events inside the deciding transaction. */
export interface JobEventSink {
  publish(trx: Db, event: JobEvent, at: Date): Promise<void>;
}
