import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileMigrationProvider, type MigrationProvider, type MigrationResult, Migrator } from 'kysely';
import { AppError } from '../errors.js';
import type { Db } from './database.js';

/** `migrations/` beside `src/`, both in the source tree and in `dist/`. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations', import.meta.url));

export function fileMigrations(dir = MIGRATIONS_DIR): MigrationProvider {
  return new FileMigrationProvider({ fs, path, migrationFolder: dir });
}

/**
 * Brings the schema to the latest migration. kysely's Postgres adapter holds an advisory
 * lock for the whole run, so two instances starting together migrate once; on Postgres the
 * run is one transaction, so a failing migration leaves nothing half-applied.
 */
export async function migrateToLatest(db: Db, provider: MigrationProvider = fileMigrations()): Promise<MigrationResult[]> {
  const migrator = new Migrator({ db, provider });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error) {
    const failed = results.find((r) => r.status === 'Error')?.migrationName ?? '(before any migration ran)';
    throw new AppError('ERR_MIGRATION_FAILED', `migration ${failed} failed`, { cause: error });
  }
  return results;
}
