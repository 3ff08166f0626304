import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createTestDb,
  dialectName,
  pgliteInstancesStarted,
  samePgliteInstance,
  type TestDb,
} from '../helpers/db.js';

// createTestDb hands each test a database as the migrations left it. On PGlite the instance a
// test closed is reset and handed to the next one; these tests check that nothing of the first
// test reaches the second, and that a database whose schema a test changed is never reused.

const open: TestDb[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((d) => d.close()));
});
async function fresh(): Promise<TestDb> {
  const d = await createTestDb();
  open.push(d);
  return d;
}

const PIN = {
  policy_name: 'p',
  policy_hash_b64u: null,
  actor: 'a',
  reason: 'r',
  created_at: new Date('2026-11-21T10:00:00Z'),
  prev_pin_hash_b64u: 'genesis',
  pin_hash_b64u: 'h1',
  signature_b64u: 's',
  signer_did: 'd',
};

/** What a fresh database holds: the kill switch row the migrations seed, and no pins. */
async function state(d: TestDb) {
  const kill = await d.db.selectFrom('kill_switch').select(['id', 'paused']).execute();
  const pins = await d.db.selectFrom('policy_pins').select('id').execute();
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from kysely_migration`.execute(d.db);
  return { kill, pins: pins.length, migrations: rows[0]!.n };
}

/**
 * Opens the next database after closing `d`. On PGlite, `reused`: `d`'s instance went back to
 * the pool, reset, and the next test gets it; otherwise it was closed, never to be handed out
 * again (the next one is another instance, pooled by an earlier file or started now).
 */
async function next(d: TestDb, reused: boolean): Promise<TestDb> {
  const started = pgliteInstancesStarted();
  await d.close();
  const e = await fresh();
  if (dialectName === 'pglite') {
    expect(samePgliteInstance(d, e)).toBe(reused);
    if (reused) expect(pgliteInstancesStarted()).toBe(started);
  }
  return e;
}

describe(`test databases (${dialectName})`, () => {
  it('a database a test wrote to comes back empty, as migrated, its sequences restarted', async () => {
    const d = await fresh();
    const pristine = await state(d);
    expect(pristine.kill).toEqual([{ id: 1, paused: false }]);
    expect(pristine.migrations).toBeGreaterThan(0);
    await d.db.insertInto('policy_pins').values(PIN).execute();
    await d.db.updateTable('kill_switch').set({ paused: true }).execute();

    const e = await next(d, true);
    expect(await state(e)).toEqual(pristine);
    const { id } = await e.db.insertInto('policy_pins').values(PIN).returning('id').executeTakeFirstOrThrow();
    expect(id).toBe(1);
  });

  it('a closed handle refuses every query, so a finished test cannot write into the next one', async () => {
    const d = await fresh();
    const stale = d.db;
    const e = await next(d, true);
    await expect(stale.insertInto('policy_pins').values(PIN).execute()).rejects.toThrow();
    await expect(sql`select 1`.execute(stale)).rejects.toThrow();
    expect((await state(e)).pins).toBe(0);
  });

  it('a transaction left open and session state do not reach the next test', async () => {
    const d = await fresh();
    const zone = sql<{ zone: string }>`select current_setting('TimeZone') as zone`;
    const pristineZone = (await zone.execute(d.db)).rows[0]!.zone;
    await sql`set time zone 'Pacific/Chatham'`.execute(d.db);
    await sql`set claw.left_over = 'yes'`.execute(d.db);
    await sql`create temporary table scratch (id int)`.execute(d.db);
    await sql`select pg_advisory_lock(42)`.execute(d.db);
    await sql`prepare stale_plan as select 1`.execute(d.db);
    await sql`begin`.execute(d.db);
    await d.db.insertInto('policy_pins').values(PIN).execute();

    const e = await next(d, true);
    const { rows } = await sql<{
      leftOver: string;
      temp: number;
      locks: number;
      plans: number;
    }>`select coalesce(current_setting('claw.left_over', true), '') as "leftOver",
              (select count(*)::int from pg_class where relname = 'scratch') as temp,
              (select count(*)::int from pg_locks l join pg_database b on b.oid = l.database
                where l.locktype = 'advisory' and b.datname = current_database()) as locks,
              (select count(*)::int from pg_prepared_statements) as plans`.execute(e.db);
    expect(rows[0]).toEqual({ leftOver: '', temp: 0, locks: 0, plans: 0 });
    expect((await zone.execute(e.db)).rows[0]!.zone).toBe(pristineZone);
    expect((await state(e)).pins).toBe(0);
    // Not inside the left-over transaction: this commits and is seen by a fresh statement.
    await e.db.insertInto('policy_pins').values(PIN).execute();
    expect((await state(e)).pins).toBe(1);
  });

  it('a database whose schema a test changed is not reused', async () => {
    const d = await fresh();
    await sql`alter table policy_pins disable trigger policy_pins_append_only`.execute(d.db);
    const e = await next(d, false);
    await e.db.insertInto('policy_pins').values(PIN).execute();
    await expect(e.db.deleteFrom('policy_pins').execute()).rejects.toMatchObject({ code: 'P0001' });

    await sql`create table stray (id int)`.execute(e.db);
    const f = await next(e, false);
    const { rows } = await sql<{
      n: number;
    }>`select count(*)::int as n from pg_tables where tablename = 'stray'`.execute(f.db);
    expect(rows[0]!.n).toBe(0);
  });

  it('append-only tables are emptied too, and keep refusing changes afterwards', async () => {
    const d = await fresh();
    await d.db.insertInto('policy_pins').values(PIN).execute();
    const e = await next(d, true);
    expect((await state(e)).pins).toBe(0);
    await e.db.insertInto('policy_pins').values(PIN).execute();
    await expect(e.db.deleteFrom('policy_pins').execute()).rejects.toMatchObject({ code: 'P0001' });
    await expect(sql`truncate policy_pins`.execute(e.db)).rejects.toMatchObject({ code: 'P0001' });
  });
});
