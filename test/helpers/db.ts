import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely } from 'kysely';
import pg from 'pg';
import { type DatabaseHandle, openDatabase } from '../../src/db/database.js';
import { migrateToLatest, shippedMigrations } from '../../src/db/migrate.js';
import { PGliteDialect } from '../../src/db/pglite-dialect.js';
import type { Database } from '../../src/db/schema.js';

/**
 * The suite runs on embedded PGlite unless TEST_DATABASE_URL names a PostgreSQL server to use
 * (each test database is then a database of its own there, created and dropped by the suite).
 * DATABASE_URL is the operator's database: the suite never reads it (test/setup/env.ts removes it).
 */
export const TEST_PG_URL = process.env.TEST_DATABASE_URL || undefined;
export const dialectName = TEST_PG_URL ? 'postgres' : 'pglite';

export interface TestDb extends DatabaseHandle {
  /** Connection string of the fresh database (PostgreSQL only). */
  url: string | null;
}

/** A fresh, empty database; `migrate: false` leaves it without the schema. */
export async function createTestDb(opts: { migrate?: boolean } = {}): Promise<TestDb> {
  const migrate = opts.migrate !== false;
  if (!TEST_PG_URL) {
    if (!migrate) {
      const pglite = await PGlite.create({ loadDataDir: await templateDump('initdb') });
      const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
      return {
        db,
        kind: 'pglite',
        description: 'embedded PGlite (test instance)',
        url: null,
        close: () => db.destroy(),
      };
    }
    return leasePglite();
  }
  return createPgDb(TEST_PG_URL, migrate);
}

const ROOT = new URL('../../', import.meta.url).pathname;

/**
 * What the migrated template depends on: the migrations, the migrator and the driver versions.
 * A template built from anything else has another name, so a stale one is never used.
 */
let keyMemo: Promise<string> | undefined;
function templateKey(): Promise<string> {
  keyMemo ??= (async () => {
    const h = createHash('sha256');
    const dir = path.join(ROOT, 'migrations');
    const files = [
      ...(await fs.readdir(dir)).sort().map((f) => path.join(dir, f)),
      path.join(ROOT, 'src/db/migrate.ts'),
      path.join(ROOT, 'node_modules/@electric-sql/pglite/package.json'),
      path.join(ROOT, 'node_modules/kysely/package.json'),
    ];
    for (const f of files)
      h.update(f)
        .update('\0')
        .update(await fs.readFile(f))
        .update('\0');
    return h.digest('hex').slice(0, 16);
  })();
  return keyMemo;
}

// --- PGlite: migrated instances, reset and reused. ---
//
// Starting a PGlite instance costs one to three seconds of CPU (initdb and the migrations cost
// several more), a reset costs tens of milliseconds. So each worker keeps the instances its tests
// closed and resets them for the next test: session state (DISCARD ALL), every row (DELETE),
// then the rows and sequence positions the migrations left. An instance whose schema a test
// changed (a dropped or disabled trigger, a table of its own) is not reused: it is closed.
// New instances load the migrated template, built once per set of migrations and kept under
// node_modules/.cache.

interface Baseline {
  /** The schema as the migrations left it (catalog digest). */
  fingerprint: string;
  /** Restores the rows and sequences the migrations left, after every table is emptied. */
  restore: string;
}

const dumpMemo = new Map<string, Promise<Blob>>();
let baselineMemo: Promise<Baseline> | undefined;
const idle: PGlite[] = [];
const MAX_IDLE = 3;
let started = 0;

/** PGlite instances this worker has started (tests of the pool check it reuses them). */
export function pgliteInstancesStarted(): number {
  return started;
}

const instanceOf = new WeakMap<TestDb, PGlite>();

/** Whether two test databases are the same PGlite instance (tests of the pool check it). */
export function samePgliteInstance(a: TestDb, b: TestDb): boolean {
  const instance = instanceOf.get(a);
  return instance !== undefined && instance === instanceOf.get(b);
}

type Template = 'initdb' | 'migrated';

