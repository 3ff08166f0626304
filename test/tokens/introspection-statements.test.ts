import { decodeJwt, SignJWT } from 'jose';
import type { KyselyPlugin, PluginTransformQueryArgs, RawNode, RootOperationNode } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { claimToken } from '../../src/jobs/agent-job-ops.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { setPaused } from '../../src/jobs/kill-switch.js';
import { openDatabase } from '../../src/db/database.js';
import { introspectToken, redeemToken, revokeToken } from '../../src/tokens/token-lifecycle.js';
import { createTestEngine, OPS, opsJob, type TestEngine, U } from '../helpers/engine.js';

/**
 * Introspection is one read per call, whatever the answer: the kill switch, the issuance row and
 * its job come from one statement (prepared once per connection), and nothing is ever written.
 * Statements are counted where kysely hands them to the driver.
 */
class StatementLog implements KyselyPlugin {
  readonly statements: string[] = [];
  /** When set, statements whose text starts with it fail with this SQLSTATE, as the server would. */
  failing: { prefix: string; code: string } | null = null;

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const text = statementOf(args.node);
    this.statements.push(text);
    if (this.failing && text.startsWith(this.failing.prefix)) {
      throw Object.assign(new Error(`simulated ${this.failing.code}`), { code: this.failing.code });
    }
    return args.node;
  }
  async transformResult<T>(args: { result: T }): Promise<T> {
    return args.result;
  }
  take(): string[] {
    return this.statements.splice(0);
  }
}

/** `select`, `update`…, or a raw statement's text with `?` for each value. */
function statementOf(node: RootOperationNode): string {
  if (node.kind === 'RawNode') return rawText(node).trim();
  return node.kind.replace(/QueryNode$/, '').toLowerCase();
}
function rawText(node: RawNode): string {
  return node.sqlFragments
    .map((fragment, i) => {
      const p = node.parameters[i];
      return fragment + (p === undefined ? '' : p.kind === 'RawNode' ? rawText(p as RawNode) : '?');
    })
    .join('');
}

const READ = /^(select|execute claw_token_introspection_[0-9a-f]{16}\(\?\))$/;

let e: TestEngine | undefined;
const extra: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const x of extra.splice(0)) await x.close();
  await e?.close();
  e = undefined;
});

async function setup() {
  e = await createTestEngine();
  const log = new StatementLog();
  const watched: EngineContext = { ...e.ctx, db: e.ctx.db.withPlugin(log) };
  const job = await opsJob(e.ctx);
  const claimed = await claimToken(e.ctx, { jobId: job.jobId, step: 'search-kb', agentId: OPS.executor });
  // The first call on a connection may prepare the statement; every later one only runs it.
  await introspectToken(watched, claimed.token);
  log.take();
  return { ctx: e.ctx, watched, log, job, token: claimed.token, jti: claimed.jti };
}

