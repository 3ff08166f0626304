import type { Db } from '../db/database.js';
import type { JobRow, JobStatus } from '../db/schema.js';
import { appendEvent, type EventType } from '../proofs/event-chain.js';
import { appendRejectionSummaries } from '../proofs/rejection-summary.js';
import { sealBundle } from '../proofs/seal-bundle.js';
import { type EngineContext, publish } from './context.js';
import type { JobEnded } from './job-events.js';
import { jobSteps, setStepStatus } from './job-repository.js';
import { stepActionOnJobEnd, stepTransition, TERMINAL_JOB } from './state-machine.js';

const ENDING_EVENT: Partial<Record<JobStatus, EventType>> = {
  revoked: 'job_revoked',
  cancelled: 'job_cancelled',
  expired: 'job_expired',
};

/**
 * Ends an open job in the caller's transaction (job row locked): closes its open steps,
 * revokes every token not yet redeemed, appends the final events and seals the proof bundle.
 * A job never ends without its bundle, because both commit together.
 */
export async function endJob(
  ctx: EngineContext,
  trx: Db,
  job: JobRow,
  status: Exclude<JobStatus, 'open'>,
  reason: string,
  at: Date,
  actor?: { userId: string; decisionId?: number },
): Promise<JobEnded> {
  if (!TERMINAL_JOB.has(status) || job.status !== 'open') {
    throw new Error(`job:${job.id} cannot end as ${status} from ${job.status}`);
  }
  const action = stepActionOnJobEnd(status);
  for (const step of await jobSteps(trx, job.id)) {
    const t = stepTransition(step.status, action);
    if (t.ok) await setStepStatus(trx, job.id, step.step_id, t.next, at);
  }
  const revoked = await trx
    .updateTable('tokens')
    .set({ revoked_at: at, revoke_reason: `job ${status}: ${reason}`, compact: null })
    .where('job_id', '=', job.id)
    .where('revoked_at', 'is', null)
    .where('redeemed_at', 'is', null)
    .returning(['jti', 'token_hash'])
    .execute();
  const ending = ENDING_EVENT[status];
  if (ending) {
    await appendEvent(
      trx,
      job.id,
      ending,
      { reason, ...(actor ? { user_id: actor.userId, decision_id: actor.decisionId ?? null } : {}) },
      at,
    );
  }
  for (const t of revoked) {
    await appendEvent(
      trx,
      job.id,
      'token_revoked',
      { jti: t.jti, token_hash: t.token_hash, reason: `job ${status}` },
      at,
    );
  }
  await appendRejectionSummaries(trx, job.id, at);
  await appendEvent(trx, job.id, 'job_ended', { status, reason }, at);
  const ended: JobRow = { ...job, status, end_reason: reason, ended_at: at, updated_at: at };
  const { bundleId, envelope } = await sealBundle(ctx, trx, ended, at);
  await trx
    .updateTable('jobs')
    .set({ status, end_reason: reason, ended_at: at, updated_at: at, bundle_id: bundleId })
    .where('id', '=', job.id)
    .execute();
  const result = { jobId: job.id, status, reason, bundleId };
  // The reviewer's command names the gateways whose receipts this bundle carries, so it
  // verifies as printed; only gateways this server trusts were sealed as verified receipts.
  const gateways = [
    ...new Set(
      ((envelope.payload.receipts ?? []) as { signer_did?: unknown }[])
        .map((r) => r.signer_did)
        .filter((did): did is string => typeof did === 'string' && ctx.gatewaySigners.has(did)),
    ),
  ].sort();
  await publish(ctx, trx, { type: 'job_ended', job, ended: result, gatewaySigners: gateways }, at);
  ctx.log.info({ jobId: job.id, status, bundleId }, 'job ended');
  return result;
}
