import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { AppError, type AppErrorCode, isAppError } from '../errors.js';
import { type EngineContext, inTransaction, publish } from '../jobs/context.js';
import { endJob } from '../jobs/end-job.js';
import { lockExistingJob, lockJob } from '../jobs/job-repository.js';
import { appendEvent } from '../proofs/event-chain.js';
import { pausedReason } from '../jobs/kill-switch.js';
import { type CstClaims, tokenHash } from './cst-claims.js';
import { MAX_TOKEN_LENGTH } from './verify-token.js';

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
 * What the database says about a token, in one statement (one snapshot): the kill switch, the
 * issuance row found by the token's hash, and that row's job. Columns of the token and the job
 * are null when no row has that hash.
 */
const issuanceQuery = (db: Db, hash: string) =>
  db
    .selectFrom('kill_switch as k')
    .leftJoin('tokens as t', (join) => join.on('t.token_hash', '=', hash))
    .leftJoin('jobs as j', 'j.id', 't.job_id')
    .select([
      'k.paused',
      'k.reason as pause_reason',
      't.jti',
      't.job_id',
      't.step_id',
      't.sub',
      't.scope_hash_b64u',
      't.token_hash',
      't.revoked_at',
      't.redeemed_at',
      'j.status as job_status',
      'j.policy_hash_b64u as job_policy_hash_b64u',
    ])
    .where('k.id', '=', sql.lit(1));
type IssuanceRecord = Awaited<ReturnType<ReturnType<typeof issuanceQuery>['executeTakeFirst']>>;

/** The issuance record as a transaction reads it (redemption, under the job's lock). */
const issuanceRecord = (db: Db, hash: string) => issuanceQuery(db, hash).executeTakeFirst();

/**
 * Planning the three-table read costs PostgreSQL several times what running it does (0.4 to
 * 1 ms against 0.05 ms measured), so introspection runs it as a statement prepared once per
 * connection. SQL-level PREPARE, because the driver offers no named statements.
 *
 * The statement is named after a hash of its text: a connection shared with another version of
 * this server (a pooler in transaction mode) never runs that version's definition as this one.
 * A connection that lacks it says so (26000) and gets it. One whose copy no longer fits the
 * schema (a migration applied meanwhile, e.g. by another replica's rolling deploy: 0A000 when a
 * column's type changed, 42703 or 42P01 when one it names went away) drops it and prepares it
 * once more; if that fails the same way, this call uses the plain statement. Where prepared
 * statements do not survive from one statement to the next (a pooler), the plain statement is
 * used from then on. The hash is the only value, and it is inlined only once it is known to be
 * 64 hex digits.
 */
const HEX64 = /^[0-9a-f]{64}$/;
/** A statement prepared on this connection before the schema changed under it. */
const STALE = new Set(['0A000', '42703', '42P01']);
const unprepared = new WeakSet<Db>();
let prepared: { name: string; text: string } | undefined;

const sqlState = (err: unknown): unknown => (err as { code?: unknown }).code;

function preparedStatement(db: Db): { name: string; text: string } {
  if (!prepared) {
    const text = issuanceQuery(db, '$1').compile().sql.replace(/\$1/, '$$1::text');
    const digest = createHash('sha256').update(text).digest('hex').slice(0, 16);
    prepared = { name: `claw_token_introspection_${digest}`, text };
  }
  return prepared;
}

/** Runs the prepared introspection statement `name` on `on` (module level: no closure per call). */
const runPrepared = async (on: Db, name: string, hash: string) =>
  (await sql<NonNullable<IssuanceRecord>>`execute ${sql.raw(name)}(${sql.lit(hash)})`.execute(on)).rows[0];

async function preparedIssuanceRecord(db: Db, hash: string): Promise<IssuanceRecord> {
  if (!HEX64.test(hash) || unprepared.has(db)) return issuanceRecord(db, hash);
  const { name, text } = preparedStatement(db);
  let failed: unknown;
  try {
    return await runPrepared(db, name, hash);
  } catch (err) {
    failed = sqlState(err);
    if (failed !== '26000' && !STALE.has(failed as string)) throw err;
  }
  // The connection that ran it lacks the statement, or holds an outdated one: (re)prepare it on
  // one connection and run it there. Another connection in that state answers the same way the
  // first time it is used.
  return db.connection().execute(async (conn) => {
    let stale = failed !== '26000';
    for (;;) {
      if (stale) {
        try {
          await sql`deallocate ${sql.raw(name)}`.execute(conn);
        } catch (err) {
          // 26000: not on this connection (the pool gave another one than the failed run's).
          if (sqlState(err) !== '26000') throw err;
        }
      }
      try {
        await sql`prepare ${sql.raw(name)} (text) as ${sql.raw(text)}`.execute(conn);
      } catch (err) {
        // 42P05: this connection has it already; running it says whether it works.
        if (sqlState(err) !== '42P05') throw err;
      }
      try {
        return await runPrepared(conn, name, hash);
      } catch (err) {
        const code = sqlState(err);
        if (code === '26000') {
          unprepared.add(db);
          return issuanceRecord(conn, hash);
        }
        if (!STALE.has(code as string)) throw err;
        // Still outdated right after it was dropped and prepared again (the schema is changing
        // now): this call plans anew.
        if (stale) return issuanceRecord(conn, hash);
        stale = true;
      }
    }
  });
}

