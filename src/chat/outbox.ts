import { type Expression, type QueryCreator, type SqlBool, sql, type UpdateObject } from 'kysely';
import { sha256B64u } from '../crypto/hash.js';
import { afterCommit } from '../db/commit-hooks.js';
import type { Db } from '../db/database.js';
import type { Database, OutboxRow } from '../db/schema.js';
import { appendEvent } from '../proofs/event-chain.js';

/**
 * The outbox: every bot post and reaction is a row written in the transaction that decided
 * it, and delivered to Mattermost after commit (`outbox-delivery.ts`). `dedupe_key` names what
 * the message is about, so the same answer can never be queued twice.
 */
export interface OutboxPost {
  key: string;
  jobId: number | null;
  channelId: string;
  /** Thread root; null posts at the top of the channel (DM answers). */
  rootId: string | null;
  message: string;
  props?: Record<string, string>;
  /** Set on answers to refused or malformed input: these are rate-limited per user. */
  complaintUserId?: string;
}

/** The outbox key of an agent's job's plan post: its delivery binds the job to the thread it starts. */
export const planPostKey = (jobId: number) => `job:${jobId}:plan`;

/**
 * The outbox key of a job's plan post, which is also its status post. A job requested in chat
 * is the bot's answer to the request (`reply:<post id>`); any other starts its own thread.
 */
export function statusPostKey(job: StatusJob): string {
  return job.origin === 'mattermost' && job.root_post_id !== null
    ? `reply:${job.root_post_id}`
    : planPostKey(job.id);
}

/** The job whose status post is meant, as its row has it. */
type StatusJob = { id: number; channel_id: string | null; origin: string; root_post_id: string | null };

/** The outbox key of the one row that carries a job's status-post edits. */
export const statusPatchKey = (jobId: number) => `status:${jobId}`;

type Committed = () => void;
/** Deliveries of this process, told whenever a transaction that wrote outbox rows commits. */
const listeners = new Set<Committed>();

/**
 * Calls `listener` right after any transaction of this process that wrote outbox rows commits
 * (whatever wrote them: the bot, the API, the expiry sweep, the CLI in process), so delivery
 * starts at once instead of at its next poll. Returns the unsubscribe function.
 */
export function onOutboxCommitted(listener: Committed): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function announce(trx: Db): Promise<void> {
  return afterCommit(trx, () => {
    for (const l of listeners) l();
  });
}

/**
 * The statement that queues `post`. Replies in a thread are delivered in outbox id order, so ids
 * must follow commit order: a transaction that writes to a thread holds it until it commits, and
 * one that acted later cannot take an earlier id and be read first (or, committing first, be
 * delivered first). The lock is taken by the statement's own source row, so before its id is drawn.
 */
function postInsert(post: OutboxPost, at: Date) {
  const thread = `outbox-thread:${post.channelId}:${post.rootId ?? ''}`;
  return sql<{ id: number }>`
    insert into outbox (dedupe_key, kind, job_id, channel_id, root_id, message, props,
                        complaint_user_id, created_at, next_attempt_at)
    select ${post.key}, 'post', ${post.jobId}, ${post.channelId}, ${post.rootId}, ${post.message},
           ${JSON.stringify(post.props ?? {})}, ${post.complaintUserId ?? null}, ${at}, ${at}
    from (select pg_advisory_xact_lock(hashtextextended(${thread}, 0))) as thread_lock
    on conflict (dedupe_key) do nothing
    returning id`;
}

export async function enqueuePost(trx: Db, post: OutboxPost, at: Date): Promise<boolean> {
  const inserted = await postInsert(post, at).execute(trx);
  if (inserted.rows.length === 0) return false;
  await announce(trx);
  return true;
}

/**
 * Queues a reaction. `builder` builds the statement (default `trx`): a query creator with a
 * common table expression writes that in the same statement (see handle-post's `remember`).
 */
