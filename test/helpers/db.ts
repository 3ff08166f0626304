import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import { Kysely } from 'kysely';
import pg from 'pg';
import { type DatabaseHandle, openDatabase } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrate.js';
import { PGliteDialect } from '../../src/db/pglite-dialect.js';
import type { Database } from '../../src/db/schema.js';

/**
 * The suite runs against whichever database the environment names, exactly as CI runs
 * `npm test` twice: with DATABASE_URL (real PostgreSQL; each call gets a fresh database of
 * its own) and without (embedded PGlite in memory).
 */
export const TEST_PG_URL = process.env.DATABASE_URL || undefined;
export const dialectName = TEST_PG_URL ? 'postgres' : 'pglite';

export interface TestDb extends DatabaseHandle {
  /** Connection string of the fresh database (PostgreSQL only). */
  url: string | null;
}

async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: TEST_PG_URL });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

// Starting PGlite costs seconds; cloning a migrated instance costs about one. One template per worker.
let template: Promise<PGlite> | undefined;
function migratedTemplate(): Promise<PGlite> {
  template ??= (async () => {
    const pglite = await PGlite.create();
    await migrateToLatest(new Kysely<Database>({ dialect: new PGliteDialect(pglite) }));
    return pglite;
  })();
  return template;
}

/** A fresh, empty database; `migrate: false` leaves it without the schema. */
export async function createTestDb(opts: { migrate?: boolean } = {}): Promise<TestDb> {
  const migrate = opts.migrate !== false;
  if (!TEST_PG_URL) {
    if (!migrate) return { ...(await openDatabase({ kind: 'pglite-memory' })), url: null };
    const pglite = (await (await migratedTemplate()).clone()) as PGlite;
    const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
    return {
      db,
      kind: 'pglite',
      description: 'embedded PGlite (test clone)',
      url: null,
      close: () => db.destroy(),
    };
  }
  const name = `claw_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(`create database ${name}`);
  const u = new URL(TEST_PG_URL);
  u.pathname = `/${name}`;
  const handle = await openDatabase({ kind: 'postgres', url: u.toString() });
  if (migrate) await migrateToLatest(handle.db);
  return {
    ...handle,
    url: u.toString(),
    close: async () => {
      await handle.close();
      await adminQuery(`drop database if exists ${name} with (force)`);
    },
  };
}
