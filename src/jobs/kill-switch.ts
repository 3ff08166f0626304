import type { Db } from '../db/database.js';
import { AppError } from '../errors.js';
import { appendEvent } from '../proofs/event-chain.js';
import { type EngineContext, inTransaction, publish } from './context.js';

/**
 * The kill switch (issue 11 section 6). Paused, no job is requested, no approval counts, no
 * token is minted, claimed or redeemed, on every replica at once: the state is one database row
 * that every deciding transaction reads under a share lock, and that pausing changes under an
 * update lock, so a decision either commits before the pause or sees it. Refusals (DENY,
 * REVOKE, cancel) still work: stopping work must never be what a pause prevents. Pending jobs
 * stay pending (their approval window keeps running), and each open job's chain records the
 * pause and the resume.
 */

/** The longest reason a pause or resume records (chat, HTTP and the CLI alike). */
export const MAX_REASON = 300;

export interface PauseState {
  paused: boolean;
  /** `user:<Mattermost user id>` or `admin:<how>`. */
  actor: string | null;
  reason: string | null;
  changedAt: Date | null;
}

export type PauseActor = { kind: 'user'; userId: string } | { kind: 'admin'; via: string };

const actorText = (a: PauseActor) => (a.kind === 'user' ? `user:${a.userId}` : `admin:${a.via}`);

async function readState(trx: Db, lock: 'share' | 'update' | null): Promise<PauseState> {
  let q = trx.selectFrom('kill_switch').selectAll().where('id', '=', 1);
  if (lock === 'share') q = q.forShare();
  if (lock === 'update') q = q.forUpdate();
  const row = await q.executeTakeFirst();
  // No row means the migration did not run: nothing can be decided safely.
  if (!row) throw new AppError('ERR_INTERNAL', 'the kill switch state is missing');
  return { paused: row.paused, actor: row.actor, reason: row.reason, changedAt: row.changed_at };
}

/**
 * The switch as it is now. A deciding transaction reads it under a `share` lock, held to its
 * commit; without a lock it is for display only.
 */
export function pauseState(db: Db, lock: 'share' | null = null): Promise<PauseState> {
  return readState(db, lock);
}

/**
 * Share-locks the switch for the rest of this transaction, before any job row is locked (see
 * `lockJob`): the lock order every deciding transaction and `setPaused` follow.
 */
export async function holdKillSwitch(trx: Db): Promise<void> {
  await trx.selectFrom('kill_switch').select('id').where('id', '=', 1).forShare().execute();
}

/** Whether work is paused, holding the state for the rest of this deciding transaction. */
export async function isPaused(trx: Db): Promise<boolean> {
  return (await readState(trx, 'share')).paused;
}

/** Refuses, in a deciding transaction, when work is paused. */
export async function assertNotPaused(trx: Db): Promise<void> {
  const s = await readState(trx, 'share');
  if (s.paused) throw new AppError('ERR_PAUSED', pausedReason(s));
}

/** Why work is refused while paused, as people are told. */
export function pausedReason(s: Pick<PauseState, 'reason'>): string {
  return `work is paused${s.reason ? `: ${s.reason}` : ''}; it resumes when the security group says so`;
}

/**
 * A reason as a chain can record it and people can read it. Chat gives a person's words as they
 * came, cut at MAX_REASON characters, which may split a character in two: a lone surrogate no
 * event can hold (JCS refuses it), so the pause would fail. Such halves and control characters
 * (C0, C1, bidi and zero-width controls) become U+FFFD; the API and the CLI refuse them before.
 */
function plainReason(reason: string): string {
  return reason.replace(/[\p{Cc}\p{Cs}\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/gu, '\ufffd').trim();
}

export interface PauseChange {
  changed: boolean;
  state: PauseState;
  /** Open jobs whose chains recorded the change. */
  jobs: number[];
}

/**
 * Pauses or resumes all work. Who may is the caller's to check (the security group in chat,
 * ADMIN_TOKEN over HTTP, the operator at the CLI). Saying the same twice changes nothing.
 */
export async function setPaused(
  ctx: EngineContext,
  input: { paused: boolean; actor: PauseActor; reason: string },
  callerTrx?: Db,
): Promise<PauseChange> {
  const result = await inTransaction(ctx, callerTrx, async (trx): Promise<PauseChange> => {
    const now = await readState(trx, 'update');
    if (now.paused === input.paused) return { changed: false, state: now, jobs: [] };
    const at = ctx.clock();
    const reason = plainReason(input.reason);
    const state: PauseState = {
      paused: input.paused,
      actor: actorText(input.actor),
      reason: reason || null,
      changedAt: at,
    };
    await trx
      .updateTable('kill_switch')
      .set({ paused: state.paused, actor: state.actor, reason: state.reason, changed_at: at })
      .where('id', '=', 1)
      .execute();
    const open = await trx
      .selectFrom('jobs')
      .selectAll()
      .where('status', '=', 'open')
      .orderBy('id')
      .forUpdate()
      .execute();
    for (const job of open) {
      await appendEvent(
        trx,
        job.id,
        input.paused ? 'job_paused' : 'job_resumed',
        {
          ...(input.actor.kind === 'user' ? { user_id: input.actor.userId } : { admin: input.actor.via }),
          reason,
        },
        at,
      );
      await publish(ctx, trx, { type: 'pause_changed', job, paused: input.paused }, at);
    }
    return { changed: true, state, jobs: open.map((j) => j.id) };
  });
  if (result.changed) {
    ctx.log.warn(
      { paused: input.paused, actor: result.state.actor, jobs: result.jobs.length },
      input.paused ? 'work paused (kill switch)' : 'work resumed',
    );
    if (!callerTrx) for (const id of result.jobs) ctx.notifier.changed(id);
  }
  return result;
}
