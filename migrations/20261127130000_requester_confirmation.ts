import { type Kysely, sql } from 'kysely';

// Frozen in time: uses Kysely<any> and never imports src/.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on the current schema types.
export async function up(db: Kysely<any>): Promise<void> {
  // When the requester an agent named confirmed the job in its thread (CONFIRM job:<n>);
  // until then approvals of an agent-submitted job do not count.
  await db.schema.alterTable('jobs').addColumn('requester_confirmed_at', 'timestamptz').execute();
  await sql`alter table decisions drop constraint decisions_kind_check`.execute(db);
  await sql`alter table decisions add constraint decisions_kind_check
    check (kind in ('approve','deny','revoke','cancel','confirm'))`.execute(db);
  // GET /v1/plans/:plan_hash_b64u (the link a plan post carries when arguments are too long).
  await db.schema.createIndex('jobs_plan_hash_idx').on('jobs').column('plan_hash_b64u').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('jobs_plan_hash_idx').execute();
  await sql`delete from decisions where kind = 'confirm'`.execute(db);
  await sql`alter table decisions drop constraint decisions_kind_check`.execute(db);
  await sql`alter table decisions add constraint decisions_kind_check
    check (kind in ('approve','deny','revoke','cancel'))`.execute(db);
  await db.schema.alterTable('jobs').dropColumn('requester_confirmed_at').execute();
}
