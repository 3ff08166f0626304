import { type Migration, type MigrationProvider, sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { type Db, openDatabase } from '../../src/db/database.js';
import { migrateToLatest, shippedMigrations } from '../../src/db/migrate.js';
import { createTestDb, dialectName, type TestDb } from '../helpers/db.js';

/**
 * `migrateToLatest` answers "nothing to do" from one query when the database records exactly
 * the shipped migrations; anything else still goes through kysely's migrator and its lock.
 */

const open: TestDb[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});
async function migrated() {
  const d = await createTestDb();
  open.push(d);
  return d;
}

/** The shipped migrations plus `extra` ones, as a newer release would ship them. */
function withExtra(extra: Record<string, Migration>): MigrationProvider {
  return { getMigrations: async () => ({ ...(await shippedMigrations.getMigrations()), ...extra }) };
}

const createTable = (name: string): Migration => ({
  up: async (db) => void (await sql`create table ${sql.table(name)} (id int)`.execute(db)),
});

const recorded = async (db: Db) =>
  (await sql<{ name: string }>`select name from kysely_migration`.execute(db)).rows.map((r) => r.name).sort();

describe(`migrations on an up-to-date database (${dialectName})`, () => {
  it('nothing to do: no result and no change to the record', async () => {
    const d = await migrated();
    const before = await recorded(d.db);
    expect(before).toEqual(Object.keys(await shippedMigrations.getMigrations()).sort());
    expect(await migrateToLatest(d.db)).toEqual([]);
    expect(await recorded(d.db)).toEqual(before);
  });

  it('a migration added by an upgrade is applied, once, by two instances starting together', async () => {
    const d = await migrated();
    const upgrade = withExtra({ '29990101000000_upgrade': createTable('t_upgrade') });
    // On PostgreSQL the second runner uses its own connection pool, like a second replica.
    const other = d.url ? await openDatabase({ kind: 'postgres', url: d.url }) : null;
    try {
      const [a, b] = await Promise.all([
        migrateToLatest(d.db, upgrade),
        migrateToLatest((other ?? d).db, upgrade),
      ]);
      expect([...a, ...b].map((r) => `${r.status} ${r.migrationName}`)).toEqual([
        'Success 29990101000000_upgrade',
      ]);
    } finally {
      await other?.close();
    }
    expect(await recorded(d.db)).toContain('29990101000000_upgrade');
    expect(await migrateToLatest(d.db, upgrade)).toEqual([]);
  });

  it('a database migrated by a newer release is refused, not taken as up to date', async () => {
    const d = await migrated();
    await migrateToLatest(d.db, withExtra({ '29990101000000_newer': createTable('t_newer') }));
    // As many migrations as the database records, but not the same ones.
    const other = withExtra({ '29990101000001_other': createTable('t_other') });
    await expect(migrateToLatest(d.db, other)).rejects.toMatchObject({ code: 'ERR_MIGRATION_FAILED' });
    await expect(migrateToLatest(d.db)).rejects.toMatchObject({ code: 'ERR_MIGRATION_FAILED' });
  });

  it('a migration missing from the record in the middle is not hidden by the newest being there', async () => {
    const d = await migrated();
    const shipped = Object.keys(await shippedMigrations.getMigrations()).sort();
    const middle = shipped[Math.floor(shipped.length / 2)]!;
    // kysely_migration is kysely's own bookkeeping, not an append-only table of ours.
    await sql`delete from kysely_migration where name = ${middle}`.execute(d.db);
    // The migrator sees the gap and refuses (ordered migrations), as it always has.
    await expect(migrateToLatest(d.db)).rejects.toMatchObject({ code: 'ERR_MIGRATION_FAILED' });
  });
});
