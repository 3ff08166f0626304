import { randomBytes } from 'node:crypto';
import { sha256Hex } from '../crypto/hash.js';
import type { Db } from '../db/database.js';
import type { AgentRow } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { EngineContext } from '../jobs/context.js';
import { endJob } from '../jobs/end-job.js';
import { lockJob } from '../jobs/job-repository.js';
import { revokeToken } from '../tokens/token-lifecycle.js';

export const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$/;
const KEY_PREFIX = 'cak_';
const KEY_SHAPE = /^cak_[A-Za-z0-9_-]{43}$/;

/** Creates an agent and returns its bearer key, the only time the key exists in clear. */
export async function createAgent(
  db: Db,
  input: { id: string; description?: string; at: Date },
): Promise<{ agent: AgentRow; key: string }> {
  if (!AGENT_ID.test(input.id))
    throw new AppError('ERR_VALIDATION', `agent id must match ${AGENT_ID.source}`);
  const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
  try {
    const agent = await db
      .insertInto('agents')
      .values({
        id: input.id,
        key_hash: sha256Hex(key),
        key_hint: key.slice(0, 8),
        description: input.description ?? '',
        created_at: input.at,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return { agent, key };
  } catch (err) {
    if ((err as { code?: string }).code === '23505') {
      throw new AppError('ERR_AGENT_EXISTS', `agent ${input.id} already exists`, { cause: err });
    }
    throw err;
  }
}

export async function listAgents(db: Db): Promise<AgentRow[]> {
  return db.selectFrom('agents').selectAll().orderBy('id').execute();
}

export interface AgentRevoked {
  agent: AgentRow;
  /** Tokens of this agent that were minted or claimed and not yet redeemed, now revoked. */
  tokens: { jti: string; jobId: number }[];
  /** Jobs that ended as revoked because a step they waited on lost its token. */
  jobsEnded: number[];
}

/**
 * Revokes an agent's key and, in the same transaction, every token of the agent not yet
 * redeemed: a token it already claimed must not outlive the key it was claimed with. Each
 * token is revoked as `token revoke` does (recorded in its job's event chain; a job whose
 * approved or claimed step loses its token ends as revoked, bundle sealed). Revoking an agent
 * again revokes whatever was left.
 */
export async function revokeAgent(
  ctx: EngineContext,
  input: { id: string; actor: string; reason?: string },
): Promise<AgentRevoked> {
  const reason = `agent ${input.id} revoked${input.reason ? `: ${input.reason}` : ''}`;
  const result = await ctx.db.transaction().execute(async (trx) => {
    const existing = await trx
      .selectFrom('agents')
      .selectAll()
      .where('id', '=', input.id)
      .forUpdate()
      .executeTakeFirst();
    if (!existing) throw new AppError('ERR_AGENT_NOT_FOUND', `no agent ${input.id}`);
    const agent =
      existing.revoked_at !== null
        ? existing
        : await trx
            .updateTable('agents')
            .set({ revoked_at: ctx.clock() })
            .where('id', '=', input.id)
            .returningAll()
            .executeTakeFirstOrThrow();
    // Job order, so concurrent revocations lock jobs in the same order.
    const live = await trx
      .selectFrom('tokens')
      .select(['jti', 'job_id'])
      .where('sub', '=', input.id)
      .where('revoked_at', 'is', null)
      .where('redeemed_at', 'is', null)
      .orderBy('job_id')
      .orderBy('jti')
      .execute();
    // Jobs this agent executes that are still open can never finish: they end too. Every job
    // involved is locked first, in id order, so concurrent revocations cannot deadlock.
    const open = await trx
      .selectFrom('jobs')
      .select('id')
      .where('executor', '=', input.id)
      .where('status', '=', 'open')
      .execute();
    const jobIds = [...new Set([...live.map((t) => t.job_id), ...open.map((j) => j.id)])].sort(
      (a, b) => a - b,
    );
    for (const id of jobIds) await lockJob(trx, id);
    const jobsEnded: number[] = [];
    for (const t of live) {
      // A job ended by an earlier token of this loop has already revoked this one with it.
      const r = await revokeToken(ctx, { jti: t.jti, reason, actor: { admin: input.actor } }, trx);
      if (r.jobEnded) jobsEnded.push(r.jobId);
    }
    const at = ctx.clock();
    for (const id of open.map((j) => j.id)) {
      const job = await lockJob(trx, id);
      if (job?.status !== 'open') continue;
      await endJob(ctx, trx, job, 'revoked', reason, at, { userId: `admin:${input.actor}` });
      jobsEnded.push(id);
    }
    return {
      agent,
      tokens: live.map((t) => ({ jti: t.jti, jobId: t.job_id })),
      jobsEnded: [...new Set(jobsEnded)].sort((a, b) => a - b),
    };
  });
  for (const jobId of new Set([...result.tokens.map((t) => t.jobId), ...result.jobsEnded]))
    ctx.notifier.changed(jobId);
  return result;
}

/** The agent a bearer key belongs to, if the key is well-formed, known and not revoked. */
export async function authenticateAgent(db: Db, key: string): Promise<AgentRow | null> {
  if (!KEY_SHAPE.test(key)) return null;
  const row = await db
    .selectFrom('agents')
    .selectAll()
    .where('key_hash', '=', sha256Hex(key))
    .executeTakeFirst();
  return row && row.revoked_at === null ? row : null;
}
