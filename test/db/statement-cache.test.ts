import { describe, expect, it } from 'vitest';
import { createStatementCache, type QueryClient } from '../../src/db/statement-cache.js';

/** The server's errors, as node-postgres gives them. */
const ERRORS: Record<string, { code: string; message: string; routine?: string }> = {
  pooler: { code: '26000', message: 'prepared statement "claw_0_x" does not exist' },
  preparedElsewhere: { code: '42P05', message: 'prepared statement "claw_0_x" already exists' },
  outdated: {
    code: '0A000',
    message: 'cached plan must not change result type',
    routine: 'RevalidateCachedQuery',
  },
  unsupported: {
    code: '0A000',
    message: 'FOR UPDATE cannot be applied to the nullable side of an outer join',
  },
  unique: { code: '23505', message: 'duplicate key value violates unique constraint' },
};

/** A driver client that records what it is sent; `failNextNamed` makes the next named send fail. */
function fakeClient() {
  const sent: { name: string | undefined; text: string }[] = [];
  let failNamed: keyof typeof ERRORS | undefined;
  const client: QueryClient = {
    query(textOrConfig: unknown, values?: unknown) {
      const c =
        typeof textOrConfig === 'string'
          ? { name: undefined, text: textOrConfig, values }
          : (textOrConfig as { name: string; text: string; values: unknown });
      sent.push({ name: c.name, text: c.text });
      if (c.name !== undefined && failNamed !== undefined) {
        const { message, ...fields } = ERRORS[failNamed]!;
        failNamed = undefined;
        return Promise.reject(Object.assign(new Error(message), fields));
      }
      return Promise.resolve({ rows: [{ text: c.text, values: c.values }] });
    },
  };
  return {
    client,
    sent,
    failNextNamed: (error: keyof typeof ERRORS) => (failNamed = error),
    names: () => sent.map((s) => s.name),
  };
}

/** A fake client whose queries go through `cache`. */
function attached(cache: ReturnType<typeof createStatementCache>) {
  const c = fakeClient();
  cache.attach(c.client);
  return c;
}

const READ = 'select * from "jobs" where "id" = $1';
const WRITE = 'insert into "decisions" ("job_id") values ($1)';

async function run(c: { client: QueryClient }, text: string, times = 1, values: unknown[] = [1]) {
  const out: unknown[] = [];
  for (let i = 0; i < times; i++) out.push(await c.client.query(text, values));
  return out;
}

