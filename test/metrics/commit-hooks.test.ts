import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  sql,
} from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { afterCommit } from '../../src/db/commit-hooks.js';
import type { Db } from '../../src/db/database.js';
import type { Database } from '../../src/db/schema.js';
import { createTestDb, dialectName, type TestDb } from '../helpers/db.js';

let d: TestDb;
let db: Db;
beforeAll(async () => {
  d = await createTestDb();
  db = d.db;
  await sql`create table hook_probe (id int primary key)`.execute(db);
  // Fails at COMMIT (a deferred constraint trigger), with the SQLSTATE of a lost race.
  await sql`create function hook_probe_refuse() returns trigger language plpgsql as $$
    begin raise exception 'refused at commit' using errcode = '40001'; end $$`.execute(db);
  await sql`create constraint trigger hook_probe_at_commit after insert on hook_probe
    deferrable initially deferred for each row when (new.id < 0) execute function hook_probe_refuse()`.execute(
    db,
  );
});
afterAll(async () => {
  await d.close();
});

/** Runs `body` in a transaction; returns what ran after commit, and how the transaction ended. */
async function run(body: (trx: Db, ran: string[]) => Promise<void>) {
  const ran: string[] = [];
  let error: unknown = null;
  try {
    await db.transaction().execute((trx) => body(trx, ran));
  } catch (err) {
    error = err;
  }
  return { ran, error };
}