describe('introspection statements', () => {
  it('is one read per call for every answer the database gives, and never a write', async () => {
    const s = await setup();
    const answers: string[] = [];
    const check = async (token: string) => {
      const r = await introspectToken(s.watched, token);
      answers.push(r.active ? 'active' : r.code);
      const statements = s.log.take();
      expect(statements).toHaveLength(1);
      expect(statements[0]).toMatch(READ);
    };
    await check(s.token);
    // Well signed, never issued here.
    const copy = await new SignJWT({ ...decodeJwt(s.token), jti: '00000000-0000-4000-8000-000000000000' })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: s.ctx.keyRing.active.kid })
      .sign(s.ctx.keyRing.active.privateKey);
    await check(copy);
    await setPaused(s.ctx, { paused: true, actor: { kind: 'admin', via: 'test' }, reason: 'drill' });
    await check(s.token);
    await setPaused(s.ctx, { paused: false, actor: { kind: 'admin', via: 'test' }, reason: 'done' });
    await redeemToken(s.ctx, s.token);
    await check(s.token);
    const other = await claimToken(s.ctx, {
      jobId: s.job.jobId,
      step: 'read-runbook',
      agentId: OPS.executor,
    });
    await revokeToken(s.ctx, { jti: other.jti, reason: 'leaked', actor: { admin: 'test' } });
    await check(other.token);
    expect(answers).toEqual([
      'active',
      'ERR_TOKEN_NOT_FOUND',
      'ERR_PAUSED',
      'ERR_TOKEN_REPLAYED',
      'ERR_TOKEN_REVOKED',
    ]);
  });

  it('asks nothing of the database for a token that is not three base64url parts', async () => {
    const s = await setup();
    for (const bad of ['', 'garbage', 'a.b', 'a.b.c.d', 'x'.repeat(5000), `${s.token}.`]) {
      const r = await introspectToken(s.watched, bad);
      expect(r).toMatchObject({ active: false, code: 'ERR_TOKEN_INVALID' });
      expect(s.log.take()).toEqual([]);
    }
    // jose's base64url decoding tolerates some padding and white space, so such a token may
    // verify; its hash is no issued token's, so it is then not found, after one read (as before).
    const near = [`${s.token}=`, `${s.token}==`, `${s.token} `, ` ${s.token}`];
    const answers = new Set<string>();
    for (const token of near) {
      const r = await introspectToken(s.watched, token);
      if (!r.active) answers.add(r.code);
      expect(r.active).toBe(false);
      expect(s.log.take()).toHaveLength(!r.active && r.code === 'ERR_TOKEN_NOT_FOUND' ? 1 : 0);
    }
    expect(answers).toContain('ERR_TOKEN_NOT_FOUND');
  });

  it('a forged token costs one read and gets the verifier answer, whatever the database says', async () => {
    const s = await setup();
    const [h, p, sig] = s.token.split('.') as [string, string, string];
    const flipped = `${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}`;
    const payload = Buffer.from(
      JSON.stringify({ ...decodeJwt(s.token), scope: ['step:search-kb', 'tool:anything'] }),
    ).toString('base64url');
    for (const forged of [`${h}.${p}.${flipped}`, `${h}.${payload}.${sig}`]) {
      const expected = await s.ctx.verifier.verify(forged, { now: s.ctx.clock() }).then(
        () => null,
        (err: { code: string; message: string }) => ({ active: false, code: err.code, message: err.message }),
      );
      expect(expected).toMatchObject({ code: 'ERR_TOKEN_INVALID' });
      expect(await introspectToken(s.watched, forged)).toEqual(expected);
      const statements = s.log.take();
      expect(statements).toHaveLength(1);
      expect(statements[0]).toMatch(READ);
      // The same answer when the read fails: nothing is decided on it.
      s.log.failing = { prefix: '', code: '08006' };
      expect(await introspectToken(s.watched, forged)).toEqual(expected);
      s.log.failing = null;
      s.log.take();
    }
    // The genuine token still verifies, and a failed read is the caller's error, not an answer.
    s.log.failing = { prefix: '', code: '08006' };
    await expect(introspectToken(s.watched, s.token)).rejects.toMatchObject({ code: '08006' });
    s.log.failing = null;
    expect(await introspectToken(s.watched, s.token)).toMatchObject({ active: true });
  });

  it('falls back to the plain statement where prepared statements do not last (a pooler)', async () => {
    e = await createTestEngine();
    const log = new StatementLog();
    log.failing = { prefix: 'execute claw_token_introspection_', code: '26000' };
    const watched: EngineContext = { ...e.ctx, db: e.ctx.db.withPlugin(log) };
    const job = await opsJob(e.ctx);
    const { token } = await claimToken(e.ctx, { jobId: job.jobId, step: 'search-kb', agentId: OPS.executor });
    expect(await introspectToken(watched, token)).toMatchObject({ active: true });
    expect(log.take().filter((x) => x.startsWith('execute'))).toHaveLength(2);
    for (let i = 0; i < 3; i++) {
      expect(await introspectToken(watched, token)).toMatchObject({ active: true });
      expect(log.take()).toEqual(['select']);
    }
  });

  it('prepares an outdated statement once more, then uses the plain one; other failures are errors', async () => {
    e = await createTestEngine();
    const log = new StatementLog();
    const watched: EngineContext = { ...e.ctx, db: e.ctx.db.withPlugin(log) };
    const job = await opsJob(e.ctx);
    const { token } = await claimToken(e.ctx, { jobId: job.jobId, step: 'search-kb', agentId: OPS.executor });
    expect(await introspectToken(watched, token)).toMatchObject({ active: true });
    for (const code of ['0A000', '42703', '42P01']) {
      log.take();
      // The statement keeps failing as outdated (a schema changing right now).
      log.failing = { prefix: 'execute claw_token_introspection_', code };
      expect(await introspectToken(watched, token)).toMatchObject({ active: true });
      const kinds = log.take().map((x) => x.replace(/claw_token_introspection_[0-9a-f]{16}.*/, 'it'));
      expect(kinds).toEqual(['execute it', 'deallocate it', 'prepare it', 'execute it', 'select']);
      log.failing = null;
      // Not given up on: the next call runs the statement prepared again.
      expect(await introspectToken(watched, token)).toMatchObject({ active: true });
      expect(log.take()).toHaveLength(1);
    }
    // Any other failure is not an answer (fail closed): the caller gets the error.
    log.failing = { prefix: 'execute claw_token_introspection_', code: '42501' };
    await expect(introspectToken(watched, token)).rejects.toMatchObject({ code: '42501' });
    expect(log.take()).toHaveLength(1);
  });

  it('sees a revocation and a pause committed through another replica at once (no cache)', async () => {
    const s = await setup();
    // Another replica: its own pool on the same PostgreSQL database; PGlite has one connection.
    const other = e!.d.url ? await openDatabase({ kind: 'postgres', url: e!.d.url }) : null;
    if (other) extra.push(other);
    const replica: EngineContext = { ...s.ctx, db: other?.db ?? s.ctx.db };
    expect(await introspectToken(s.watched, s.token)).toMatchObject({ active: true });
    await setPaused(replica, { paused: true, actor: { kind: 'user', userId: U.erin }, reason: 'drill' });
    expect(await introspectToken(s.watched, s.token)).toMatchObject({ active: false, code: 'ERR_PAUSED' });
    await setPaused(replica, { paused: false, actor: { kind: 'user', userId: U.erin }, reason: 'over' });
    expect(await introspectToken(s.watched, s.token)).toMatchObject({ active: true });
    await revokeToken(replica, { jti: s.jti, reason: 'leaked', actor: { admin: 'replica-b' } });
    expect(await introspectToken(s.watched, s.token)).toMatchObject({
      active: false,
      code: 'ERR_TOKEN_REVOKED',
    });
  });
});
