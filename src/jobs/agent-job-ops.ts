import { sql } from 'kysely';
import { ChatError } from '../ports/chat-error.js';
import { verifyEnvelope } from '../crypto/envelope.js';
import type { Db } from '../db/database.js';
import type { JobRow, JobStepRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import { appendEvent } from '../proofs/event-chain.js';
import { bundlePayloadHash } from '../proofs/seal-bundle.js';
import { missionId } from '../tokens/cst-claims.js';
import { ChatSnapshot, SnapshotMiss } from '../approvals/chat-snapshot.js';
import { gatherMintFacts, pinnedPolicy, tryMintStep } from '../tokens/mint-step-token.js';
import { type EngineContext, publish } from './context.js';
import { endJob } from './end-job.js';
import type { JobEnded } from './job-events.js';
import { closedCode, jobSteps, lockJob, setStepStatus } from './job-repository.js';
import { assertNotPaused } from './kill-switch.js';
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
    await assertNotPaused(trx);
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
    await publish(ctx, trx, { type: 'job_progressed', job }, at);
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

/** The event hash a receipt's binding names, if it names one. */
function boundEventHash(receipt: unknown): string | null {
  const env = typeof receipt === 'object' && receipt !== null ? (receipt as Record<string, unknown>) : {};
  const payload =
    typeof env.payload === 'object' && env.payload !== null ? (env.payload as Record<string, unknown>) : {};
  const binding =
    typeof payload.binding === 'object' && payload.binding !== null
      ? (payload.binding as Record<string, unknown>)
      : {};
  return typeof binding.event_hash_b64u === 'string' ? binding.event_hash_b64u : null;
}

/** Hash of the `token_claimed` event of `step`: the claim a gateway binds that step's receipts to. */
async function claimEventHash(trx: Db, jobId: number, step: string): Promise<string | null> {
  const claims = await trx
    .selectFrom('job_events')
    .select(['payload', 'event_hash_b64u'])
    .where('job_id', '=', jobId)
    .where('event_type', '=', 'token_claimed')
    .execute();
  const mine = claims.find((c) => (JSON.parse(c.payload) as { step?: unknown }).step === step);
  return mine?.event_hash_b64u ?? null;
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
  if (/\p{Cs}/u.test(input.summary ?? ''))
    throw new AppError('ERR_VALIDATION', 'summary contains a lone surrogate (not text)');
  // Cut at a code point, never inside a surrogate pair (half a pair is not text either).
  const cut = (input.summary ?? '').slice(0, MAX_SUMMARY_LENGTH);
  const summary = /[\ud800-\udbff]$/.test(cut) ? cut.slice(0, -1) : cut;
  // A success may unlock steps that wait on this one: what minting them needs is asked of
  // Mattermost now, before the job is locked (no network call while it is).
  const dependents =
    input.status === 'succeeded'
      ? (
          await ctx.db
            .selectFrom('job_steps')
            .select('step_id')
            .where('job_id', '=', input.jobId)
            .where('simulation_step', '=', input.step)
            .execute()
        ).map((s) => s.step_id)
      : [];
  const facts =
    dependents.length > 0
      ? await gatherMintFacts(ctx, ctx.db, input.jobId, dependents)
      : ChatSnapshot.empty(ctx);
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
    // SPEC section 2 rule 5: where the policy requires receipts, success is shown by a gateway,
    // never taken on the word of the agent being gated (a simulation unlocks nothing without it).
    if (
      input.status === 'succeeded' &&
      (await pinnedPolicy(ctx, trx, job)).attestation.require_gateway_receipts
    ) {
      const claim = await claimEventHash(trx, job.id, step.step_id);
      const evidenced = checks.some(
        (c, i) => c.verified && claim !== null && boundEventHash(receipts[i]) === claim,
      );
      if (!evidenced) {
        throw new AppError(
          'ERR_RECEIPTS_REQUIRED',
          `the policy requires a verified gateway receipt bound to the claim of step ${step.step_id} (run_id ${runId}, event_hash_b64u ${claim ?? '?'}) before it counts as succeeded`,
          { details: { run_id: runId, event_hash_b64u: claim } },
        );
      }
    }
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
    await publish(
      ctx,
      trx,
      { type: 'step_finished', job, step: step.step_id, status: input.status, summary },
      at,
    );
    const minted: string[] = [];
    if (input.status === 'succeeded') {
      for (const s of await jobSteps(trx, job.id)) {
        if (s.simulation_step !== step.step_id) continue;
        const token = await mintKeepingResult(ctx, trx, job, s, at, facts);
        if (token) minted.push(token);
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

/**
 * A mint attempt that cannot undo the result it follows: when Mattermost could not confirm the
 * approvals (a `ChatError`), or the approvals changed after it was asked (`SnapshotMiss`), the
 * attempt is rolled back to a savepoint, nothing is minted, and `mintDueSteps` tries again later.
 */
async function mintKeepingResult(
  ctx: EngineContext,
  trx: Db,
  job: JobRow,
  step: JobStepRow,
  at: Date,
  facts: ChatSnapshot,
): Promise<string | null> {
  await sql`savepoint mint_step`.execute(trx);
  try {
    const attempt = await tryMintStep(ctx, trx, job, step, at, { facts });
    await sql`release savepoint mint_step`.execute(trx);
    return attempt.minted ? attempt.token.step : null;
  } catch (err) {
    if (!(err instanceof ChatError) && !(err instanceof SnapshotMiss)) throw err;
    await sql`rollback to savepoint mint_step`.execute(trx);
    ctx.log.warn(
      { jobId: job.id, step: step.step_id, err: err.message },
      'Mattermost cannot confirm the approvals now; the mint is retried later',
    );
    return null;
  }
}

/**
 * The sweep for steps whose quorum may be met but that were not minted when it happened
 * (Mattermost could not confirm the approvals at that moment): every awaiting gated step of an
 * open job with a live approval is tried again, each job in its own transaction. A step that
 * still cannot be confirmed waits for the next sweep. Returns the steps minted.
 */
export async function mintDueSteps(ctx: EngineContext): Promise<{ jobId: number; step: string }[]> {
  const due = await ctx.db
    .selectFrom('job_steps')
    .innerJoin('jobs', 'jobs.id', 'job_steps.job_id')
    .select(['job_steps.job_id', 'job_steps.step_id'])
    .where('jobs.status', '=', 'open')
    .where('job_steps.status', '=', 'awaiting_approval')
    .where('job_steps.gate', '=', 'gated')
    .where((eb) =>
      eb.exists(
        eb
          .selectFrom('decisions')
          .select('decisions.id')
          .whereRef('decisions.job_id', '=', 'job_steps.job_id')
          .whereRef('decisions.step_id', '=', 'job_steps.step_id')
          .where('decisions.kind', '=', 'approve')
          .where('decisions.outcome', '=', 'accepted')
          .where('decisions.withdrawn_at', 'is', null),
      ),
    )
    .orderBy('job_steps.job_id')
    .orderBy('job_steps.position')
    .execute();
  const minted: { jobId: number; step: string }[] = [];
  for (const { job_id: jobId, step_id: stepId } of due) {
    try {
      // Mattermost is asked first; the mint then runs on its answers with the job locked. If the
      // approvals changed in between (SnapshotMiss), the next sweep tries again.
      const facts = await gatherMintFacts(ctx, ctx.db, jobId, [stepId]);
      const token = await ctx.db.transaction().execute(async (trx) => {
        const job = await lockJob(trx, jobId);
        const at = ctx.clock();
        if (!job || job.status !== 'open' || isExpired(job, at)) return null;
        const step = (await jobSteps(trx, jobId)).find((s) => s.step_id === stepId);
        if (!step) return null;
        const attempt = await tryMintStep(ctx, trx, job, step, at, { facts });
        return attempt.minted ? attempt.token.step : null;
      });
      if (token) {
        minted.push({ jobId, step: token });
        ctx.notifier.changed(jobId);
      }
    } catch (err) {
      if (!(err instanceof ChatError) && !(err instanceof SnapshotMiss)) throw err;
      ctx.log.warn(
        { jobId, step: stepId, err: err.message },
        'mint sweep: Mattermost cannot confirm the approvals now',
      );
    }
  }
  return minted;
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
