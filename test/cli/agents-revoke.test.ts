import { afterEach, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { claimToken } from '../../src/jobs/agent-job-ops.js';
import { loadConfig } from '../../src/config.js';
import { engineFor, engineParts, openRuntime, policyServiceFor } from '../../src/runtime.js';
import { cli, stateEnv } from '../helpers/cli.js';
import { dialectName, type TestDb } from '../helpers/db.js';
import { OPS, opsJob } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';

const dbs: (TestDb | null)[] = [];
afterEach(async () => {
  await Promise.all(dbs.splice(0).map((d) => d?.close()));
});

/**
 * State as a running server would leave it: the ops agent's job with its read-only steps
 * minted, one of them claimed by the agent.
 */
async function agentHoldingAToken(env: Record<string, string>) {
  const rt = await openRuntime(loadConfig(env), silentLogger());
  try {
    const policies = policyServiceFor(rt);
    await policies.reload();
    const engine = engineFor(engineParts(rt), policies);
    await createAgent(rt.database.db, { id: OPS.executor, at: rt.clock() });
    const job = await opsJob(engine);
    const claimed = await claimToken(engine, { jobId: job.jobId, step: 'search-kb', agentId: OPS.executor });
    return { jobId: job.jobId, token: claimed.token, minted: job.minted.map((m) => m.jti) };
  } finally {
    await rt.close();
  }
}

describe(`claw-approvals agents revoke (${dialectName})`, () => {
  it('revokes the key and every unredeemed token of the agent, prints how many, and the tokens introspect as revoked', async () => {
    const s = await stateEnv();
    dbs.push(s.db);
    const held = await agentHoldingAToken(s.env);
    expect(held.minted).toHaveLength(3);
    const before = await cli(['token', 'introspect', held.token], s.env);
    expect(JSON.parse(before.out)).toMatchObject({ active: true });

    const res = await cli(
      ['agents', 'revoke', OPS.executor, '--reason', 'laptop stolen', '--actor', 'oncall-lead'],
      s.env,
    );
    expect(res.code).toBe(0);
    const out = JSON.parse(res.out) as Record<string, unknown>;
    expect(out).toMatchObject({
      id: OPS.executor,
      revoked_at: expect.any(String),
      tokens_revoked: 3,
      jobs_ended: [`job:${held.jobId}`],
    });
    expect((out.tokens as { jti: string }[]).map((t) => t.jti).sort()).toEqual([...held.minted].sort());

    const after = await cli(['token', 'introspect', held.token], s.env);
    expect(after.code).toBe(1);
    expect(JSON.parse(after.out)).toMatchObject({ active: false, code: 'ERR_TOKEN_REVOKED' });

    // Again: the key stays revoked (same time), nothing is left to revoke.
    const again = await cli(['agents', 'revoke', OPS.executor], s.env);
    expect(JSON.parse(again.out)).toMatchObject({
      revoked_at: out.revoked_at,
      tokens_revoked: 0,
      jobs_ended: [],
    });
    const listed = JSON.parse((await cli(['agents', 'list'], s.env)).out) as { revoked_at: string }[];
    expect(listed).toEqual([expect.objectContaining({ id: OPS.executor, revoked_at: out.revoked_at })]);
  });

  it('an unknown agent is ERR_AGENT_NOT_FOUND, exit 1', async () => {
    const s = await stateEnv();
    dbs.push(s.db);
    const res = await cli(['agents', 'revoke', 'agent:nobody'], s.env);
    expect(res.code).toBe(1);
    expect(res.err).toContain('ERR_AGENT_NOT_FOUND');
  });
});
