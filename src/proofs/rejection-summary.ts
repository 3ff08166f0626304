import type { Db } from '../db/database.js';
import { appendEvent } from './event-chain.js';

/**
 * Refused attempts in the event chain are bounded per (job, person, reason code): the first one
 * is an `approval_rejected` event when it happens, and the rest are folded, as the job ends,
 * into one `approval_rejections_summarized` event (count, first and last) per person and code.
 * Every attempt stays in the `decisions` table; a flood of refused posts cannot grow a bundle.
 */

/** Whether this rejected decision is the first of its person and code on the job (it gets its own event). */
export async function firstRejection(
  trx: Db,
  d: { id: number; jobId: number; userId: string; code: string },
): Promise<boolean> {
  const earlier = await trx
    .selectFrom('decisions')
    .select('id')
    .where('job_id', '=', d.jobId)
    .where('user_id', '=', d.userId)
    .where('reason_code', '=', d.code)
    .where('outcome', '=', 'rejected')
    .where('id', '<', d.id)
    .limit(1)
    .executeTakeFirst();
  return earlier === undefined;
}

/** Appends the summaries of repeated rejections; called once, as the job ends, before `job_ended`. */
export async function appendRejectionSummaries(trx: Db, jobId: number, at: Date): Promise<void> {
  const groups = await trx
    .selectFrom('decisions')
    .select((eb) => [
      'user_id',
      'reason_code',
      eb.fn.countAll<string>().as('n'),
      eb.fn.min('id').as('first_id'),
      eb.fn.max('id').as('last_id'),
    ])
    .where('job_id', '=', jobId)
    .where('outcome', '=', 'rejected')
    .groupBy(['user_id', 'reason_code'])
    .having((eb) => eb.fn.countAll(), '>', 1)
    .orderBy('user_id')
    .orderBy('reason_code')
    .execute();
  for (const g of groups) {
    const ends = await trx
      .selectFrom('decisions')
      .select(['id', 'post_id', 'kind', 'step_id', 'created_at'])
      .where('id', 'in', [Number(g.first_id), Number(g.last_id)])
      .orderBy('id')
      .execute();
    const side = (d: (typeof ends)[number]) => ({
      decision_id: d.id,
      post_id: d.post_id,
      kind: d.kind,
      step: d.step_id,
      at: d.created_at.toISOString(),
    });
    await appendEvent(
      trx,
      jobId,
      'approval_rejections_summarized',
      {
        user_id: g.user_id,
        code: g.reason_code,
        count: Number(g.n),
        first: side(ends[0]!),
        last: side(ends.at(-1)!),
      },
      at,
    );
  }
}
