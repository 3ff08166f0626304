import { type Kysely, sql } from 'kysely';

// Frozen in time: uses Kysely<any> and never imports src/.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on the current schema types.
export async function up(db: Kysely<any>): Promise<void> {
  // A job's status post is edited through the outbox: one `patch` row per job, re-armed on every
  // change (`version` counts them), naming the post it edits by that post's outbox key.
  await db.schema.alterTable('outbox').addColumn('target_key', 'text').execute();
  await db.schema
    .alterTable('outbox')
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await sql`alter table outbox drop constraint outbox_kind_check`.execute(db);
  await sql`alter table outbox add constraint outbox_kind_check check (kind in ('post','reaction','patch'))`.execute(
    db,
  );
  await sql`alter table outbox drop constraint outbox_shape`.execute(db);
  await sql`alter table outbox add constraint outbox_shape check (
    (kind = 'post' and message is not null)
    or (kind = 'reaction' and target_post_id is not null and emoji is not null)
    or (kind = 'patch' and target_key is not null and job_id is not null))`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see up().
export async function down(db: Kysely<any>): Promise<void> {
  await sql`delete from outbox where kind = 'patch'`.execute(db);
  await sql`alter table outbox drop constraint outbox_shape`.execute(db);
  await sql`alter table outbox add constraint outbox_shape check (
    (kind = 'post' and message is not null)
    or (kind = 'reaction' and target_post_id is not null and emoji is not null))`.execute(db);
  await sql`alter table outbox drop constraint outbox_kind_check`.execute(db);
  await sql`alter table outbox add constraint outbox_kind_check check (kind in ('post','reaction'))`.execute(
    db,
  );
  await db.schema.alterTable('outbox').dropColumn('version').execute();
  await db.schema.alterTable('outbox').dropColumn('target_key').execute();
}
