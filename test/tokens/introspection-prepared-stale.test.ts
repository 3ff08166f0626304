import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { claimToken } from '../../src/jobs/agent-job-ops.js';
import { setPaused } from '../../src/jobs/kill-switch.js';
import { introspectToken } from '../../src/tokens/token-lifecycle.js';
import { createTestEngine, OPS, opsJob, type TestEngine } from '../helpers/engine.js';

/**
 * Introspection's prepared statement outlives the schema it was planned on and is shared with
 * whatever else runs on the connection: a migration another replica applies while this one
 * serves, or an older version of this server behind a pooler in transaction mode.
 */
let e: TestEngine | undefined;
afterEach(async () => {
  await e?.close();
  e = undefined;
});

async function setup() {
  e = await createTestEngine();
  const job = await opsJob(e.ctx);
  const claimed = await claimToken(e.ctx, { jobId: job.jobId, step: 'search-kb', agentId: OPS.executor });
  return { ctx: e.ctx, token: claimed.token };
}

/** Each answer, or the error a call threw, as a string. */
async function outcomes(run: () => Promise<{ active: boolean; code?: string }>, n: number) {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    try {
      const r = await run();
      out.push(r.active ? 'active' : r.code!);
    } catch (err) {
      out.push(`threw ${(err as { code?: string }).code}`);
    }
  }
  return out;
}

describe('introspection prepared statement', () => {
  it('keeps answering after a migration changes the type of a column it reads', async () => {
    const s = await setup();
    // Prepared on every pooled connection: several at once (PGlite has one).
    const warm = await Promise.all(Array.from({ length: 10 }, () => introspectToken(s.ctx, s.token)));
    expect(warm.every((r) => r.active)).toBe(true);
    // What another replica's rolling deploy may do while this one serves.
    await sql`alter table kill_switch alter column reason type varchar(300)`.execute(s.ctx.db);
    expect(await outcomes(() => introspectToken(s.ctx, s.token), 20)).toEqual(Array(20).fill('active'));
    // And it still reads the database, not an answer from before: a pause is seen at once.
    await setPaused(s.ctx, { paused: true, actor: { kind: 'admin', via: 'test' }, reason: 'drill' });
    expect(await outcomes(() => introspectToken(s.ctx, s.token), 5)).toEqual(Array(5).fill('ERR_PAUSED'));
  });

  it('keeps answering after a migration adds a column to a table it reads', async () => {
    const s = await setup();
    await Promise.all(Array.from({ length: 10 }, () => introspectToken(s.ctx, s.token)));
    // `select *` is not used, so an added column changes nothing; a renamed one that the
    // statement names would be a real failure (the plain statement fails the same way).
    await sql`alter table tokens add column note text`.execute(s.ctx.db);
    await sql`alter table jobs alter column status type varchar(64)`.execute(s.ctx.db);
    expect(await outcomes(() => introspectToken(s.ctx, s.token), 20)).toEqual(Array(20).fill('active'));
  });

  it('never runs another definition left on the connection under the old name', async () => {
    const s = await setup();
    // An older server version, sharing the connection through a pooler, prepared its own
    // statement under the name this one once used; it says the work is paused.
    const answer = await s.ctx.db.connection().execute(async (conn) => {
      await sql`prepare claw_token_introspection_v1 (text) as
        select true as paused, 'older version' as pause_reason, null::text as jti, null::bigint as job_id,
               null::text as step_id, null::text as sub, null::text as scope_hash_b64u,
               $1::text as token_hash, null::timestamptz as revoked_at, null::timestamptz as redeemed_at,
               null::text as job_status, null::text as job_policy_hash_b64u`.execute(conn);
      try {
        return await introspectToken({ ...s.ctx, db: conn }, s.token);
      } finally {
        await sql`deallocate claw_token_introspection_v1`.execute(conn);
      }
    });
    expect(answer).toMatchObject({ active: true });
  });
});
