import { type Kysely, sql } from 'kysely';

// Frozen in time: uses Kysely<any> and never imports src/.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- migrations must not depend on the current schema types.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create function claw_refuse_change() returns trigger language plpgsql as $$
    begin
      raise exception '% is append-only: % refused', tg_table_name, tg_op using errcode = 'P0001';
    end $$`.execute(db);

  // One row per (version, signer): a version re-signed after a key change gets a new row,
  // never an edited one.
  await db.schema
    .createTable('wpc_registry')
    .addColumn('policy_hash_b64u', 'text', (c) =>
      c.notNull().check(sql`policy_hash_b64u ~ '^[A-Za-z0-9_-]{43}$'`),
    )
    .addColumn('policy_name', 'text', (c) => c.notNull())
    .addColumn('canonical_payload', 'text', (c) => c.notNull())
    .addColumn('signature_b64u', 'text', (c) => c.notNull())
    .addColumn('signer_did', 'text', (c) => c.notNull())
    .addColumn('issued_at', 'timestamptz', (c) => c.notNull())
    .addColumn('source', 'text')
    .addColumn('registered_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('wpc_registry_pk', ['policy_hash_b64u', 'signer_did'])
    .execute();
  await db.schema
    .createIndex('wpc_registry_name_idx')
    .on('wpc_registry')
    .columns(['policy_name', 'registered_at'])
    .execute();
  await sql`create trigger wpc_registry_immutable before update or delete on wpc_registry
    for each row execute function claw_refuse_change()`.execute(db);
  await sql`create trigger wpc_registry_no_truncate before truncate on wpc_registry
    for each statement execute function claw_refuse_change()`.execute(db);

  await db.schema
    .createTable('policy_pins')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('policy_name', 'text', (c) => c.notNull())
    .addColumn('policy_hash_b64u', 'text')
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    // Signed hash chain per policy name: each pin commits to the one before it ('genesis' for
    // the first), so pins cannot be forged, replayed or reordered by a database writer.
    .addColumn('prev_pin_hash_b64u', 'text', (c) => c.notNull())
    .addColumn('pin_hash_b64u', 'text', (c) => c.notNull().unique())
    .addColumn('signature_b64u', 'text', (c) => c.notNull())
    .addColumn('signer_did', 'text', (c) => c.notNull())
    .addUniqueConstraint('policy_pins_chain_unique', ['policy_name', 'prev_pin_hash_b64u'])
    .execute();
  await db.schema
    .createIndex('policy_pins_name_idx')
    .on('policy_pins')
    .columns(['policy_name', 'id'])
    .execute();
  await sql`create trigger policy_pins_append_only before update or delete on policy_pins
    for each row execute function claw_refuse_change()`.execute(db);
  await sql`create trigger policy_pins_no_truncate before truncate on policy_pins
    for each statement execute function claw_refuse_change()`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see up().
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('policy_pins').execute();
  await db.schema.dropTable('wpc_registry').execute();
  await sql`drop function claw_refuse_change()`.execute(db);
}