export async function enqueueReaction(
  trx: Db,
  r: { key: string; jobId: number | null; channelId: string; postId: string; emoji: string },
  at: Date,
  builder: QueryCreator<Database> = trx,
): Promise<void> {
  await builder
    .insertInto('outbox')
    .values({
      dedupe_key: r.key,
      kind: 'reaction',
      job_id: r.jobId,
      channel_id: r.channelId,
      target_post_id: r.postId,
      emoji: r.emoji,
      created_at: at,
      next_attempt_at: at,
    })
    .onConflict((oc) => oc.column('dedupe_key').doNothing())
    .execute();
  await announce(trx);
}

/**
 * What a patch row remembers of the props the status post carries: their SHA-256, never the
 * props themselves, which hold each button's signed context. Stored, a context would let anyone
 * who reads the database present a click as any approver; only Mattermost may hold it.
 */
export function statusPropsDigest(props: Record<string, unknown>): string {
  return `sha256:${sha256B64u(JSON.stringify(props))}`;
}

/**
 * The job's status post must show its current state: the job's patch row is (re-)armed. There
 * is one such row per job; each change bumps its version, and delivery renders the state as it
 * is when it sends, so edits coalesce (the latest state wins) and are never applied out of order.
 */
export async function markStatusStale(
  trx: Db,
  job: StatusJob & { channel_id: string },
  at: Date,
): Promise<void> {
  await staleUpsert(trx, job, at).execute();
  await announce(trx);
}

/**
 * `enqueuePost(post)` and `markStatusStale(job)` in one statement (one round trip): a reply about
 * a job that also changes its status post. PostgreSQL runs the upsert first, so the statement
 * takes the status row's lock, then the thread's (the reply's insert, a CTE nothing reads, runs
 * last). No deadlock can come of that order: every transaction that writes a job's status row
 * locks the job's row first (the caller holds it), and the delivery's writes of the status row are
 * statements of their own that take no thread lock. A new writer of status rows must keep to that.
 */
export async function enqueuePostMarkingStale(
  trx: Db,
  post: OutboxPost,
  job: StatusJob & { channel_id: string },
  at: Date,
): Promise<void> {
  // The CTE adds a table the upsert never reads: the query creator is the plain one to it.
  const withReply = trx.with(
    'reply',
    () => sql`(${postInsert(post, at)})`,
  ) as unknown as QueryCreator<Database>;
  await staleUpsert(withReply, job, at).execute();
  await announce(trx);
}

const staleUpsert = (db: QueryCreator<Database>, job: StatusJob & { channel_id: string }, at: Date) =>
  db
    .insertInto('outbox')
    .values(statusRow(job, at, null))
    .onConflict((oc) =>
      oc.column('dedupe_key').doUpdateSet({
        version: sql<number>`outbox.version + 1`,
        delivered_at: null,
        failed_at: null,
        attempts: 0,
        last_error: null,
        next_attempt_at: at,
      }),
    );

/**
 * The status post is queued with this text: its patch row starts as delivered, remembering what
 * the post says, so no edit is sent until the job moves.
 */
export async function recordStatusQueued(
  trx: Db,
  job: StatusJob & { channel_id: string },
  at: Date,
  queued: { message: string; props: Record<string, unknown> },
): Promise<void> {
  await trx
    .insertInto('outbox')
    .values(statusRow(job, at, queued))
    .execute();
}

function statusRow(
  job: StatusJob & { channel_id: string },
  at: Date,
  applied: { message: string; props: Record<string, unknown> } | null,
) {
  return {
    dedupe_key: statusPatchKey(job.id),
    kind: 'patch' as const,
    job_id: job.id,
    channel_id: job.channel_id,
    target_key: statusPostKey(job),
    message: applied?.message ?? null,
    props: applied ? statusPropsDigest(applied.props) : null,
    created_at: at,
    next_attempt_at: at,
    delivered_at: applied ? at : null,
  };
}

