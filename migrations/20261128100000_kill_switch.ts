import { type Kysely, sql } from 'kysely';

// Frozen in time: uses Kysely<any> and never imports src/.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on the current schema types.
export async function up(db: Kysely<any>): Promise<void> {
  // The kill switch: one row, read under a share lock by every deciding transaction and
  // changed under an update lock, so a pause and a decision can never interleave, on any replica.
  await db.schema
    .createTable('kill_switch')
    .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
    .addColumn('paused', 'boolean', (c) => c.notNull())
    .addColumn('actor', 'text')
    .addColumn('reason', 'text')
    .addColumn('changed_at', 'timestamptz')
    .execute();
  await sql`insert into kill_switch (id, paused) values (1, false)`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('kill_switch').execute();
}