describe('prepared statements for what the process repeats', () => {
  it('sends a statement named from its third use on, one name per text, with its parameters', async () => {
    const cache = createStatementCache();
    const c = attached(cache);
    const answers = await run(c, READ, 4, [42]);
    await run(c, WRITE, 3);
    const [n1, n2, n3, n4] = c.names();
    expect([n1, n2]).toEqual([undefined, undefined]);
    expect(n3).toMatch(/^claw_0_[0-9a-f]{32}$/);
    expect(n4).toBe(n3);
    expect(c.names()[6]).toMatch(/^claw_0_/);
    expect(c.names()[6]).not.toBe(n3);
    // The driver gets the values with the name; the answer is the driver's.
    expect(answers.at(-1)).toEqual({ rows: [{ text: READ, values: [42] }] });
    expect(cache.stats()).toEqual({ named: 2, generation: 0, disabled: false });
  });

  it('counts across connections, and never names transaction control or utility statements', async () => {
    const cache = createStatementCache();
    const a = attached(cache);
    const b = attached(cache);
    await run(a, READ, 2);
    await run(b, READ, 1);
    expect(b.names()).toEqual([expect.stringMatching(/^claw_0_/)]);
    for (const text of [
      'begin',
      'commit',
      'rollback',
      'set local lock_timeout = 1000',
      'prepare x as select 1',
    ])
      await run(a, text, 5, []);
    expect(a.sent.filter((s) => s.name !== undefined)).toEqual([]);
  });

  it('stops naming for good when the server connection lacks the statement (a pooler), resending unnamed', async () => {
    const cache = createStatementCache();
    const a = attached(cache);
    const b = attached(cache);
    await run(a, READ, 3);
    a.failNextNamed('pooler');
    const [answer] = await run(a, READ, 1, [7]);
    expect(answer).toEqual({ rows: [{ text: READ, values: [7] }] });
    expect(a.names().slice(-2)).toEqual([expect.stringMatching(/^claw_/), undefined]);
    await run(b, WRITE, 5);
    expect(b.names()).toEqual(Array(5).fill(undefined));
    expect(cache.stats().disabled).toBe(true);
  });

  it('treats a statement already prepared on the server connection (42P05) as a pooler too', async () => {
    const cache = createStatementCache();
    const c = attached(cache);
    await run(c, READ, 3);
    c.failNextNamed('preparedElsewhere');
    const [answer] = await run(c, READ, 1, [9]);
    expect(answer).toEqual({ rows: [{ text: READ, values: [9] }] });
    expect(c.sent.at(-1)!.name).toBeUndefined();
    expect(cache.stats().disabled).toBe(true);
  });

  it('follows the transaction through start transaction, savepoints and commit', async () => {
    const cache = createStatementCache();
    const c = attached(cache);
    await run(c, READ, 3);
    await run(c, 'start transaction isolation level serializable', 1, []);
    await run(c, 'savepoint "sp1"', 1, []);
    await run(c, 'rollback to savepoint "sp1"', 1, []);
    // Still inside: the error stands, nothing is sent again.
    c.failNextNamed('outdated');
    const before = c.sent.length;
    await expect(run(c, READ)).rejects.toMatchObject({ code: '0A000' });
    expect(c.sent.length).toBe(before + 1);
    await run(c, 'commit', 1, []);
    // Outside again: the next outdated statement is sent again, unnamed, and answered.
    await run(c, WRITE, 3);
    c.failNextNamed('outdated');
    const [answer] = await run(c, WRITE, 1, [5]);
    expect(answer).toEqual({ rows: [{ text: WRITE, values: [5] }] });
  });

  it('passes on another error under 0A000 as it is: no new names, nothing sent again', async () => {
    const cache = createStatementCache();
    const c = attached(cache);
    await run(c, READ, 3);
    c.failNextNamed('unsupported');
    const before = c.sent.length;
    await expect(run(c, READ)).rejects.toThrow(/nullable side/);
    expect(c.sent.length).toBe(before + 1);
    expect(cache.stats()).toMatchObject({ generation: 0, named: 1 });
  });

  it('never names several statements in one text, and leaves the callback form to the driver', async () => {
    const cache = createStatementCache();
    const c = attached(cache);
    await run(c, 'select 1 as n where $1::int > 0; select 2', 5);
    expect(c.names()).toEqual(Array(5).fill(undefined));
    const calls: unknown[][] = [];
    const raw: QueryClient = {
      query: (...args: unknown[]) => {
        calls.push(args);
        return Promise.resolve({ rows: [] });
      },
    };
    cache.attach(raw);
    // node-postgres also takes (text, values, callback); pg-pool's own query calls it so.
    const withCallback = raw.query as (...args: unknown[]) => Promise<unknown>;
    for (let i = 0; i < 4; i++) await withCallback(READ, [1], () => undefined);
    expect(calls.every((a) => a[0] === READ && a.length === 3)).toBe(true);
  });

  it('inside a transaction lets the error stand (the transaction is aborted) and resends nothing', async () => {
    const cache = createStatementCache();
    const c = attached(cache);
    await run(c, READ, 3);
    await run(c, 'begin', 1, []);
    c.failNextNamed('pooler');
    await expect(run(c, READ)).rejects.toMatchObject({ code: '26000' });
    expect(c.sent.at(-1)!.name).toMatch(/^claw_/);
    await run(c, 'rollback', 1, []);
    await run(c, READ, 1);
    expect(c.sent.at(-1)!.name).toBeUndefined();
  });

  it('prepares everything afresh, under new names, once a schema change outdates a statement', async () => {
    const cache = createStatementCache();
    const a = attached(cache);
    const b = attached(cache);
    await run(a, READ, 3);
    await run(b, WRITE, 3);
    const before = b.sent.at(-1)!.name!;
    a.failNextNamed('outdated');
    await run(a, READ, 1);
    expect(a.names().slice(-2)).toEqual([expect.stringMatching(/^claw_0_/), undefined]);
    expect(cache.stats().generation).toBe(1);
    // The other connection's statement is planned again too, under a name it never used.
    await run(b, WRITE, 3);
    expect(b.names().slice(-3)).toEqual([undefined, undefined, expect.stringMatching(/^claw_1_/)]);
    expect(b.sent.at(-1)!.name).not.toBe(before);
  });

  it('passes every other error on, without sending the statement again', async () => {
    const cache = createStatementCache();
    const c = attached(cache);
    await run(c, WRITE, 3);
    c.failNextNamed('unique');
    const before = c.sent.length;
    await expect(run(c, WRITE)).rejects.toMatchObject({ code: '23505' });
    expect(c.sent.length).toBe(before + 1);
    expect(cache.stats()).toMatchObject({ generation: 0, disabled: false });
  });

  it('prepares at most 100 statements on one connection, and counts at most 500 texts', async () => {
    const cache = createStatementCache();
    const c = attached(cache);
    for (let i = 0; i < 120; i++) await run(c, `select ${i} as n where $1::int > 0`, 3);
    const named = new Set(c.sent.filter((s) => s.name !== undefined).map((s) => s.name));
    expect(named.size).toBe(100);
    // Another connection may still prepare what this one could not.
    const d = attached(cache);
    await run(d, 'select 110 as n where $1::int > 0', 1);
    expect(d.names()).toEqual([expect.stringMatching(/^claw_0_/)]);
    // 500 one-off texts later, counting starts over: a text seen twice before is not named at
    // its third use (on a connection with room to prepare it).
    const e = attached(cache);
    await run(e, 'select 1000 as n where $1::int > 0', 2);
    for (let i = 0; i < 500; i++) await run(e, `select ${2000 + i} as n where $1::int > 0`, 1);
    await run(e, 'select 1000 as n where $1::int > 0', 1);
    expect(e.sent.at(-1)!.name).toBeUndefined();
    await run(e, 'select 1000 as n where $1::int > 0', 2);
    expect(e.sent.at(-1)!.name).toMatch(/^claw_0_/);
  });
});
