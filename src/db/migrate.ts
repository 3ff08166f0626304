import { type Migration, type MigrationProvider, type MigrationResult, Migrator, sql } from 'kysely';
import { migrations } from '../../migrations/index.js';
import { AppError } from '../errors.js';
import type { Db } from './database.js';

/** The migrations shipped in `migrations/`, imported statically so `src/` and `dist/` behave alike. */
export const shippedMigrations: MigrationProvider = {
  getMigrations: async (): Promise<Record<string, Migration>> => migrations,
};

/** What the database records as applied, sorted; null when it has no record yet. */
async function recordedMigrations(db: Db): Promise<string[] | null> {
  try {
    const { rows } = await sql<{ name: string }>`select name from kysely_migration`.execute(db);
    // Sorted here, as kysely sorts them: the database's collation might order names otherwise.
    return rows.map((r) => r.name).sort();
  } catch {
    // No table yet (a new database), or anything else: the migrator's own run decides and reports.
    return null;
  }
}

/**
 * Brings the schema to the latest migration. kysely's Postgres adapter holds an advisory
 * lock for the whole run, so two instances starting together migrate once; on Postgres the
 * run is one transaction, so a failing migration leaves nothing half-applied.
 *
 * When the database already records exactly the shipped migrations (every start but the first
 * after an upgrade), one query says so and the migrator is not run: it would take the lock and
 * inspect the catalog only to find nothing to do. Anything else (a migration pending, one the
 * code does not know, no record) goes through the migrator, under its lock. Applied migrations
 * are recorded in the run's own transaction, so a run in progress elsewhere is not mistaken
 * for a finished one: its records are not visible until it commits.
 */
export async function migrateToLatest(
  db: Db,
  provider: MigrationProvider = shippedMigrations,
): Promise<MigrationResult[]> {
  const shipped = Object.keys(await provider.getMigrations()).sort();
  const recorded = await recordedMigrations(db);
  if (recorded && recorded.length === shipped.length && recorded.every((name, i) => name === shipped[i]))
    return [];
  const migrator = new Migrator({ db, provider });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error) {
    const failed = results.find((r) => r.status === 'Error')?.migrationName ?? '(before any migration ran)';
    // SQL errors name objects and types, never credentials: show the operator what broke.
    const why = error instanceof Error ? error.message : String(error);
    throw new AppError('ERR_MIGRATION_FAILED', `migration ${failed} failed: ${why}`, { cause: error });
  }
  return results;
}