async function buildTemplate(kind: Template): Promise<Blob> {
  const pglite = await PGlite.create();
  try {
    if (kind === 'migrated')
      await migrateToLatest(new Kysely<Database>({ dialect: new PGliteDialect(pglite) }));
    return await pglite.dumpDataDir('none');
  } finally {
    await pglite.close();
  }
}

/** A data directory as PGlite's initdb leaves it ('initdb'), or after the migrations too, as a tar. */
function templateDump(kind: Template): Promise<Blob> {
  const memo = dumpMemo.get(kind);
  if (memo) return memo;
  const made = (async () => {
    const dir = path.join(ROOT, 'node_modules/.cache/claw-approvals-tests');
    const file = path.join(dir, `pglite-${kind}-${await templateKey()}.tar`);
    try {
      return new Blob([await fs.readFile(file)]);
    } catch {
      const dump = await buildTemplate(kind);
      // Written under a name of its own, then renamed: another worker never reads half a file.
      await fs.mkdir(dir, { recursive: true });
      const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
      await fs.writeFile(tmp, Buffer.from(await dump.arrayBuffer()));
      await fs.rename(tmp, file);
      return dump;
    }
  })().catch((err: unknown) => {
    dumpMemo.delete(kind);
    throw err;
  });
  dumpMemo.set(kind, made);
  return made;
}

/**
 * Fills `dir` (absent or empty) with a data directory as PGlite's initdb leaves it, with no
 * migrations applied: what a first start finds after PGlite created its files, without the
 * seconds initdb takes. The tar holds plain files and directories only.
 */
export async function writePgliteDataDir(dir: string): Promise<void> {
  const tar = Buffer.from(await (await templateDump('initdb')).arrayBuffer());
  const field = (off: number, len: number) => tar.toString('utf8', off, off + len).replace(/\0.*$/s, '');
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  for (let off = 0; off + 512 <= tar.length;) {
    const name = field(off, 100);
    if (!name) break;
    const size = parseInt(field(off + 124, 12).trim() || '0', 8);
    const mode = parseInt(field(off + 100, 8).trim() || '600', 8);
    const type = field(off + 156, 1);
    const target = path.join(dir, name);
    if (!target.startsWith(dir + path.sep)) throw new Error(`tar entry outside the directory: ${name}`);
    if (type === '5') await fs.mkdir(target, { recursive: true, mode });
    else if (type === '0' || type === '')
      await fs.writeFile(target, tar.subarray(off + 512, off + 512 + size), { mode });
    else throw new Error(`unexpected tar entry type ${type} for ${name}`);
    off += 512 + Math.ceil(size / 512) * 512;
  }
}

const SYSTEM_SCHEMAS = `('pg_catalog', 'information_schema', 'pg_toast')`;
/** Objects created after initdb (the migrations' and any test's): PostgreSQL's FirstNormalObjectId. */
const USER_OID = 16384;

/**
 * A digest of everything besides rows and session state that a test could change: relations,
 * columns and defaults, triggers (and whether they fire), constraints, functions, roles, schemas,
 * extensions, settings. Every instance loads the same template, so object ids compare as well as
 * definitions do, and cost far less to read.
 */
const FINGERPRINT = `
select md5(string_agg(line, ',' order by line)) as fp from (
  select format('r %s %s %s %s %s %s %s', oid, relname, relnamespace, relkind, relrowsecurity, relpersistence, relfilenode > 0)
    as line from pg_class where oid >= ${USER_OID}
  union all select format('a %s %s %s %s %s %s %s %s', attrelid, attnum, attname, atttypid, atttypmod, attnotnull,
      attgenerated, attidentity) from pg_attribute where attrelid >= ${USER_OID} and not attisdropped
  union all select format('d %s %s %s', adrelid, adnum, md5(adbin::text)) from pg_attrdef
  union all select format('t %s %s %s %s %s %s %s', oid, tgrelid, tgname, tgenabled, tgfoid, tgtype, md5(coalesce(tgqual::text, '')))
    from pg_trigger
  union all select format('k %s %s %s %s %s', oid, conname, convalidated, condeferrable, condeferred)
    from pg_constraint where oid >= ${USER_OID}
  union all select format('f %s %s %s', oid, proname, md5(coalesce(prosrc, ''))) from pg_proc where oid >= ${USER_OID}
  union all select format('u %s %s %s %s', oid, rolname, rolsuper, rolcanlogin) from pg_authid
  union all select format('n %s %s', oid, nspname) from pg_namespace where nspname not like 'pg\\_%temp\\_%'
  union all select format('e %s %s', extname, extversion) from pg_extension
  union all select format('s %s %s', setdatabase, setconfig) from pg_db_role_setting
  union all select format('p %s', oid) from pg_policy
  union all select format('o %s', oid) from pg_event_trigger
  union all select format('x %s', gid) from pg_prepared_xacts
) lines`;