/** A job's post was just posted: if it is the status post, an edit waiting for it is due now. */
export async function releaseStatusWait(db: Db, jobId: number, postKey: string, at: Date): Promise<void> {
  await db
    .updateTable('outbox')
    .set({ next_attempt_at: at })
    .where('dedupe_key', '=', statusPatchKey(jobId))
    .where('target_key', '=', postKey)
    .where('delivered_at', 'is', null)
    .where('failed_at', 'is', null)
    .execute();
}

/**
 * Whether this holder still has the row's lease, which is then extended by `leaseMs` from `at`.
 * A status edit renders the job, then names people through Mattermost, which may be slow: if the
 * lease ran out meanwhile, another replica may have taken the row and sent a newer state, so the
 * older one must not be sent after it.
 */
export async function holdLease(
  db: Db,
  id: number,
  owner: string,
  at: Date,
  leaseMs: number,
): Promise<boolean> {
  const held = await db
    .updateTable('outbox')
    .set({ lease_until: new Date(at.getTime() + leaseMs) })
    .where('id', '=', id)
    .where('lease_owner', '=', owner)
    .where('lease_until', '>', at)
    .executeTakeFirst();
  return Number(held.numUpdatedRows) === 1;
}

/**
 * A status edit was sent (or found unneeded) by the lease holder `owner`: what the post says now
 * is remembered, and the row is done unless the job changed again meanwhile (its version moved),
 * in which case it is released to be rendered and sent again. A holder whose lease was taken
 * over records nothing: the post says what the new holder sent.
 */
export async function markPatched(
  db: Db,
  row: { id: number; version: number; lease_owner: string | null },
  applied: { message: string; props: string },
  postId: string,
  at: Date,
): Promise<void> {
  await asHolder(db, row, {
    message: applied.message,
    props: applied.props,
    delivered_post_id: postId,
    delivered_at: sql<Date | null>`case when version = ${row.version} then ${at}::timestamptz else null end`,
    lease_until: null,
    last_error: null,
  });
}

/**
 * A status edit failed for good. If the job changed again since the row was leased (its version
 * moved), that newer state was never tried: the row is released to be tried again instead.
 * `edited`: as for `markRetry`.
 */
export async function markPatchFailed(
  db: Db,
  row: Leased & { version: number },
  at: Date,
  error: string,
  edited = false,
): Promise<boolean> {
  return asHolder(db, row, {
    failed_at: sql<Date | null>`case when version = ${row.version} then ${at}::timestamptz else null end`,
    lease_until: null,
    last_error: error.slice(0, 500),
    ...(edited ? postUnknown : {}),
  });
}

