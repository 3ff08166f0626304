import { spawnSync } from 'node:child_process';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createTestDb, TEST_PG_URL } from '../helpers/db.js';

// What every test file sees, whatever DATABASE_URL the shell running `npm test` has set.
// operator-database.test.ts runs this file once more with DATABASE_URL pointing at a server
// that records connections.

describe('the environment of a test', () => {
  it('holds neither DATABASE_URL nor DATABASE_URL_FILE', () => {
    expect(process.env.DATABASE_URL).toBeUndefined();
    expect(process.env.DATABASE_URL_FILE).toBeUndefined();
    expect(loadConfig({ ...process.env, PORT: '0' }).databaseUrl).toBeNull();
  });

  it('nor does a process a test spawns', () => {
    const child = spawnSync(
      process.execPath,
      [
        '-e',
        'process.stdout.write(JSON.stringify([process.env.DATABASE_URL, process.env.DATABASE_URL_FILE]))',
      ],
      { encoding: 'utf8' },
    );
    expect(child.status).toBe(0);
    expect(JSON.parse(child.stdout)).toEqual([null, null]);
  });

  it('test databases are embedded PGlite, or on the server TEST_DATABASE_URL names', async () => {
    const d = await createTestDb();
    try {
      await sql`select 1`.execute(d.db);
      if (TEST_PG_URL) {
        expect(d.kind).toBe('postgres');
        expect(new URL(d.url!).host).toBe(new URL(TEST_PG_URL).host);
      } else {
        expect(d.kind).toBe('pglite');
      }
    } finally {
      await d.close();
    }
  });
});