async function fingerprint(pglite: PGlite): Promise<string> {
  return (await pglite.query<{ fp: string }>(FINGERPRINT)).rows[0]!.fp;
}

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** The user tables, quoted, except kysely's own (migration records and their lock row). */
async function userTables(pglite: PGlite): Promise<string[]> {
  const { rows } = await pglite.query<{ t: string }>(`
    select format('%I.%I', schemaname, tablename) as t from pg_tables
    where schemaname not in ${SYSTEM_SCHEMAS} and tablename not like 'kysely\\_%' order by 1`);
  return rows.map((r) => r.t);
}

async function takeBaseline(pglite: PGlite): Promise<Baseline> {
  const tables = await userTables(pglite);
  // Triggers (the append-only refusals, foreign keys) do not fire in replica mode. DELETE: on
  // PGlite's small tables it is several times faster than TRUNCATE, which makes new files.
  const parts: string[] = [`set local session_replication_role = replica`];
  for (const table of tables) parts.push(`delete from ${table}`);
  for (const table of tables) {
    const { rows } = await pglite.query<{ rows: string | null; cols: string | null }>(
      `select (select json_agg(t)::text from ${table} t) as rows,
              (select string_agg(format('%I', attname), ', ' order by attnum) from pg_attribute
                where attrelid = $1::regclass and attnum > 0 and not attisdropped and attgenerated = '') as cols`,
      [table],
    );
    const [{ rows: json, cols }] = rows as [{ rows: string | null; cols: string | null }];
    if (json === null) continue;
    parts.push(
      `insert into ${table} (${cols}) overriding system value select ${cols} from json_populate_recordset(null::${table}, ${quote(json)})`,
    );
  }
  const { rows: seqs } = await pglite.query<{ s: string; last: string | null; start: string }>(`
    select format('%I.%I', schemaname, sequencename) as s, last_value::text as last, start_value::text as start
    from pg_sequences where schemaname not in ${SYSTEM_SCHEMAS}`);
  for (const q of seqs) {
    parts.push(
      q.last === null
        ? `select setval(${quote(q.s)}, ${q.start}, false)`
        : `select setval(${quote(q.s)}, ${q.last}, true)`,
    );
  }
  return { fingerprint: await fingerprint(pglite), restore: `begin; ${parts.join(';\n')}; commit;` };
}

async function startPglite(): Promise<PGlite> {
  const pglite = await PGlite.create({ loadDataDir: await templateDump('migrated') });
  started++;
  baselineMemo ??= (async () => {
    // A template that does not record exactly the shipped migrations is refused outright.
    const shipped = Object.keys(await shippedMigrations.getMigrations()).sort();
    const { rows } = await pglite.query<{ name: string }>('select name from kysely_migration order by name');
    const recorded = rows.map((r) => r.name).sort();
    if (recorded.join() !== shipped.join())
      throw new Error(`the PGlite test template records other migrations: ${recorded.join(', ')}`);
    return takeBaseline(pglite);
  })();
  await baselineMemo;
  return pglite;
}

/** Resets an instance a test closed; false when it cannot be trusted to be as migrated (then it is closed). */
async function reset(pglite: PGlite): Promise<boolean> {
  const baseline = await baselineMemo!;
  try {
    // A transaction the test left open; outside one, ROLLBACK only warns.
    await pglite.exec('rollback');
    // Settings, prepared statements, temporary tables, advisory locks, LISTEN, cursors.
    await pglite.exec('discard all');
    await pglite.exec(baseline.restore);
    if ((await fingerprint(pglite)) === baseline.fingerprint) return true;
  } catch {
    // A reset that fails leaves an instance nobody should use.
  }
  await pglite.close().catch(() => {});
  return false;
}

