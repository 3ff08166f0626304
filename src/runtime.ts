import type { Logger } from 'pino';
import { type Clock, systemClock } from './clock.js';
import type { Config } from './config.js';
import { type DatabaseHandle, openDatabase } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import { registerActiveKey } from './tokens/key-ring.js';
import { loadSigningKey, type SigningKey } from './tokens/signing-key.js';

/** The pieces every command that touches state needs, opened in a fixed order. */
export interface Runtime {
  config: Config;
  log: Logger;
  clock: Clock;
  database: DatabaseHandle;
  key: SigningKey;
  keyCreated: boolean;
  close(): Promise<void>;
}

export function databaseTarget(config: Config) {
  return config.databaseUrl
    ? ({ kind: 'postgres', url: config.databaseUrl } as const)
    : ({ kind: 'pglite', dataDir: config.dataDir } as const);
}

/**
 * Opens the database (migrating it), loads the signing key and records its public half.
 * Anything that cannot be verified stops here: no half-started process.
 */
export async function openRuntime(config: Config, log: Logger, clock: Clock = systemClock): Promise<Runtime> {
  const { key, created } = await loadSigningKey(config.signingKey);
  const database = await openDatabase(databaseTarget(config));
  try {
    const applied = await migrateToLatest(database.db);
    for (const m of applied) log.info({ migration: m.migrationName, status: m.status }, 'migration applied');
    await registerActiveKey(database.db, key, clock);
  } catch (err) {
    await database.close();
    throw err;
  }
  return { config, log, clock, database, key, keyCreated: created, close: () => database.close() };
}
