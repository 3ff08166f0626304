import { type Kysely, sql } from 'kysely';

// Frozen in time: uses Kysely<any> and never imports src/.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on the current schema types.
export async function up(db: Kysely<any>): Promise<void> {
  // A job requested with the `/claw` slash command: a person in a channel, with no post of theirs
  // to answer; its plan post starts its thread, bound on delivery (root_post_id set then).
  await sql`alter table jobs drop constraint jobs_origin_check`.execute(db);
  await sql`alter table jobs add constraint jobs_origin_check
    check (origin in ('mattermost','api','command'))`.execute(db);
  await sql`alter table jobs drop constraint jobs_origin_binding`.execute(db);
  await sql`alter table jobs add constraint jobs_origin_binding check (
    (origin = 'mattermost' and team_id is not null and channel_id is not null and root_post_id is not null)
    or (origin = 'api' and submitted_by is not null)
    or (origin = 'command' and team_id is not null and channel_id is not null and submitted_by is null))`.execute(
    db,
  );

  // Every slash command request handled, by Mattermost's trigger id: written in the transaction of
  // its effect, so a replayed request changes nothing; the rows of the last minute are each
  // user's answer budget.
  await db.schema
    .createTable('command_requests')
    .addColumn('trigger_id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('channel_id', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('job_id', 'bigint', (c) => c.references('jobs.id'))
    .addColumn('handled_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('command_requests_user_idx')
    .on('command_requests')
    .columns(['user_id', 'handled_at'])
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('command_requests').execute();
  await sql`alter table jobs drop constraint jobs_origin_binding`.execute(db);
  await sql`alter table jobs add constraint jobs_origin_binding check (
    (origin = 'mattermost' and team_id is not null and channel_id is not null and root_post_id is not null)
    or (origin = 'api' and submitted_by is not null))`.execute(db);
  await sql`alter table jobs drop constraint jobs_origin_check`.execute(db);
  await sql`alter table jobs add constraint jobs_origin_check check (origin in ('mattermost','api'))`.execute(
    db,
  );
}
