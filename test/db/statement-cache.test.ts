import { describe, expect, it } from 'vitest';
import { createStatementCache, type QueryClient } from '../../src/db/statement-cache.js';

/** A driver client that records what it is sent; `failNamed` makes the next named send fail. */
function fakeClient() {
  const sent: { name: string | undefined; text: string }[] = [];
  let failNamed: string | undefined;
  const client: QueryClient = {
    query(textOrConfig: unknown, values?: unknown) {
      const c =
        typeof textOrConfig === 'string'
          ? { name: undefined, text: textOrConfig, values }
          : (textOrConfig as { name: string; text: string; values: unknown });
      sent.push({ name: c.name, text: c.text });
      if (c.name !== undefined && failNamed !== undefined) {
        const code = failNamed;
        failNamed = undefined;
        return Promise.reject(Object.assign(new Error(`failed with ${code}`), { code }));
      }
      return Promise.resolve({ rows: [{ text: c.text, values: c.values }] });
    },
  };
  return {
    client,
    sent,
    failNextNamed: (code: string) => (failNamed = code),
    names: () => sent.map((s) => s.name),
  };
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
    const c = fakeClient();
    cache.attach(c.client);
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
    const a = fakeClient();
    const b = fakeClient();
    cache.attach(a.client);
    cache.attach(b.client);
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
    const a = fakeClient();
    const b = fakeClient();
    cache.attach(a.client);
    cache.attach(b.client);
    await run(a, READ, 3);
    a.failNextNamed('26000');
    const [answer] = await run(a, READ, 1, [7]);
    expect(answer).toEqual({ rows: [{ text: READ, values: [7] }] });
    expect(a.names().slice(-2)).toEqual([expect.stringMatching(/^claw_/), undefined]);
    await run(b, WRITE, 5);
    expect(b.names()).toEqual(Array(5).fill(undefined));
    expect(cache.stats().disabled).toBe(true);
  });

  it('inside a transaction lets the error stand (the transaction is aborted) and resends nothing', async () => {
    const cache = createStatementCache();
    const c = fakeClient();
    cache.attach(c.client);
    await run(c, READ, 3);
    await run(c, 'begin', 1, []);
    c.failNextNamed('26000');
    await expect(run(c, READ)).rejects.toMatchObject({ code: '26000' });
    expect(c.sent.at(-1)!.name).toMatch(/^claw_/);
    await run(c, 'rollback', 1, []);
    await run(c, READ, 1);
    expect(c.sent.at(-1)!.name).toBeUndefined();
  });

  it('prepares everything afresh, under new names, once a schema change outdates a statement', async () => {
    const cache = createStatementCache();
    const a = fakeClient();
    const b = fakeClient();
    cache.attach(a.client);
    cache.attach(b.client);
    await run(a, READ, 3);
    await run(b, WRITE, 3);
    const before = b.sent.at(-1)!.name!;
    a.failNextNamed('0A000');
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
    const c = fakeClient();
    cache.attach(c.client);
    await run(c, WRITE, 3);
    c.failNextNamed('23505');
    const before = c.sent.length;
    await expect(run(c, WRITE)).rejects.toMatchObject({ code: '23505' });
    expect(c.sent.length).toBe(before + 1);
    expect(cache.stats()).toMatchObject({ generation: 0, disabled: false });
  });

  it('prepares at most 100 statements on one connection, and counts at most 500 texts', async () => {
    const cache = createStatementCache();
    const c = fakeClient();
    cache.attach(c.client);
    for (let i = 0; i < 120; i++) await run(c, `select ${i} as n where $1::int > 0`, 3);
    const named = new Set(c.sent.filter((s) => s.name !== undefined).map((s) => s.name));
    expect(named.size).toBe(100);
    // Another connection may still prepare what this one could not.
    const d = fakeClient();
    cache.attach(d.client);
    await run(d, 'select 110 as n where $1::int > 0', 1);
    expect(d.names()).toEqual([expect.stringMatching(/^claw_0_/)]);
    // 500 one-off texts later, counting starts over: a text seen twice before is not named at its third use.
    await run(c, 'select 1000 as n where $1::int > 0', 2);
    for (let i = 0; i < 500; i++) await run(c, `select ${2000 + i} as n where $1::int > 0`, 1);
    await run(c, 'select 1000 as n where $1::int > 0', 1);
    expect(c.sent.at(-1)!.name).toBeUndefined();
  });
});
