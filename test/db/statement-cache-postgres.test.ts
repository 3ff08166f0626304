import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestDb, dialectName, type TestDb } from '../helpers/db.js';

// The statement cache sits in the PostgreSQL pool (PGlite has no wire protocol to name
// statements on); these tests hold it to a real server. The logic alone is tested on both
// databases in statement-cache.test.ts.

let d: TestDb | undefined;
afterEach(async () => {
  await d?.close();
  d = undefined;
});

// The kill switch: one row, seeded by the migrations.
const read = (db: TestDb['db']) => db.selectFrom('kill_switch').selectAll().where('id', '=', 1);

/** The names this connection has prepared, by generation. */
async function preparedNames(conn: TestDb['db']): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    select name from pg_prepared_statements where name like 'claw\\_%' order by name`.execute(conn);
  return rows.map((r) => r.name.replace(/_[0-9a-f]{32}$/, ''));
}

describe.runIf(dialectName === 'postgres')('prepared statements on PostgreSQL', () => {
  it('plans a repeated statement once per connection, under its name', async () => {
    d = await createTestDb();
    await d.db.connection().execute(async (conn) => {
      const answers = [];
      for (let i = 0; i < 4; i++) answers.push(await read(conn).execute());
      // The same rows, shapes and types whether the statement went unnamed (1st) or named (4th).
      expect(answers[3]).toEqual(answers[0]);
      expect(answers[0]).toEqual([expect.objectContaining({ id: 1, paused: false })]);
      const { rows } = await sql<{ name: string; statement: string }>`
        select name, statement from pg_prepared_statements where name like 'claw\\_%'`.execute(conn);
      expect(rows).toEqual([
        { name: expect.stringMatching(/^claw_\d+_[0-9a-f]{32}$/), statement: read(conn).compile().sql },
      ]);
    });
  });

  it('keeps answering when a migration changes what a prepared `select *` returns', async () => {
    d = await createTestDb();
    const db = d.db;
    await db.connection().execute(async (conn) => {
      for (let i = 0; i < 4; i++) await read(conn).execute();
      expect(await preparedNames(conn)).toEqual(['claw_0']);
      await sql`alter table kill_switch add column note text`.execute(db);
      // Outside a transaction the statement is sent again, unnamed, and sees the new column.
      const rows = await read(conn).execute();
      expect(rows).toEqual([expect.objectContaining({ id: 1, note: null })]);
      // Then it is prepared afresh, under a new name, and answers from the new schema.
      for (let i = 0; i < 3; i++) await read(conn).execute();
      expect(await preparedNames(conn)).toEqual(['claw_0', 'claw_1']);
      expect(await read(conn).execute()).toEqual([expect.objectContaining({ id: 1, note: null })]);
    });
  });

  it('inside a transaction the first use after a migration fails, and the next transaction succeeds', async () => {
    d = await createTestDb();
    const db = d.db;
    await db.connection().execute(async (conn) => {
      for (let i = 0; i < 4; i++) await read(conn).execute();
      await sql`alter table kill_switch add column note text`.execute(db);
      await sql`begin`.execute(conn);
      await expect(read(conn).execute()).rejects.toMatchObject({ code: '0A000' });
      await sql`rollback`.execute(conn);
      await sql`begin`.execute(conn);
      for (let i = 0; i < 4; i++)
        expect(await read(conn).execute()).toEqual([expect.objectContaining({ id: 1, note: null })]);
      await sql`commit`.execute(conn);
      expect(await preparedNames(conn)).toEqual(['claw_0', 'claw_1']);
    });
  });
});
