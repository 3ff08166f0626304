import { type Migration, type MigrationProvider, type MigrationResult, Migrator } from 'kysely';
import { migrations } from '../../migrations/index.js';
import { AppError } from '../errors.js';
import type { Db } from './database.js';

/** The migrations shipped in `migrations/`, imported statically so `src/` and `dist/` behave alike. */
export const shippedMigrations: MigrationProvider = {
  getMigrations: async (): Promise<Record<string, Migration>> => migrations,
};

/**
 * Brings the schema to the latest migration. kysely's Postgres adapter holds an advisory
 * lock for the whole run, so two instances starting together migrate once; on Postgres the
 * run is one transaction, so a failing migration leaves nothing half-applied.
 */
export async function migrateToLatest(
  db: Db,
  provider: MigrationProvider = shippedMigrations,
): Promise<MigrationResult[]> {
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
