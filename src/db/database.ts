import path from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { AppError } from '../errors.js';
import { withCommitHooks } from './commit-hooks.js';
import { lockDataDir } from './data-dir-lock.js';
import { PGliteDialect } from './pglite-dialect.js';
import { createStatementCache, type QueryClient } from './statement-cache.js';
import { createPgliteDataDir, pgliteDataDirExists, pgliteOptions } from './pglite-settings.js';
import type { PoolStats } from './pool-stats.js';
import type { Database } from './schema.js';

export type Db = Kysely<Database>;

export type DatabaseTarget =
  | { kind: 'postgres'; url: string }
  | { kind: 'pglite'; dataDir: string }
  /** In-memory PGlite: tests and throwaway runs. */
  | { kind: 'pglite-memory' };

export interface DatabaseHandle {
  db: Db;
  kind: 'postgres' | 'pglite';
  /** Where the data lives, with any password removed. */
  description: string;
  /** The connection pool as it stands (metrics); absent where the handle was built without one. */
  pool?: () => PoolStats;
  close(): Promise<void>;
}

const INT8_OID = 20;

/** Query parameters of a connection string that carry secrets (`password`, `sslpassword`…). */
const SECRET_PARAM = /pass|secret|token/i;

/** A connection string safe to log: passwords in user info and in query parameters are replaced. */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    for (const name of new Set(u.searchParams.keys())) {
      if (SECRET_PARAM.test(name)) u.searchParams.set(name, '***');
    }
    return u.toString();
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}

/** Every secret a connection string carries, as written and as decoded. */
export function databaseUrlSecrets(url: string): string[] {
  const found = new Set<string>();
  const add = (v: string) => {
    if (v === '') return;
    found.add(v);
    try {
      found.add(decodeURIComponent(v));
    } catch {
      /* not percent-encoded */
    }
  };
  try {
    const u = new URL(url);
    add(u.password);
    for (const [name, value] of u.searchParams) if (SECRET_PARAM.test(name)) found.add(value);
    for (const m of u.search.matchAll(/[?&]([^=&]*)=([^&]*)/g)) if (SECRET_PARAM.test(m[1]!)) add(m[2]!);
  } catch {
    /* an unparseable URL is refused by config validation before it gets here */
  }
  return [...found];
}

/**
 * The error itself when nothing in it (message, stack, causes) repeats a secret; otherwise a
 * stand-in that keeps only its code, so it can be logged or wrapped as a cause.
 */
function withoutSecrets(err: unknown, secrets: readonly string[]): unknown {
  const text: string[] = [];
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    text.push(e.message, e.stack ?? '', JSON.stringify({ ...e }));
  }
  if (!(err instanceof Error)) text.push(String(err));
  if (!secrets.some((s) => text.some((t) => t.includes(s)))) return err;
  const code = (err as { code?: unknown }).code;
  return Object.assign(new Error('database error (details withheld: they repeated a password)'), {
    ...(typeof code === 'string' ? { code } : {}),
  });
}

/** Each driver is loaded only where it is used: a PGlite server never loads pg, nor the reverse. */
export async function openDatabase(target: DatabaseTarget): Promise<DatabaseHandle> {
  if (target.kind === 'postgres') {
    const { default: pg } = await import('pg');
    const pool = new pg.Pool({
      connectionString: target.url,
      max: 10,
      connectionTimeoutMillis: 5_000,
      // Timestamps feed signed hashes: make sure the driver always gets the ISO format it parses.
      options: '-c DateStyle=ISO,MDY -c TimeZone=UTC',
      // Ids and counters are int8 in the schema but stay far below 2^53: read them as numbers,
      // as PGlite does, so both dialects return the same shapes.
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === INT8_OID
            ? (v: string) => Number(v)
            : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    // A client losing its server must not crash the process: an idle one emits `error` on the
    // pool, a checked-out one on the client itself. The query in flight (if any) is rejected
    // and reports the failure; the pool discards the broken client.
    pool.on('error', () => {});
    // Statements this process repeats are planned once per connection (see statement-cache.ts).
    const statements = createStatementCache();
    pool.on('connect', (client) => {
      client.on('error', () => {});
      statements.attach(client as QueryClient);
    });
    const db = new Kysely<Database>({ dialect: withCommitHooks(new PostgresDialect({ pool })) });
    const max = pool.options.max ?? 10;
    const handle: DatabaseHandle = {
      db,
      kind: 'postgres',
      description: redactDatabaseUrl(target.url),
      pool: () => ({ max, total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
      close: () => db.destroy(),
    };
    await assertReachable(handle, databaseUrlSecrets(target.url));
    return handle;
  }
  const { PGlite } = await import('@electric-sql/pglite');
  if (target.kind === 'pglite-memory') {
    const dialect = new PGliteDialect(await PGlite.create(pgliteOptions(PGlite.defaultStartParams)));
    const db = new Kysely<Database>({ dialect });
    return {
      db,
      kind: 'pglite',
      description: 'embedded PGlite (in memory)',
      pool: () => dialect.poolStats(),
      close: () => db.destroy(),
    };
  }
  const lock = await lockDataDir(target.dataDir);
  try {
    const dir = path.join(target.dataDir, 'pglite');
    const options = pgliteOptions(PGlite.defaultStartParams);
    // A first start creates the database in a child process (see createPgliteDataDir).
    if (!pgliteDataDirExists(dir)) await createPgliteDataDir(dir, options.startParams ?? []);
    const dialect = new PGliteDialect(await PGlite.create(dir, options));
    const db = new Kysely<Database>({ dialect });
    return {
      db,
      kind: 'pglite',
      description: `embedded PGlite in ${dir}`,
      pool: () => dialect.poolStats(),
      close: async () => {
        await db.destroy();
        await lock.release();
      },
    };
  } catch (cause) {
    await lock.release();
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new AppError(
      'ERR_DB_UNAVAILABLE',
      `embedded database in ${target.dataDir} could not be opened: ${why}`,
      {
        cause,
      },
    );
  }
}

/** Throws ERR_DB_UNAVAILABLE (closing the handle) when a trivial query fails. */
async function assertReachable(handle: DatabaseHandle, secrets: readonly string[]): Promise<void> {
  try {
    await sql`select 1`.execute(handle.db);
  } catch (err) {
    await handle.close().catch(() => {});
    throw new AppError(
      'ERR_DB_UNAVAILABLE',
      `database ${handle.description} is unreachable: ${describeDbError(err)}`,
      { cause: withoutSecrets(err, secrets) },
    );
  }
}

/** A short reason for a driver error that never includes credentials. */
export function describeDbError(err: unknown): string {
  const e = err as { code?: string; message?: string };
  if (typeof e?.code === 'string' && /^[A-Z0-9_]+$/.test(e.code)) {
    // Node socket errors (ECONNREFUSED…) and SQLSTATEs are safe and precise.
    const known: Record<string, string> = {
      ECONNREFUSED: 'connection refused',
      ENOTFOUND: 'host not found',
      ETIMEDOUT: 'connection timed out',
      '28P01': 'authentication failed',
      '28000': 'authentication rejected',
      '3D000': 'database does not exist',
    };
    return known[e.code] ?? `error ${e.code}`;
  }
  if (typeof e?.message === 'string' && /timeout/i.test(e.message)) return 'connection timed out';
  return 'connection failed';
}

export async function isDatabaseReachable(
  db: Db,
  timeoutMs = 2_000,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      sql`select 1`.execute(db),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
      }),
    ]);
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: describeDbError(err) };
  } finally {
    clearTimeout(timer);
  }
}