describe(`afterCommit (${dialectName})`, () => {
  it('runs work once, after the transaction commits, in the order it was registered', async () => {
    let seenInside: string[] = [];
    const { ran, error } = await run(async (trx, ran) => {
      await afterCommit(trx, () => ran.push('a'));
      await sql`insert into hook_probe values (1)`.execute(trx);
      await afterCommit(trx, () => ran.push('b'));
      seenInside = [...ran];
    });
    expect(error).toBeNull();
    expect(seenInside).toEqual([]);
    expect(ran).toEqual(['a', 'b']);
  });

  it('drops the work of a transaction that rolls back', async () => {
    const { ran, error } = await run(async (trx, ran) => {
      await afterCommit(trx, () => ran.push('never'));
      throw new Error('abort');
    });
    expect(error).toMatchObject({ message: 'abort' });
    expect(ran).toEqual([]);
  });

  it('drops the work of a transaction whose COMMIT fails', async () => {
    const { ran, error } = await run(async (trx, ran) => {
      await sql`insert into hook_probe values (-1)`.execute(trx);
      await afterCommit(trx, () => ran.push('never'));
    });
    expect(error).toMatchObject({ code: '40001' });
    expect(ran).toEqual([]);
    const rows = await db
      .selectFrom('hook_probe' as never)
      .selectAll()
      .execute();
    expect(rows).not.toContainEqual({ id: -1 });
    // The connection is fine afterwards: the next transaction's work runs.
    const next = await run(async (trx, ran) => {
      await afterCommit(trx, () => ran.push('next'));
    });
    expect(next.ran).toEqual(['next']);
  });

  it('drops work registered after a savepoint that is rolled back to, and keeps the rest', async () => {
    const { ran, error } = await run(async (trx, ran) => {
      await afterCommit(trx, () => ran.push('before'));
      await sql`savepoint create_job`.execute(trx);
      await afterCommit(trx, () => ran.push('undone'));
      await sql`rollback to savepoint create_job`.execute(trx);
      await afterCommit(trx, () => ran.push('after'));
      await sql`SAVEPOINT "mint_step"`.execute(trx);
      await afterCommit(trx, () => ran.push('released'));
      await sql`release savepoint mint_step`.execute(trx);
    });
    expect(error).toBeNull();
    expect(ran).toEqual(['before', 'after', 'released']);
  });

  it('drops work of a released savepoint when an enclosing one is rolled back to', async () => {
    const { ran } = await run(async (trx, ran) => {
      await sql`savepoint outer_sp`.execute(trx);
      await sql`savepoint inner_sp`.execute(trx);
      await afterCommit(trx, () => ran.push('inner'));
      await sql`release savepoint inner_sp`.execute(trx);
      await sql`rollback to savepoint outer_sp`.execute(trx);
    });
    expect(ran).toEqual([]);
  });

  it("keeps Kysely's own savepoints (controlled transactions) in step too", async () => {
    const ran: string[] = [];
    const trx = await db.startTransaction().execute();
    const sp = await trx.savepoint('sp1').execute();
    await afterCommit(sp, () => ran.push('undone'));
    await sp.rollbackToSavepoint('sp1').execute();
    await afterCommit(trx, () => ran.push('kept'));
    expect(ran).toEqual([]);
    await trx.commit().execute();
    expect(ran).toEqual(['kept']);
  });

  it('runs nothing when a failed statement aborted the transaction, whose COMMIT the server turns into ROLLBACK', async () => {
    const { ran, error } = await run(async (trx, ran) => {
      await sql`insert into hook_probe values (2)`.execute(trx);
      await afterCommit(trx, () => ran.push('counted'));
      // A duplicate key, its error swallowed: the transaction is aborted, COMMIT rolls it back.
      await sql`insert into hook_probe values (2)`.execute(trx).catch(() => undefined);
      await afterCommit(trx, () => ran.push('after the failure'));
    });
    expect(error).toBeNull();
    expect(ran).toEqual([]);
    const rows = await db
      .selectFrom('hook_probe' as never)
      .selectAll()
      .execute();
    expect(rows).not.toContainEqual({ id: 2 });
    // The next transaction on the connection starts clean: its work runs.
    const next = await run(async (trx, ran) => {
      await afterCommit(trx, () => ran.push('next'));
    });
    expect(next.ran).toEqual(['next']);
  });

  it('after a failure, a rollback to an earlier savepoint keeps the work before it and drops the rest', async () => {
    const { ran, error } = await run(async (trx, ran) => {
      await sql`insert into hook_probe values (3)`.execute(trx);
      await afterCommit(trx, () => ran.push('before the savepoint'));
      await sql`savepoint retry`.execute(trx);
      await afterCommit(trx, () => ran.push('after the savepoint'));
      await sql`insert into hook_probe values (3)`.execute(trx).catch(() => undefined);
      await afterCommit(trx, () => ran.push('after the failure'));
      await sql`rollback to savepoint retry`.execute(trx);
      await afterCommit(trx, () => ran.push('after the rollback'));
    });
    expect(error).toBeNull();
    expect(ran).toEqual(['before the savepoint', 'after the rollback']);
    const rows = await db
      .selectFrom('hook_probe' as never)
      .selectAll()
      .execute();
    expect(rows).toContainEqual({ id: 3 });
  });

  it("a failure inside a Kysely savepoint, rolled back by Kysely's own savepoint calls, leaves the outer work", async () => {
    const ran: string[] = [];
    const trx = await db.startTransaction().execute();
    await afterCommit(trx, () => ran.push('kept'));
    const sp = await trx.savepoint('sp_fail').execute();
    await afterCommit(sp, () => ran.push('undone'));
    await sql`select 1/0`.execute(sp).catch(() => undefined);
    await sp.rollbackToSavepoint('sp_fail').execute();
    await trx.commit().execute();
    expect(ran).toEqual(['kept']);
  });

  it('a failed rollback to a savepoint that does not exist leaves the transaction aborted', async () => {
    const { ran } = await run(async (trx, ran) => {
      await afterCommit(trx, () => ran.push('never'));
      await sql`rollback to savepoint no_such_savepoint`.execute(trx).catch(() => undefined);
    });
    expect(ran).toEqual([]);
  });

  it('runs at once outside a transaction: what came before has committed', async () => {
    const ran: string[] = [];
    await afterCommit(db, () => ran.push('now'));
    expect(ran).toEqual(['now']);
  });

  it('a hook that throws neither fails the committed transaction nor stops the others', async () => {
    const { ran, error } = await run(async (trx, ran) => {
      await afterCommit(trx, () => {
        throw new Error('hook bug');
      });
      await afterCommit(trx, () => ran.push('second'));
    });
    expect(error).toBeNull();
    expect(ran).toEqual(['second']);
  });

  it('a transaction never hands its work to the next one on the same connection', async () => {
    const first = await run(async (trx, ran) => {
      await afterCommit(trx, () => ran.push('first'));
      throw new Error('abort');
    });
    const second = await run(async (trx, ran) => {
      await afterCommit(trx, () => ran.push('second'));
    });
    expect(first.ran).toEqual([]);
    expect(second.ran).toEqual(['second']);
  });
});

describe('over a driver without hooks', () => {
  it('drops the work instead of guessing that the transaction committed', async () => {
    const plain = new Kysely<Database>({
      dialect: {
        createAdapter: () => new PostgresAdapter(),
        createDriver: () => new DummyDriver(),
        createIntrospector: (k) => new PostgresIntrospector(k),
        createQueryCompiler: () => new PostgresQueryCompiler(),
      },
    });
    const ran: string[] = [];
    await plain.transaction().execute(async (trx) => {
      await afterCommit(trx, () => ran.push('unknown'));
    });
    expect(ran).toEqual([]);
  });
});
