import fs from 'node:fs/promises';
import path from 'node:path';
import { type Migration, type MigrationProvider, sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { lockDataDir } from '../../src/db/data-dir-lock.js';
import { type Db, openDatabase, redactDatabaseUrl } from '../../src/db/database.js';
import { migrateToLatest, shippedMigrations } from '../../src/db/migrate.js';
import { createTestDb, dialectName, type TestDb } from '../helpers/db.js';
import { tempDir } from '../helpers/fs.js';

const open: TestDb[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});
async function fresh(opts?: { migrate?: boolean }) {
  const d = await createTestDb(opts);
  open.push(d);
  return d;
}

const tables = async (db: Db) =>
  (
    await sql<{
      t: string;
    }>`select table_name as t from information_schema.tables where table_schema = 'public' order by 1`.execute(
      db,
    )
  ).rows.map((r) => r.t);

describe(`migrations (${dialectName})`, () => {
  it('creates the schema and is idempotent', async () => {
    const d = await fresh({ migrate: false });
    const first = await migrateToLatest(d.db);
    expect(first.map((r) => r.status)).toEqual(first.map(() => 'Success'));
    expect(first.length).toBeGreaterThan(0);
    expect(await tables(d.db)).toEqual(
      expect.arrayContaining(['policy_pins', 'signing_keys', 'wpc_registry']),
    );
    expect(await migrateToLatest(d.db)).toEqual([]);
  });

  it('two migrators started together apply each migration exactly once', async () => {
    const d = await fresh({ migrate: false });
    // On PostgreSQL the second runner uses its own connection pool, like a second instance.
    const other = d.url ? await openDatabase({ kind: 'postgres', url: d.url }) : null;
    try {
      const [a, b] = await Promise.all([migrateToLatest(d.db), migrateToLatest((other ?? d).db)]);
      const applied = [...a, ...b].filter((r) => r.status === 'Success').map((r) => r.migrationName);
      expect(applied.sort()).toEqual(Object.keys(await shippedMigrations.getMigrations()).sort());
      const rows = await sql<{ n: number }>`select count(*)::int as n from kysely_migration`.execute(d.db);
      expect(rows.rows[0]?.n).toBe(applied.length);
    } finally {
      await other?.close();
    }
  });

  it('a failing migration reports ERR_MIGRATION_FAILED and leaves nothing half-applied', async () => {
    const d = await fresh({ migrate: false });
    const broken: MigrationProvider = {
      async getMigrations(): Promise<Record<string, Migration>> {
        return {
          '20990101000000_ok': { up: async (db) => void (await sql`create table t_ok (id int)`.execute(db)) },
          '20990101000001_broken': {
            up: async (db) => void (await sql`create table t_bad (id nosuchtype)`.execute(db)),
          },
        };
      },
    };
    await expect(migrateToLatest(d.db, broken)).rejects.toMatchObject({ code: 'ERR_MIGRATION_FAILED' });
    // The whole run is one transaction: the good migration before the bad one is rolled back too.
    expect(await tables(d.db)).not.toContain('t_ok');
  });
});

describe('migrations folder', () => {
  it('every migration file is listed in migrations/index.ts, in timestamp order', async () => {
    const dir = new URL('../../migrations/', import.meta.url).pathname;
    const files = (await fs.readdir(dir))
      .filter((f) => /^\d{14}_.+\.ts$/.test(f))
      .map((f) => f.replace(/\.ts$/, ''));
    const listed = Object.keys(await shippedMigrations.getMigrations());
    expect(listed).toEqual(files.sort());
  });
});

describe(`append-only tables (${dialectName})`, () => {
  it('refuses UPDATE and DELETE on the policy registry and the pin history', async () => {
    const d = await fresh();
    await d.db
      .insertInto('wpc_registry')
      .values({
        policy_hash_b64u: 'A'.repeat(43),
        policy_name: 'p',
        canonical_payload: '{}',
        signature_b64u: 'sig',
        signer_did: 'did:key:z',
        issued_at: new Date(),
        source: null,
      })
      .execute();
    await d.db
      .insertInto('policy_pins')
      .values({ policy_name: 'p', policy_hash_b64u: 'A'.repeat(43), actor: 'a', reason: 'r' })
      .execute();
    await expect(d.db.updateTable('wpc_registry').set({ policy_name: 'q' }).execute()).rejects.toThrow(
      /append-only/,
    );
    await expect(d.db.deleteFrom('wpc_registry').execute()).rejects.toThrow(/append-only/);
    await expect(d.db.updateTable('policy_pins').set({ reason: 'x' }).execute()).rejects.toThrow(
      /append-only/,
    );
    await expect(d.db.deleteFrom('policy_pins').execute()).rejects.toThrow(/append-only/);
  });

  it('rejects a malformed policy hash as a key', async () => {
    const d = await fresh();
    await expect(
      d.db
        .insertInto('wpc_registry')
        .values({
          policy_hash_b64u: 'short',
          policy_name: 'p',
          canonical_payload: '{}',
          signature_b64u: 's',
          signer_did: 'd',
          issued_at: new Date(),
          source: null,
        })
        .execute(),
    ).rejects.toThrow();
  });
});

describe('database targets', () => {
  it('a bad DATABASE_URL fails with ERR_DB_UNAVAILABLE and never shows the password', async () => {
    const url = 'postgres://claw:s3cret-pass@127.0.0.1:1/nowhere';
    const err = await openDatabase({ kind: 'postgres', url }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_DB_UNAVAILABLE' });
    expect(String((err as Error).message)).toContain('connection refused');
    expect(String((err as Error).message)).not.toContain('s3cret-pass');
    expect(redactDatabaseUrl(url)).toBe('postgres://claw:***@127.0.0.1:1/nowhere');
  });

  it('embedded PGlite keeps data across reopen and refuses a second opener', async () => {
    const dir = await tempDir();
    const first = await openDatabase({ kind: 'pglite', dataDir: dir });
    await migrateToLatest(first.db);
    await first.db
      .insertInto('policy_pins')
      .values({ policy_name: 'p', policy_hash_b64u: null, actor: 'a', reason: 'kept' })
      .execute();
    await expect(openDatabase({ kind: 'pglite', dataDir: dir })).rejects.toMatchObject({
      code: 'ERR_DB_LOCKED',
    });
    await first.close();
    const again = await openDatabase({ kind: 'pglite', dataDir: dir });
    try {
      const rows = await again.db.selectFrom('policy_pins').select('reason').execute();
      expect(rows).toEqual([{ reason: 'kept' }]);
    } finally {
      await again.close();
    }
  });

  it('takes over a lock left by a process that no longer exists', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'pglite.lock'), '2147483646');
    const lock = await lockDataDir(dir);
    expect(await fs.readFile(path.join(dir, 'pglite.lock'), 'utf8')).toBe(String(process.pid));
    await lock.release();
  });
});
