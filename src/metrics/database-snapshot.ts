import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { OutboxRow, StepStatus } from '../db/schema.js';

/**
 * Rows a count reads at most. Every count runs over a partial index of what is pending or open,
 * so its cost follows the backlog, not the history; past this many it stops, and the metric
 * says this number (read it as "at least").
 */
export const COUNT_CAP = 100_000;
/** Channels whose cursors are read, most behind first. */
export const CURSOR_CAP = 1_000;
/** PostgreSQL stops any one of the snapshot's statements after this long. */
const STATEMENT_TIMEOUT_MS = 2_000;

/** What the database says at scrape time. */
export interface DatabaseSnapshot {
  /** Outbox rows neither delivered nor failed for good, by kind, with when the oldest was written. */
  outbox: { kind: OutboxRow['kind']; pending: number; oldest: Date | null }[];
  openJobs: number;
  /** Steps of open jobs, by status. */
  openSteps: { status: StepStatus; count: number }[];
  /** Each followed channel's catch-up cursor (epoch milliseconds), most behind first. */
  cursors: { channelId: string; sinceMs: number }[];
  /** The kill switch. */
  paused: boolean;
}

/** One read-only transaction, so the numbers agree with each other; each statement is time-limited. */
export async function readDatabaseSnapshot(db: Db): Promise<DatabaseSnapshot> {
  return db
    .transaction()
    .setAccessMode('read only')
    .execute(async (trx) => {
      await sql`select set_config('statement_timeout', ${String(STATEMENT_TIMEOUT_MS)}, true)`.execute(trx);
      const outbox = await sql<{ kind: OutboxRow['kind']; pending: number; oldest: Date | string | null }>`
        select kind, count(*)::int as pending, min(created_at) as oldest
        from (
          select kind, created_at from outbox
          where delivered_at is null and failed_at is null
          limit ${COUNT_CAP}
        ) p
        group by kind`.execute(trx);
      const open = await sql<{ n: number }>`
        select count(*)::int as n
        from (select 1 from jobs where status = 'open' limit ${COUNT_CAP}) j`.execute(trx);
      const steps = await sql<{ status: StepStatus; count: number }>`
        select s.status, count(*)::int as count
        from job_steps s
        join (select id from jobs where status = 'open' limit ${COUNT_CAP}) j on j.id = s.job_id
        group by s.status`.execute(trx);
      const cursors = await trx
        .selectFrom('chat_cursors')
        .select(['channel_id', 'since_ms'])
        .orderBy('since_ms')
        .orderBy('channel_id')
        .limit(CURSOR_CAP)
        .execute();
      const kill = await trx
        .selectFrom('kill_switch')
        .select('paused')
        .where('id', '=', 1)
        .executeTakeFirst();
      return {
        outbox: outbox.rows.map((r) => ({
          kind: r.kind,
          pending: Number(r.pending),
          oldest: r.oldest === null ? null : new Date(r.oldest),
        })),
        openJobs: Number(open.rows[0]?.n ?? 0),
        openSteps: steps.rows.map((r) => ({ status: r.status, count: Number(r.count) })),
        cursors: cursors.map((c) => ({ channelId: c.channel_id, sinceMs: Number(c.since_ms) })),
        paused: kill?.paused === true,
      };
    });
}
