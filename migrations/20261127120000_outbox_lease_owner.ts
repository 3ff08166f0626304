import type { Kysely } from 'kysely';

// Frozen in time: uses Kysely<any> and never imports src/.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on the current schema types.
export async function up(db: Kysely<any>): Promise<void> {
  // Who holds an outbox row's lease ("<pid> <host> <instance>"): a restarted process recognises
  // leases its dead predecessor left and resumes delivery at once instead of waiting them out.
  await db.schema.alterTable('outbox').addColumn('lease_owner', 'text').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('outbox').dropColumn('lease_owner').execute();
}
