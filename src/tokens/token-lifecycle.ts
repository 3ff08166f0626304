import type { Db } from '../db/database.js';
import type { TokenRow } from '../db/schema.js';
import { AppError, type AppErrorCode, isAppError } from '../errors.js';
import { type EngineContext, inTransaction, publish } from '../jobs/context.js';
import { endJob } from '../jobs/end-job.js';
import { lockExistingJob, lockJob } from '../jobs/job-repository.js';
import { appendEvent } from '../proofs/event-chain.js';
import { assertNotPaused } from '../jobs/kill-switch.js';
import { type CstClaims, tokenHash } from './cst-claims.js';

export type Introspection =
  | { active: true; claims: CstClaims; tokenHash: string; jobId: number; step: string }
  | { active: false; code: AppErrorCode; message: string };

const JOB_ID = /^job:([1-9][0-9]{0,15})$/;

/** Signature and claims (see verify-token), and the job the token names. */
async function verifiedClaims(
  ctx: EngineContext,
  compact: string,
  audience: string | undefined,
): Promise<{ claims: CstClaims; jobId: number }> {
  const claims = await ctx.verifier.verify(compact, {
    now: ctx.clock(),
    ...(audience === undefined ? {} : { audience }),
  });
  const m = JOB_ID.exec(claims.mission_id);
  if (!m) throw new AppError('ERR_TOKEN_NOT_FOUND', 'this token was not issued by this server');
  return { claims, jobId: Number(m[1]) };
}

/**
 * The database's part of every check besides single use: issued here, for this job and
 * step, not revoked, job still open, work not paused (a paused token is inactive: the gateway
 * must not act on it, and it cannot be redeemed until work resumes).
 */
async function issuanceRecord(db: Db, compact: string, claims: CstClaims, jobId: number): Promise<TokenRow> {
  await assertNotPaused(db);
  const row = await db
    .selectFrom('tokens')
    .selectAll()
    .where('token_hash', '=', tokenHash(compact))
    .executeTakeFirst();
  if (!row) throw new AppError('ERR_TOKEN_NOT_FOUND', 'this token was not issued by this server');
  // The row must describe the very token presented; anything else means tampering.
  if (
    row.jti !== claims.jti ||
    row.job_id !== jobId ||
    row.sub !== claims.sub ||
    row.scope_hash_b64u !== claims.token_scope_hash_b64u
  ) {
    throw new AppError('ERR_TOKEN_INVALID', 'token does not match its issuance record');
  }
  if (row.revoked_at !== null) throw new AppError('ERR_TOKEN_REVOKED', 'token has been revoked');
  const job = await db
    .selectFrom('jobs')
    .select(['status', 'policy_hash_b64u'])
    .where('id', '=', jobId)
    .executeTakeFirst();
  if (!job || job.policy_hash_b64u !== claims.policy_hash_b64u) {
    throw new AppError('ERR_TOKEN_INVALID', 'token does not match its job');
  }
  if (job.status !== 'open') {
    throw new AppError(
      job.status === 'revoked' ? 'ERR_TOKEN_REVOKED' : 'ERR_JOB_CLOSED',
      `job:${jobId} is ${job.status}`,
    );
  }
  return row;
}

/** Read-only check, for gateways before they act. Never throws for a bad token: it says why. */
export async function introspectToken(
  ctx: EngineContext,
  compact: string,
  opts: { audience?: string } = {},
): Promise<Introspection> {
  try {
    const { claims, jobId } = await verifiedClaims(ctx, compact, opts.audience);
    const row = await issuanceRecord(ctx.db, compact, claims, jobId);
    if (row.redeemed_at !== null)
      return { active: false, code: 'ERR_TOKEN_REPLAYED', message: 'token was already redeemed' };
    return { active: true, claims, tokenHash: row.token_hash, jobId, step: row.step_id };
  } catch (err) {
    if (isAppError(err)) return { active: false, code: err.code, message: err.message };
    throw err;
  }
}

