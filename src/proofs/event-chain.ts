import { randomBytes } from 'node:crypto';
import { canonicalJson } from '../crypto/jcs.js';
import { sha256B64u } from '../crypto/hash.js';
import type { Db } from '../db/database.js';
import type { JobEventRow } from '../db/schema.js';
import { missionId } from '../tokens/cst-claims.js';

export interface ChainedEvent {
  event_id: string;
  run_id: string;
  event_type: string;
  timestamp: string;
  payload_hash_b64u: string;
  prev_hash_b64u: string | null;
  event_hash_b64u: string;
}

/**
 * Claw Bureau's event hash: SHA-256 over JSON.stringify of the header in exactly this key
 * order (not JCS), so their verifier and ours agree byte for byte.
 */
export function eventHash(e: Omit<ChainedEvent, 'event_hash_b64u'>): string {
  return sha256B64u(
    JSON.stringify({
      event_id: e.event_id,
      run_id: e.run_id,
      event_type: e.event_type,
      timestamp: e.timestamp,
      payload_hash_b64u: e.payload_hash_b64u,
      prev_hash_b64u: e.prev_hash_b64u,
    }),
  );
}

export type EventType =
  | 'job_created'
  | 'thread_bound'
  | 'requester_confirmed'
  | 'requester_confirmation_withdrawn'
  | 'approval_recorded'
  | 'approval_rejected'
  | 'approval_rejections_summarized'
  | 'approval_withdrawn'
  | 'step_denied'
  | 'token_minted'
  | 'token_claimed'
  | 'token_redeemed'
  | 'token_revoked'
  | 'step_result'
  | 'job_revoked'
  | 'job_cancelled'
  | 'job_expired'
  | 'job_paused'
  | 'job_resumed'
  | 'job_ended';

/** The last event of a job's chain (null for an empty chain): where the next one links. */
export interface ChainHead {
  seq: number;
  hash: string;
}

/**
 * The event that follows `head` in a job's chain, built in memory (not yet written). A
 * transaction that appends several events in one statement chains them with this, each new
 * row becoming the head of the next.
 */
export function chainEvent(
  head: ChainHead | null,
  jobId: number,
  type: EventType,
  payload: Record<string, unknown>,
  at: Date,
): JobEventRow {
  const text = canonicalJson(payload);
  const header = {
    event_id: `evt_${randomBytes(16).toString('base64url')}`,
    run_id: missionId(jobId),
    event_type: type,
    timestamp: at.toISOString(),
    payload_hash_b64u: sha256B64u(text),
    prev_hash_b64u: head?.hash ?? null,
  };
  return {
    job_id: jobId,
    seq: (head?.seq ?? 0) + 1,
    event_id: header.event_id,
    event_type: type,
    timestamp: header.timestamp,
    payload: text,
    payload_hash_b64u: header.payload_hash_b64u,
    prev_hash_b64u: header.prev_hash_b64u,
    event_hash_b64u: eventHash(header),
  };
}

/**
 * Appends one event to a job's chain. The caller holds the job row lock (`forUpdate`), so
 * appends to one job are serialized; the primary key (job, seq) backs that up.
 */
export async function appendEvent(
  trx: Db,
  jobId: number,
  type: EventType,
  payload: Record<string, unknown>,
  at: Date,
): Promise<JobEventRow> {
  const last = await trx
    .selectFrom('job_events')
    .select(['seq', 'event_hash_b64u'])
    .where('job_id', '=', jobId)
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  const row = chainEvent(
    last ? { seq: last.seq, hash: last.event_hash_b64u } : null,
    jobId,
    type,
    payload,
    at,
  );
  await trx.insertInto('job_events').values(row).execute();
  return row;
}

export async function readChain(db: Db, jobId: number): Promise<JobEventRow[]> {
  return db.selectFrom('job_events').selectAll().where('job_id', '=', jobId).orderBy('seq').execute();
}
