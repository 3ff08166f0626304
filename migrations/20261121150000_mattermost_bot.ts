import { type Kysely, sql } from 'kysely';

// Frozen in time: uses Kysely<any> and never imports src/.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on the current schema types.
export async function up(db: Kysely<any>): Promise<void> {
  // Every chat post the bot acted on (or answered), keyed by Mattermost post id: written in the
  // same transaction as the action, so a post is acted on at most once across restarts and replicas.
  await db.schema
    .createTable('chat_posts')
    .addColumn('post_id', 'text', (c) => c.primaryKey())
    .addColumn('channel_id', 'text', (c) => c.notNull())
    .addColumn('root_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('job_id', 'bigint', (c) => c.references('jobs.id'))
    // Mattermost's edit_at / delete_at as last handled: a later edit or delete is handled once more.
    .addColumn('edit_at', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('delete_at', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('handled_at', 'timestamptz', (c) => c.notNull())
    .execute();

  // Where each channel's REST catch-up resumes (Mattermost update_at, milliseconds).
  await db.schema
    .createTable('chat_cursors')
    .addColumn('channel_id', 'text', (c) => c.primaryKey())
    .addColumn('since_ms', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .execute();

  // Bot posts and reactions, written in the transaction that decided them, delivered afterwards.
  await db.schema
    .createTable('outbox')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    // What this message is about (e.g. `reply:<post id>`); unique, so nothing is said twice.
    .addColumn('dedupe_key', 'text', (c) => c.notNull().unique())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('post','reaction')`))
    .addColumn('job_id', 'bigint', (c) => c.references('jobs.id'))
    .addColumn('channel_id', 'text', (c) => c.notNull())
    .addColumn('root_id', 'text')
    .addColumn('message', 'text')
    .addColumn('props', 'text')
    .addColumn('target_post_id', 'text')
    .addColumn('emoji', 'text')
    // Set on answers to a refused or malformed request, for the per-user rate limit.
    .addColumn('complaint_user_id', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz', (c) => c.notNull())
    .addColumn('lease_until', 'timestamptz')
    .addColumn('delivered_at', 'timestamptz')
    .addColumn('delivered_post_id', 'text')
    .addColumn('failed_at', 'timestamptz')
    .addColumn('last_error', 'text')
    .addCheckConstraint(
      'outbox_shape',
      sql`(kind = 'post' and message is not null) or (kind = 'reaction' and target_post_id is not null and emoji is not null)`,
    )
    .execute();
  await sql`create index outbox_pending_idx on outbox (next_attempt_at, id)
    where delivered_at is null and failed_at is null`.execute(db);
  // Delivery holds a post back while an earlier post of its thread is pending.
  await sql`create index outbox_thread_pending_idx on outbox (channel_id, root_id, id)
    where delivered_at is null and failed_at is null`.execute(db);
  await sql`create index outbox_complaints_idx on outbox (complaint_user_id, created_at)
    where complaint_user_id is not null`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('outbox').execute();
  await db.schema.dropTable('chat_cursors').execute();
  await db.schema.dropTable('chat_posts').execute();
}