/** Single use: the first redemption wins (an atomic conditional update); any other gets ERR_TOKEN_REPLAYED. */
export async function redeemToken(
  ctx: EngineContext,
  compact: string,
  opts: { audience?: string } = {},
): Promise<{ claims: CstClaims; tokenHash: string; jobId: number; step: string }> {
  const { claims, jobId } = await verifiedClaims(ctx, compact, opts.audience);
  const result = await ctx.db.transaction().execute(async (trx) => {
    // Checked under the job lock, so a revoke or job end cannot slip in between.
    const job = await lockJob(trx, jobId);
    if (!job) throw new AppError('ERR_TOKEN_NOT_FOUND', 'this token was not issued by this server');
    const row = await issuanceRecord(trx, compact, claims, jobId);
    const at = ctx.clock();
    const spent = await trx
      .updateTable('tokens')
      .set({ redeemed_at: at })
      .where('jti', '=', row.jti)
      .where('redeemed_at', 'is', null)
      .where('revoked_at', 'is', null)
      .returning('jti')
      .executeTakeFirst();
    if (!spent) return null;
    await appendEvent(
      trx,
      jobId,
      'token_redeemed',
      { step: row.step_id, jti: row.jti, token_hash: row.token_hash },
      at,
    );
    await publish(ctx, trx, { type: 'job_progressed', job }, at);
    return { claims, tokenHash: row.token_hash, jobId, step: row.step_id };
  });
  if (!result) throw new AppError('ERR_TOKEN_REPLAYED', 'token was already redeemed');
  ctx.notifier.changed(jobId);
  return result;
}

/**
 * Revokes one token by jti or token_hash. An agent may revoke only its own tokens; an
 * operator any. A revoked token whose step had not finished leaves the job unable to
 * complete, so the job ends as revoked and its bundle is sealed. Runs in the caller's
 * transaction when one is given (revoking an agent revokes its tokens in its own commit).
 */
export async function revokeToken(
  ctx: EngineContext,
  input: { jti?: string; tokenHash?: string; reason: string; actor: { agentId: string } | { admin: string } },
  callerTrx?: Db,
): Promise<{ jti: string; jobId: number; alreadyRevoked: boolean; jobEnded: boolean }> {
  const lookup = () => {
    let q = (callerTrx ?? ctx.db).selectFrom('tokens').selectAll();
    if (input.jti !== undefined) q = q.where('jti', '=', input.jti);
    else if (input.tokenHash !== undefined) q = q.where('token_hash', '=', input.tokenHash.toLowerCase());
    else throw new AppError('ERR_VALIDATION', 'give jti or token_hash');
    return q.executeTakeFirst();
  };
  const found = await lookup();
  if (!found || ('agentId' in input.actor && found.sub !== input.actor.agentId)) {
    throw new AppError('ERR_TOKEN_NOT_FOUND', 'no such token');
  }
  const result = await inTransaction(ctx, callerTrx, async (trx) => {
    const job = await lockExistingJob(trx, found.job_id);
    const row = await trx
      .selectFrom('tokens')
      .selectAll()
      .where('jti', '=', found.jti)
      .executeTakeFirstOrThrow();
    if (row.revoked_at !== null)
      return { jti: row.jti, jobId: job.id, alreadyRevoked: true, jobEnded: false };
    const at = ctx.clock();
    const by = 'agentId' in input.actor ? input.actor.agentId : `admin:${input.actor.admin}`;
    await trx
      .updateTable('tokens')
      .set({ revoked_at: at, revoke_reason: input.reason, compact: null })
      .where('jti', '=', row.jti)
      .execute();
    if (job.status !== 'open') return { jti: row.jti, jobId: job.id, alreadyRevoked: false, jobEnded: false };
    await appendEvent(
      trx,
      job.id,
      'token_revoked',
      { jti: row.jti, token_hash: row.token_hash, reason: input.reason, by },
      at,
    );
    const step = await trx
      .selectFrom('job_steps')
      .select('status')
      .where('job_id', '=', job.id)
      .where('step_id', '=', row.step_id)
      .executeTakeFirstOrThrow();
    if (step.status === 'approved' || step.status === 'claimed') {
      await endJob(
        ctx,
        trx,
        job,
        'revoked',
        `token ${row.jti} of step ${row.step_id} revoked by ${by}: ${input.reason}`,
        at,
      );
      return { jti: row.jti, jobId: job.id, alreadyRevoked: false, jobEnded: true };
    }
    await publish(ctx, trx, { type: 'job_progressed', job }, at);
    return { jti: row.jti, jobId: job.id, alreadyRevoked: false, jobEnded: false };
  });
  if (!callerTrx) ctx.notifier.changed(result.jobId);
  return result;
}