/** How many complaint answers this user was sent since `since` (the flood limit's window). */
export async function complaintsSince(trx: Db, userId: string, since: Date): Promise<number> {
  const row = await trx
    .selectFrom('outbox')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('complaint_user_id', '=', userId)
    .where('created_at', '>', since)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/**
 * Leases up to `limit` due rows, oldest first. `skip locked` and the lease let several bot
 * replicas deliver from one table without sending a row twice; a lease that runs out (its
 * holder died) makes the row due again. A post waits until every earlier post of its thread is
 * delivered (or has failed for good): a row waiting out a backoff, or leased by another
 * replica or by a process that died, holds back the rest of its thread, so replies keep their
 * order across retries, restarts and replicas.
 */
export async function leaseDue(
  db: Db,
  at: Date,
  leaseMs: number,
  limit: number,
  owner: string | null = null,
  /** Rows the caller is delivering already (a lease that ran out while it was sending). */
  inFlight: readonly number[] = [],
): Promise<OutboxRow[]> {
  // One statement: the rows are picked, locked, leased and returned in a single round trip.
  const rows = await db
    .with('due', (qb) =>
      qb
        .selectFrom('outbox as o')
        .select('o.id')
        .where('o.delivered_at', 'is', null)
        .where('o.failed_at', 'is', null)
        .where('o.next_attempt_at', '<=', at)
        .where((eb) => eb.or([eb('o.lease_until', 'is', null), eb('o.lease_until', '<', at)]))
        .$if(inFlight.length > 0, (qb) => qb.where('o.id', 'not in', inFlight))
        .where((eb) =>
          eb.or([
            eb('o.kind', '!=', 'post'),
            eb.not(
              eb.exists(
                eb
                  .selectFrom('outbox as e')
                  .select('e.id')
                  .where('e.kind', '=', 'post')
                  .whereRef('e.channel_id', '=', 'o.channel_id')
                  .whereRef('e.root_id', 'is not distinct from', 'o.root_id')
                  .whereRef('e.id', '<', 'o.id')
                  .where('e.delivered_at', 'is', null)
                  .where('e.failed_at', 'is', null),
              ),
            ),
          ]),
        )
        // What people wait for first: replies, then reactions, then status edits.
        .orderBy(sql`case o.kind when 'post' then 0 when 'reaction' then 1 else 2 end`)
        .orderBy('o.id')
        .limit(limit)
        .forUpdate()
        .skipLocked(),
    )
    .updateTable('outbox')
    .from('due')
    .set({
      lease_until: new Date(at.getTime() + leaseMs),
      lease_owner: owner,
      attempts: sql<number>`attempts + 1`,
    })
    .whereRef('outbox.id', '=', 'due.id')
    .returningAll('outbox')
    .execute();
  return rows.sort((a, b) => a.id - b.id);
}

/**
 * A leased row as its holder saw it. Every outcome below is recorded only while the row is still
 * that holder's (false otherwise): a holder whose lease ran out and was taken over by another
 * replica must not clear the new holder's lease, nor record its own late answer over the other's.
 */
type Leased = { id: number; lease_owner: string | null };

/** Records an outcome (`values`, the lease ended) on `row` if it is still its holder's; whether it was. */
async function asHolder(db: Db, row: Leased, values: UpdateObject<Database, 'outbox'>): Promise<boolean> {
  const done = await db
    .updateTable('outbox')
    .set({ ...values, lease_owner: null })
    .where('id', '=', row.id)
    .where('lease_owner', 'is not distinct from', row.lease_owner)
    .executeTakeFirst();
  return Number(done.numUpdatedRows) === 1;
}

export async function markDelivered(db: Db, row: Leased, postId: string | null, at: Date): Promise<boolean> {
  return asHolder(db, row, {
    delivered_at: at,
    delivered_post_id: postId,
    lease_until: null,
    last_error: null,
  });
}

/**
 * A post was delivered; if it is a job's status post, the edit waiting for it is due now. One
 * statement for both, which also says whether anything became due by it: a later post of its
 * thread (which it held back), or that edit. `recorded` false: the row was no longer this
 * holder's, and nothing was written.
 */
export async function markPostDelivered(
  db: Db,
  row: Leased & { job_id: number | null; dedupe_key: string; channel_id: string; root_id: string | null },
  postId: string,
  at: Date,
): Promise<{ recorded: boolean; more: boolean }> {
  const done = await db
    .with('delivered', (qb) =>
      qb
        .updateTable('outbox')
        .set({
          delivered_at: at,
          delivered_post_id: postId,
          lease_until: null,
          lease_owner: null,
          last_error: null,
        })
        .where('id', '=', row.id)
        .where('lease_owner', 'is not distinct from', row.lease_owner)
        .returning('id'),
    )
    .with('released', (qb) =>
      qb
        .updateTable('outbox')
        .set({ next_attempt_at: at })
        // A post of no job is no job's status post: nothing matches.
        .where('dedupe_key', '=', row.job_id === null ? '' : statusPatchKey(row.job_id))
        .where('target_key', '=', row.dedupe_key)
        .where('delivered_at', 'is', null)
        .where('failed_at', 'is', null)
        .where((eb) => eb.exists(eb.selectFrom('delivered').select('delivered.id')))
        .returning('id'),
    )
    .selectNoFrom((eb) => [
      eb
        .selectFrom('delivered')
        .select((e) => e.fn.countAll<string>().as('n'))
        .as('n'),
      eb.exists(eb.selectFrom('released').select('released.id')).as('released'),
      // A later post of the same thread, as leaseDue holds posts back: this one held it back.
      eb
        .exists(
          eb
            .selectFrom('outbox as e')
            .select('e.id')
            .where('e.kind', '=', 'post')
            .where('e.channel_id', '=', row.channel_id)
            .where('e.root_id', 'is not distinct from', row.root_id)
            .where('e.id', '>', row.id)
            .where('e.delivered_at', 'is', null)
            .where('e.failed_at', 'is', null),
        )
        .as('following'),
    ])
    .executeTakeFirstOrThrow();
  const recorded = Number(done.n) === 1;
  return { recorded, more: recorded && (Boolean(done.released) || Boolean(done.following)) };
}

/**
 * A lease released before its holder recorded how its delivery ended. A post is delivered again
 * at once (delivery first looks for an earlier success by its key). A status edit may have been
 * sent: its row forgets what the post says, so the next holder sends the state it renders
 * whatever the row last knew; and one that may still land (`held`) keeps its lease until that
 * runs out, held by no one.
 */
const releasedUnsure = (held: Expression<SqlBool>) => ({
  lease_owner: null,
  lease_until: sql<Date | null>`case when kind = 'patch' and ${held} then lease_until end`,
  ...postUnknown,
});

/**
 * This holder's leases on rows it is not delivering (`inFlight` are those it is): rows whose
 * outcome it could not record (the database went away), and rows a lease statement that
 * committed but whose answer was lost gave it. Released so their threads go on now, not when
 * the lease runs out, except status edits sent without an answer (`inDoubt`; see
 * `releasedUnsure`). Returns how many.
 */
export async function releaseOwnLeasesExcept(
  db: Db,
  owner: string,
  inFlight: readonly number[],
  inDoubt: readonly number[] = [],
): Promise<number> {
  const released = await db
    .updateTable('outbox')
    .set(
      releasedUnsure(inDoubt.length > 0 ? sql<SqlBool>`id in (${sql.join(inDoubt)})` : sql<SqlBool>`false`),
    )
    .where('lease_owner', '=', owner)
    .$if(inFlight.length > 0, (qb) => qb.where('id', 'not in', inFlight))
    .where('delivered_at', 'is', null)
    .executeTakeFirst();
  return Number(released.numUpdatedRows);
}

/** What a status edit's row forgets once an edit was sent and its outcome not recorded. */
const postUnknown = {
  message: sql<string | null>`case when kind = 'patch' then null else message end`,
  props: sql<string | null>`case when kind = 'patch' then null else props end`,
};

/**
 * The row is due again at `next`. `edited`: a status edit was sent before the failure (it may
 * have landed, even if what failed came after): the row forgets what the post says, so the next
 * holder sends whatever it renders.
 */
export async function markRetry(
  db: Db,
  row: Leased,
  next: Date,
  error: string,
  edited = false,
): Promise<boolean> {
  return asHolder(db, row, {
    next_attempt_at: next,
    lease_until: null,
    last_error: error.slice(0, 500),
    ...(edited ? postUnknown : {}),
  });
}

/** An edit in doubt is held at least this long after its failure, whatever the lease's length. */
export const DOUBT_HOLD_MS = 10_000;

/**
 * As `markRetry`, for an edit that was sent and may still land (no answer came): the row keeps
 * its lease until that runs out, and at least `DOUBT_HOLD_MS` from `at`, held by no one, so no
 * holder (this one included) sends a newer edit that the late one could land after. What the
 * post says is no longer known: the next holder sends whatever it renders.
 */
export async function markRetryHeld(
  db: Db,
  row: Leased,
  next: Date,
  error: string,
  at: Date,
): Promise<boolean> {
  const held = new Date(at.getTime() + DOUBT_HOLD_MS);
  return asHolder(db, row, {
    next_attempt_at: next,
    lease_until: sql<Date>`greatest(lease_until, ${held}::timestamptz)`,
    message: null,
    props: null,
    last_error: error.slice(0, 500),
  });
}

export async function markFailed(db: Db, row: Leased, at: Date, error: string): Promise<boolean> {
  return asHolder(db, row, { failed_at: at, lease_until: null, last_error: error.slice(0, 500) });
}

/**
 * An agent-submitted job's plan post was delivered: it becomes the job's thread, where its
 * decisions count (once, whichever replica delivered it) and the chain records the binding.
 */
export async function bindJobThread(db: Db, jobId: number, postId: string, at: Date): Promise<void> {
  await db.transaction().execute(async (trx) => {
    const job = await trx
      .selectFrom('jobs')
      .select(['status', 'root_post_id'])
      .where('id', '=', jobId)
      .forUpdate()
      .executeTakeFirst();
    if (!job || job.root_post_id !== null) return;
    await writeThreadBinding(trx, { id: jobId, status: job.status }, postId, at);
  });
}

/**
 * Binds a thread-less job, whose row the caller holds locked, to its plan post: the row's
 * `root_post_id`, and a `thread_bound` event while the job is open (a closed job's chain is
 * sealed in its bundle; the binding is then only in the row). Returns the event, if any.
 */
export async function writeThreadBinding(
  trx: Db,
  job: { id: number; status: string },
  postId: string,
  at: Date,
): Promise<Awaited<ReturnType<typeof appendEvent>> | null> {
  await trx
    .updateTable('jobs')
    .set({ root_post_id: postId })
    .where('id', '=', job.id)
    .where('root_post_id', 'is', null)
    .execute();
  return job.status === 'open'
    ? appendEvent(trx, job.id, 'thread_bound', { root_post_id: postId }, at)
    : null;
}

/**
 * Leases left by holders that are certainly gone (a crashed predecessor of this process) are
 * released, so their rows are delivered now rather than when the lease runs out. Resending is
 * safe: delivery first looks for an earlier success by the row's outbox key. A status edit
 * waits its lease out (see `releasedUnsure`).
 */
export async function releaseLeasesOfGone(
  db: Db,
  at: Date,
  isGone: (owner: string) => boolean,
): Promise<number> {
  const held = await db
    .selectFrom('outbox')
    .select('lease_owner')
    .distinct()
    .where('delivered_at', 'is', null)
    .where('failed_at', 'is', null)
    .where('lease_until', '>', at)
    .where('lease_owner', 'is not', null)
    .execute();
  const gone = held.map((r) => r.lease_owner!).filter(isGone);
  if (gone.length === 0) return 0;
  const released = await db
    .updateTable('outbox')
    // How a crashed holder's edit ended is not known: it is held.
    .set(releasedUnsure(sql<SqlBool>`true`))
    .where('lease_owner', 'in', gone)
    .where('delivered_at', 'is', null)
    .executeTakeFirst();
  return Number(released.numUpdatedRows);
}

/**
 * Moves a row written earlier in this transaction behind everything written since (a new id),
 * so that, e.g., the acknowledgement of a DENY is read before the "job ended" post it caused.
 */
export async function moveToBack(trx: Db, key: string): Promise<void> {
  const row = await trx
    .deleteFrom('outbox')
    .where('dedupe_key', '=', key)
    .where('delivered_at', 'is', null)
    .where('lease_until', 'is', null)
    .returningAll()
    .executeTakeFirst();
  if (!row) return;
  const { id: _id, ...rest } = row;
  await trx.insertInto('outbox').values(rest).execute();
  await announce(trx);
}
