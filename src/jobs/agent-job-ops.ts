import { verifyEnvelope } from '../crypto/envelope.js';
import type { Db } from '../db/database.js';
import type { JobRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import { appendEvent } from '../proofs/event-chain.js';
import { bundlePayloadHash } from '../proofs/seal-bundle.js';
import { missionId } from '../tokens/cst-claims.js';
import { tryMintStep } from '../tokens/mint-step-token.js';
import type { EngineContext } from './context.js';
import { endJob, type JobEnded } from './end-job.js';
import { announceStepResult } from '../chat/announce.js';
import { closedCode, jobSteps, lockJob, setStepStatus } from './job-repository.js';
import { isExpired, settledStatus, stepTransition, TERMINAL_STEP } from './state-machine.js';

export const MAX_RECEIPTS_PER_RESULT = 100;
export const MAX_SUMMARY_LENGTH = 2000;

/**
 * Runs `fn` on the agent's own open job with its row locked. A job of another agent looks
 * exactly like a missing one. An overdue job is expired (and sealed) first, and that commits
 * even though the caller gets ERR_JOB_EXPIRED.
 */
export async function withOwnOpenJob<T>(
  ctx: EngineContext,
  jobId: number,
  agentId: string,
  fn: (trx: Db, job: JobRow, at: Date) => Promise<T>,
): Promise<T> {
  const result = await ctx.db.transaction().execute(async (trx) => {
    const job = await lockJob(trx, jobId);
    if (!job || job.executor !== agentId)
      throw new AppError('ERR_JOB_NOT_FOUND', `job:${jobId} does not exist`);
    const at = ctx.clock();
    if (isExpired(job, at)) {
      await endJob(ctx, trx, job, 'expired', 'approval window elapsed', at);
      return { expired: true as const };
    }
    if (job.status !== 'open') throw new AppError(closedCode(job), `job:${jobId} is ${job.status}`);
    return { expired: false as const, value: await fn(trx, job, at) };
  });
  ctx.notifier.changed(jobId);
  if (result.expired) throw new AppError('ERR_JOB_EXPIRED', `job:${jobId} has expired`);
  return result.value;
}

export interface ClaimedToken {
  token: string;
  jti: string;
  expiresAt: Date;
  /** Hash of the `token_claimed` event: gateways bind their receipts to it (`X-Event-Hash`). */
  eventHash: string;
  runId: string;
}

/** Hands the step's CST to its executor, once. The stored copy is erased in the same transaction. */
export async function claimToken(
  ctx: EngineContext,
  input: { jobId: number; step: string; agentId: string },
): Promise<ClaimedToken> {
  return withOwnOpenJob(ctx, input.jobId, input.agentId, async (trx, job, at) => {
    const step = (await jobSteps(trx, job.id)).find((s) => s.step_id === input.step);
    if (!step) throw new AppError('ERR_STEP_NOT_FOUND', `job:${job.id} has no step ${input.step}`);
    if (step.status === 'awaiting_approval') {
      throw new AppError('ERR_STEP_STATE', `step ${step.step_id} is not approved yet`);
    }
    const token = await trx
      .selectFrom('tokens')
      .selectAll()
      .where('job_id', '=', job.id)
      .where('step_id', '=', step.step_id)
      .executeTakeFirst();
    if (!token || token.compact === null || step.status !== 'approved') {
      throw new AppError(
        'ERR_TOKEN_ALREADY_CLAIMED',
        `the token of step ${step.step_id} was already claimed`,
      );
    }
    if (token.revoked_at !== null) throw new AppError('ERR_TOKEN_REVOKED', 'the token was revoked');
    if (token.expires_at.getTime() <= at.getTime())
      throw new AppError('ERR_TOKEN_EXPIRED', 'the token has expired');
    const t = stepTransition(step.status, 'claim');
    if (!t.ok) throw new AppError('ERR_STEP_STATE', `step ${step.step_id} is ${step.status}`);
    await trx
      .updateTable('tokens')
      .set({ compact: null, claimed_at: at })
      .where('jti', '=', token.jti)
      .execute();
    await setStepStatus(trx, job.id, step.step_id, t.next, at);
    const event = await appendEvent(
      trx,
      job.id,
      'token_claimed',
      { step: step.step_id, jti: token.jti, agent_id: input.agentId },
      at,
    );
    return {
      token: token.compact,
      jti: token.jti,
      expiresAt: token.expires_at,
      eventHash: event.event_hash_b64u,
      runId: missionId(job.id),
    };
  });
}

export interface ReceiptCheck {
  receiptId: string | null;
  signerDid: string | null;
  verified: boolean;
  failure: string | null;
}

/**
 * A gateway receipt counts as verified only if its envelope verifies, its signer is on the
 * allowlist, and its binding names this job's run and an event of this job's chain.
 */
export function checkGatewayReceipt(
  receipt: unknown,
  ctx: { gatewaySigners: ReadonlySet<string> },
  runId: string,
  chainHashes: ReadonlySet<string>,
): ReceiptCheck {
  const env = (typeof receipt === 'object' && receipt !== null ? receipt : {}) as Record<string, unknown>;
  const payload = (typeof env.payload === 'object' && env.payload !== null ? env.payload : {}) as Record<
    string,
    unknown
  >;
  const base = {
    receiptId: typeof payload.receipt_id === 'string' ? payload.receipt_id.slice(0, 200) : null,
    signerDid: typeof env.signer_did === 'string' ? env.signer_did.slice(0, 200) : null,
  };
  const check = verifyEnvelope(receipt, {
    type: 'gateway_receipt',
    hashPayload: bundlePayloadHash,
    trustedSigners: ctx.gatewaySigners,
  });
  if (!check.ok) return { ...base, verified: false, failure: `RECEIPT_${check.reason}` };
  const binding = (payload.binding ?? null) as Record<string, unknown> | null;
  if (
    !binding ||
    binding.run_id !== runId ||
    typeof binding.event_hash_b64u !== 'string' ||
    !chainHashes.has(binding.event_hash_b64u)
  ) {
    return { ...base, verified: false, failure: 'RECEIPT_BINDING_MISMATCH' };
  }
  return { ...base, verified: true, failure: null };
}

export interface ReportedResult {
  step: string;
  status: 'succeeded' | 'failed';
  receipts: ReceiptCheck[];
  minted: string[];
  ended?: JobEnded;
}

/**
 * The executor reports a claimed step's outcome with any gateway receipts. Unverifiable
 * receipts are kept and marked, never dropped. Success may unlock steps waiting on a
 * simulation; the last success completes the job, a failure ends it.
 */
export async function reportResult(
  ctx: EngineContext,
  input: {
    jobId: number;
    step: string;
    agentId: string;
    status: 'succeeded' | 'failed';
    summary?: string;
    receipts?: unknown[];
  },
): Promise<ReportedResult> {
  const receipts = input.receipts ?? [];
  if (receipts.length > MAX_RECEIPTS_PER_RESULT) {
    throw new AppError('ERR_VALIDATION', `at most ${MAX_RECEIPTS_PER_RESULT} receipts per result`);
  }
  const summary = (input.summary ?? '').slice(0, MAX_SUMMARY_LENGTH);
  return withOwnOpenJob(ctx, input.jobId, input.agentId, async (trx, job, at) => {
    const steps = await jobSteps(trx, job.id);
    const step = steps.find((s) => s.step_id === input.step);
    if (!step) throw new AppError('ERR_STEP_NOT_FOUND', `job:${job.id} has no step ${input.step}`);
    const t = stepTransition(step.status, input.status === 'succeeded' ? 'succeed' : 'fail');
    if (!t.ok || step.status !== 'claimed') {
      throw new AppError(
        'ERR_STEP_STATE',
        `step ${step.step_id} is ${step.status}; claim its token before reporting`,
      );
    }
    const chain = await trx
      .selectFrom('job_events')
      .select('event_hash_b64u')
      .where('job_id', '=', job.id)
      .execute();
    const hashes = new Set(chain.map((e) => e.event_hash_b64u));
    const runId = missionId(job.id);
    const checks = receipts.map((r) => checkGatewayReceipt(r, ctx, runId, hashes));
    const existing = await trx
      .selectFrom('gateway_receipts')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('job_id', '=', job.id)
      .where('step_id', '=', step.step_id)
      .executeTakeFirstOrThrow();
    if (receipts.length > 0) {
      await trx
        .insertInto('gateway_receipts')
        .values(
          receipts.map((r, i) => ({
            job_id: job.id,
            step_id: step.step_id,
            position: Number(existing.n) + i,
            envelope: JSON.stringify(r),
            signer_did: checks[i]!.signerDid,
            verified: checks[i]!.verified,
            failure: checks[i]!.failure,
            created_at: at,
          })),
        )
        .execute();
    }
    await trx
      .updateTable('job_steps')
      .set({ status: t.next, result_summary: summary, updated_at: at })
      .where('job_id', '=', job.id)
      .where('step_id', '=', step.step_id)
      .execute();
    await appendEvent(
      trx,
      job.id,
      'step_result',
      {
        step: step.step_id,
        status: input.status,
        summary,
        receipts: receipts.map((r, i) => ({
          receipt_id: checks[i]!.receiptId,
          signer_did: checks[i]!.signerDid,
          verified: checks[i]!.verified,
          failure: checks[i]!.failure,
          envelope_hash_b64u: bundlePayloadHash(r),
        })),
      },
      at,
    );
    await announceStepResult(trx, job, step.step_id, input.status, summary, at);
    const minted: string[] = [];
    if (input.status === 'succeeded') {
      for (const s of await jobSteps(trx, job.id)) {
        if (s.simulation_step !== step.step_id) continue;
        const attempt = await tryMintStep(ctx, trx, job, s, at);
        if (attempt.minted) minted.push(attempt.token.step);
      }
    }
    const after = (await jobSteps(trx, job.id)).map((s) => s.status);
    const settled = settledStatus(after);
    const ended = settled
      ? await endJob(
          ctx,
          trx,
          job,
          settled,
          settled === 'completed' ? 'all steps succeeded' : `step ${step.step_id} failed`,
          at,
        )
      : undefined;
    return {
      step: step.step_id,
      status: input.status,
      receipts: checks,
      minted,
      ...(ended ? { ended } : {}),
    };
  });
}

/** The executor closes its job: complete if every step succeeded, otherwise cancelled with its reason. */
export async function closeJob(
  ctx: EngineContext,
  input: { jobId: number; agentId: string; reason?: string },
): Promise<JobEnded> {
  return withOwnOpenJob(ctx, input.jobId, input.agentId, async (trx, job, at) => {
    const statuses = (await jobSteps(trx, job.id)).map((s) => s.status);
    const settled = settledStatus(statuses);
    const reason = (input.reason ?? '').slice(0, 500) || 'closed by its agent';
    if (settled) return endJob(ctx, trx, job, settled, reason, at);
    const open = statuses.filter((s) => !TERMINAL_STEP.has(s)).length;
    return endJob(ctx, trx, job, 'cancelled', `${reason} (${open} step(s) had not run)`, at);
  });
}
