import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type Migration, type MigrationProvider, sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { lockDataDir } from '../../src/db/data-dir-lock.js';
import { loadConfig } from '../../src/config.js';
import { type Db, databaseUrlSecrets, openDatabase, redactDatabaseUrl } from '../../src/db/database.js';
import { migrateToLatest, shippedMigrations } from '../../src/db/migrate.js';
import { PGLITE_SETTINGS } from '../../src/db/pglite-settings.js';
import { createLogger } from '../../src/logger.js';
import { openRuntime } from '../../src/runtime.js';
import { startServer } from '../../src/server.js';
import { captureLogger } from '../helpers/log.js';
import { createTestDb, dialectName, type TestDb } from '../helpers/db.js';
import { tempDir } from '../helpers/fs.js';

const PIN = {
  actor: 'a',
  created_at: new Date(),
  prev_pin_hash_b64u: 'genesis',
  signature_b64u: 's',
  signer_did: 'd',
};

/** Creating an embedded database starts Postgres twice (a child creates it); other runs share the CPU. */
const PGLITE_ON_DISK_TIMEOUT = 120_000;

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
    expect(await tables(d.db)).toEqual(expect.arrayContaining(['policy_pins', 'wpc_registry']));
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
      .values({
        ...PIN,
        policy_name: 'p',
        policy_hash_b64u: 'A'.repeat(43),
        reason: 'r',
        pin_hash_b64u: 'h1',
      })
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

  it.each([
    ['a password in user info', 'postgres://claw:s3cret@db:5432/claw', 'postgres://claw:***@db:5432/claw'],
    ['?password=', 'postgres://claw@db/claw?password=s3cret', 'postgres://claw@db/claw?password=***'],
    [
      'sslpassword beside harmless parameters',
      'postgresql://claw@db/claw?sslmode=require&sslpassword=s3cret&application_name=claw',
      'postgresql://claw@db/claw?sslmode=require&sslpassword=***&application_name=claw',
    ],
    ['an upper-case name', 'postgres://db/claw?PASSWORD=s3cret', 'postgres://db/claw?PASSWORD=***'],
    [
      'both at once',
      'postgres://claw:s3cret@db/claw?password=s3cret',
      'postgres://claw:***@db/claw?password=***',
    ],
  ])('redactDatabaseUrl hides %s', (_why, url, redacted) => {
    expect(redactDatabaseUrl(url)).toBe(redacted);
  });

  it('databaseUrlSecrets finds every password, as written and percent-decoded', () => {
    expect(
      databaseUrlSecrets(
        'postgres://u:p%40ss-1@db/x?password=q%26r-2&sslpassword=k3y-3&sslmode=require',
      ).sort(),
    ).toEqual(['k3y-3', 'p%40ss-1', 'p@ss-1', 'q%26r-2', 'q&r-2'].sort());
    expect(databaseUrlSecrets('postgres://db/x')).toEqual([]);
  });

  it.each([
    ['user info', 'postgres://claw:userinfo-s3cret@127.0.0.1:1/claw'],
    ['?password=', 'postgres://claw@127.0.0.1:1/claw?password=query-s3cret'],
    [
      '?sslpassword= and user info',
      'postgres://claw:userinfo-s3cret@127.0.0.1:1/claw?sslpassword=query-s3cret',
    ],
  ])('a start against an unreachable database never logs or says the password (%s)', async (_why, url) => {
    const logs = captureLogger('debug');
    const config = loadConfig({ DATABASE_URL: url, DATA_DIR: await tempDir(), PORT: '0' });
    for (const start of [() => startServer(config, logs.log), () => openRuntime(config, logs.log)]) {
      const err = await start().catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: 'ERR_DB_UNAVAILABLE',
        message: expect.stringContaining('connection refused'),
      });
      // As `serve` would report it: the message, and the error with its causes in the log.
      logs.log.error({ err }, 'start failed');
      expect(String((err as Error).message)).not.toMatch(/s3cret/);
    }
    expect(logs.text()).toContain('start failed');
    expect(logs.text()).not.toMatch(/s3cret/);
  });

  it('a driver error that repeats the password is not kept as the cause', async () => {
    // The password is the host's address, so the driver's own message ("connect ECONNREFUSED
    // 127.0.0.1:1") repeats it, as error messages that echo connection parameters do.
    const url = 'postgres://claw:127.0.0.1@127.0.0.1:1/claw';
    const err = (await openDatabase({ kind: 'postgres', url }).catch((e: unknown) => e)) as Error & {
      cause: Error & { code?: string };
    };
    expect(err).toMatchObject({
      code: 'ERR_DB_UNAVAILABLE',
      message: expect.stringContaining('connection refused'),
    });
    expect(err.cause.code).toBe('ECONNREFUSED');
    expect(`${err.cause.message} ${err.cause.stack}`).not.toContain('127.0.0.1');
  });

  it('the logger censors configured secret values wherever they appear in a line', () => {
    const lines: string[] = [];
    const log = createLogger('info', { write: (l: string) => lines.push(l) }, [
      'hunter2-pw',
      'x"quoted"y',
      'pw',
    ]);
    log.error({ err: new Error('driver said: password hunter2-pw rejected'), note: 'x"quoted"y' }, 'failed');
    log.info({ short: 'pw stays' }, 'ok');
    const text = lines.join('');
    expect(text).not.toContain('hunter2-pw');
    expect(text).not.toContain('quoted');
    expect(text).toContain('[redacted]');
    // Too short to censor by value without garbling every line.
    expect(text).toContain('pw stays');
  });

  it(
    'embedded PGlite keeps data across reopen and refuses a second opener',
    async () => {
      const dir = await tempDir();
      const first = await openDatabase({ kind: 'pglite', dataDir: dir });
      await migrateToLatest(first.db);
      await first.db
        .insertInto('policy_pins')
        .values({ ...PIN, policy_name: 'p', policy_hash_b64u: null, reason: 'kept', pin_hash_b64u: 'h2' })
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
    },
    PGLITE_ON_DISK_TIMEOUT,
  );

  it(
    'embedded PGlite, on disk and in memory, runs with the bounded memory settings',
    async () => {
      const dir = await tempDir();
      const settings = async (db: Db) =>
        (
          await sql<{ name: string; value: string }>`
          select name, current_setting(name) as value from pg_settings
          where name in ('shared_buffers', 'maintenance_work_mem') order by name`.execute(db)
        ).rows;
      const want = [
        { name: 'maintenance_work_mem', value: PGLITE_SETTINGS.maintenance_work_mem },
        { name: 'shared_buffers', value: PGLITE_SETTINGS.shared_buffers },
      ];
      // Created (by a child process) and opened; then opened again: settings are given at every start.
      for (let i = 0; i < 2; i++) {
        const onDisk = await openDatabase({ kind: 'pglite', dataDir: dir });
        try {
          expect(await settings(onDisk.db)).toEqual(want);
        } finally {
          await onDisk.close();
        }
      }
      const inMemory = await openDatabase({ kind: 'pglite-memory' });
      try {
        expect(await settings(inMemory.db)).toEqual(want);
      } finally {
        await inMemory.close();
      }
    },
    PGLITE_ON_DISK_TIMEOUT,
  );

  it(
    'a first start that cannot create the embedded database fails closed and frees the lock',
    async () => {
      const dir = await tempDir();
      // Where the database would go is a file: the child creating it fails.
      await fs.writeFile(path.join(dir, 'pglite'), 'not a directory');
      await expect(openDatabase({ kind: 'pglite', dataDir: dir })).rejects.toMatchObject({
        code: 'ERR_DB_UNAVAILABLE',
        message: expect.stringContaining('creating the database failed'),
      });
      await expect(fs.stat(path.join(dir, 'pglite.lock'))).rejects.toThrow();
      expect(await fs.readFile(path.join(dir, 'pglite'), 'utf8')).toBe('not a directory');
    },
    PGLITE_ON_DISK_TIMEOUT,
  );

  it('takes over a lock left by a process that no longer exists', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'pglite.lock'), `2147483646 ${os.hostname()} old`);
    const lock = await lockDataDir(dir);
    expect(await fs.readFile(path.join(dir, 'pglite.lock'), 'utf8')).toMatch(new RegExp(`^${process.pid} `));
    await lock.release();
    await expect(fs.stat(path.join(dir, 'pglite.lock'))).rejects.toThrow();
  });

  it('takes over a lock holding our own PID that this process does not hold (PID 1 after a crash)', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'pglite.lock'), `${process.pid} ${os.hostname()} previous-incarnation`);
    const lock = await lockDataDir(dir);
    await expect(lockDataDir(dir)).rejects.toMatchObject({ code: 'ERR_DB_LOCKED' });
    await lock.release();
  });

  it('never judges a lock from another host (or PID namespace) dead', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'pglite.lock'), `1 some-other-container token`);
    await expect(lockDataDir(dir)).rejects.toMatchObject({
      code: 'ERR_DB_LOCKED',
      message: expect.stringContaining('on host some-other-container'),
    });
  });

  it('refuses a lock held by a live process', async () => {
    const dir = await tempDir();
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      await fs.writeFile(path.join(dir, 'pglite.lock'), `${other.pid} ${os.hostname()} live`);
      await expect(lockDataDir(dir)).rejects.toMatchObject({
        code: 'ERR_DB_LOCKED',
        message: expect.stringContaining(`process ${other.pid}`),
      });
    } finally {
      other.kill();
    }
  });

  it('lets exactly one of several processes racing for a stale lock win', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'pglite.lock'), `2147483646 ${os.hostname()} stale`);
    const script = `
      const { lockDataDir } = await import(${JSON.stringify(new URL('../../src/db/data-dir-lock.ts', import.meta.url).pathname)});
      // A winner holds the lock until every racer has answered (the test closes stdin then): one
      // that exited earlier would leave a stale lock for a slow starter to take over, rightly.
      try { await lockDataDir(process.argv[1]); console.log('won'); process.stdin.resume(); await new Promise((r) => process.stdin.on('end', r)); }
      catch (e) { console.log(e.code ?? e.message); }`;
    const procs = Array.from({ length: 6 }, () =>
      spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, dir], {
        cwd: new URL('../../', import.meta.url).pathname,
        stdio: ['pipe', 'pipe', 'inherit'],
      }),
    );
    const racers = procs.map(
      (p) =>
        new Promise<string>((resolve) => {
          let out = '';
          p.stdout.on('data', (d) => {
            out += String(d);
            if (out.includes('\n')) resolve(out.trim());
          });
          p.on('exit', () => resolve(out.trim()));
        }),
    );
    const results = await Promise.all(racers);
    const exited = procs.map(
      (p) => new Promise((resolve) => (p.exitCode === null ? p.on('exit', resolve) : resolve(null))),
    );
    for (const p of procs) p.stdin.end();
    await Promise.all(exited);
    expect(results.filter((r) => r === 'won')).toHaveLength(1);
    expect(results.filter((r) => r !== 'won')).toEqual(Array(5).fill('ERR_DB_LOCKED'));
  });
});