/**
 * The database's part of every check besides single use: work not paused (a paused token is
 * inactive: the gateway must not act on it, and it cannot be redeemed until work resumes),
 * issued here, for this job and step, not revoked, job still open. In this order, as before the
 * three reads became one, so every token keeps its answer.
 */
function checkIssuance(
  rec: IssuanceRecord,
  claims: CstClaims,
  jobId: number,
): { jti: string; tokenHash: string; step: string; redeemed: boolean } {
  // No row means the migration did not run: nothing can be decided safely.
  if (!rec) throw new AppError('ERR_INTERNAL', 'the kill switch state is missing');
  if (rec.paused) throw new AppError('ERR_PAUSED', pausedReason({ reason: rec.pause_reason }));
  if (rec.jti === null || rec.token_hash === null || rec.step_id === null)
    throw new AppError('ERR_TOKEN_NOT_FOUND', 'this token was not issued by this server');
  // The row must describe the very token presented; anything else means tampering.
  if (
    rec.jti !== claims.jti ||
    rec.job_id !== jobId ||
    rec.sub !== claims.sub ||
    rec.scope_hash_b64u !== claims.token_scope_hash_b64u
  ) {
    throw new AppError('ERR_TOKEN_INVALID', 'token does not match its issuance record');
  }
  if (rec.revoked_at !== null) throw new AppError('ERR_TOKEN_REVOKED', 'token has been revoked');
  if (rec.job_status === null || rec.job_policy_hash_b64u !== claims.policy_hash_b64u) {
    throw new AppError('ERR_TOKEN_INVALID', 'token does not match its job');
  }
  if (rec.job_status !== 'open') {
    throw new AppError(
      rec.job_status === 'revoked' ? 'ERR_TOKEN_REVOKED' : 'ERR_JOB_CLOSED',
      `job:${jobId} is ${rec.job_status}`,
    );
  }
  return { jti: rec.jti, tokenHash: rec.token_hash, step: rec.step_id, redeemed: rec.redeemed_at !== null };
}

/** Three base64url parts: the only form a CST has, checked before the database is asked. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Read-only check, for gateways before they act. Never throws for a bad token: it says why.
 *
 * The issuance record is read by the hash of the token as presented while its signature is
 * checked, so the round trip and the signature check overlap. Nothing is decided on that read
 * unless the signature and every claim verify: a forged token causes one indexed read and gets
 * the verifier's answer, as before. Nothing is cached between calls, so a revocation or a pause
 * committed through any replica is seen by the next introspection.
 */
export async function introspectToken(
  ctx: EngineContext,
  compact: string,
  opts: { audience?: string } = {},
): Promise<Introspection> {
  let reading: Promise<IssuanceRecord> | null = null;
  try {
    if (typeof compact === 'string' && compact.length <= MAX_TOKEN_LENGTH && COMPACT_JWS.test(compact)) {
      reading = preparedIssuanceRecord(ctx.db, tokenHash(compact));
      // Handled from the start: a failed read must not surface while the signature is checked.
      void reading.catch(() => undefined);
    }
    let verified: { claims: CstClaims; jobId: number };
    try {
      verified = await verifiedClaims(ctx, compact, opts.audience);
    } catch (err) {
      // The read's result, or its failure, means nothing for a token that did not verify.
      await reading?.catch(() => undefined);
      throw err;
    }
    const { claims, jobId } = verified;
    const rec = await (reading ?? preparedIssuanceRecord(ctx.db, tokenHash(compact)));
    const issued = checkIssuance(rec, claims, jobId);
    if (issued.redeemed)
      return { active: false, code: 'ERR_TOKEN_REPLAYED', message: 'token was already redeemed' };
    return { active: true, claims, tokenHash: issued.tokenHash, jobId, step: issued.step };
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
    // lockJob share-locked the kill switch: the paused flag read here holds until commit.
    const row = checkIssuance(await issuanceRecord(trx, tokenHash(compact)), claims, jobId);
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
      { step: row.step, jti: row.jti, token_hash: row.tokenHash },
      at,
    );
    await publish(ctx, trx, { type: 'job_progressed', job }, at);
    return { claims, tokenHash: row.tokenHash, jobId, step: row.step };
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