/**
 * One test's view of a pooled instance: every call goes through it, and once the handle is
 * closed it refuses them, so a test's leftover work (a timer, a background loop) can never
 * reach the next test's database.
 */
function leaseOf(pglite: PGlite): { view: PGlite; end(): void } {
  let live = true;
  const view = new Proxy(pglite, {
    get(target, prop) {
      // The dialect closes its PGlite when kysely is destroyed: here that ends the lease only.
      if (prop === 'close')
        return async () => {
          live = false;
        };
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (!live) throw new Error('this test database was closed (its instance went back to the pool)');
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    view,
    end: () => {
      live = false;
    },
  };
}

async function leasePglite(): Promise<TestDb> {
  const pglite = idle.pop() ?? (await startPglite());
  const lease = leaseOf(pglite);
  const db = new Kysely<Database>({ dialect: new PGliteDialect(lease.view) });
  let closing: Promise<void> | undefined;
  const testDb: TestDb = {
    db,
    kind: 'pglite',
    description: 'embedded PGlite (test instance)',
    url: null,
    close: () =>
      (closing ??= (async () => {
        try {
          await db.destroy();
        } finally {
          lease.end();
        }
        if (!(await reset(pglite))) return;
        // A worker runs file after file: keep what one test needs at a time, not every instance
        // a file once held at the same time (each holds tens of megabytes). The one just reset
        // is kept, and handed out next.
        idle.push(pglite);
        if (idle.length > MAX_IDLE) await idle.shift()!.close();
      })()),
  };
  instanceOf.set(testDb, pglite);
  return testDb;
}

// --- PostgreSQL: one migrated template database per set of migrations; each test database a copy. ---

async function withAdmin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function databaseUrl(serverUrl: string, name: string): string {
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

// Any constant: it only keeps two workers from building the same template at once.
const TEMPLATE_LOCK = 7_301_113;
let pgTemplateMemo: Promise<string> | undefined;

/**
 * The migrated template's name, created when missing. It is marked a template only once fully
 * migrated, so a half-built one (a run killed while migrating) is dropped and built again.
 */
function pgTemplate(serverUrl: string): Promise<string> {
  pgTemplateMemo ??= (async () => {
    const name = `claw_test_template_${await templateKey()}`;
    await withAdmin(serverUrl, async (client) => {
      await client.query('select pg_advisory_lock($1)', [TEMPLATE_LOCK]);
      try {
        const { rows } = await client.query<{ ready: boolean }>(
          'select datistemplate as ready from pg_database where datname = $1',
          [name],
        );
        if (rows[0]?.ready) return;
        if (rows.length) await client.query(`drop database ${name} with (force)`);
        await client.query(`create database ${name}`);
        const handle = await openDatabase({ kind: 'postgres', url: databaseUrl(serverUrl, name) });
        try {
          await migrateToLatest(handle.db);
        } finally {
          await handle.close();
        }
        // No connections: CREATE DATABASE … TEMPLATE needs the template to have none.
        await client.query(`alter database ${name} with is_template true allow_connections false`);
      } finally {
        await client.query('select pg_advisory_unlock($1)', [TEMPLATE_LOCK]);
      }
    });
    return name;
  })().catch((err: unknown) => {
    pgTemplateMemo = undefined;
    throw err;
  });
  return pgTemplateMemo;
}

async function createPgDb(serverUrl: string, migrate: boolean): Promise<TestDb> {
  const name = `claw_test_${randomBytes(6).toString('hex')}`;
  const template = migrate ? await pgTemplate(serverUrl) : null;
  await withAdmin(serverUrl, (client) =>
    client.query(`create database ${name}${template ? ` template ${template}` : ''}`),
  );
  const url = databaseUrl(serverUrl, name);
  const handle = await openDatabase({ kind: 'postgres', url });
  return {
    ...handle,
    url,
    close: async () => {
      await handle.close();
      await withAdmin(serverUrl, (client) => client.query(`drop database if exists ${name} with (force)`));
    },
  };
}
