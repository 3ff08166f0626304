import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import type { RateLimits } from '../../src/http/rate-limit.js';
import { decideStep } from '../../src/approvals/record-decision.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';

const ADMIN = 'admin-token-for-tests-0123456789';
const OTHER_AGENT = 'agent:ops-other';

const opened: { e: TestEngine; app: FastifyInstance }[] = [];
afterEach(async () => {
  for (const { e, app } of opened.splice(0)) {
    await app.close();
    await e.close();
  }
});

async function setup(rateLimits: Partial<RateLimits> = { perCaller: 1000 }) {
  const e = await createTestEngine();
  const { ctx } = e;
  const app = buildApp({
    db: ctx.db,
    keyRing: ctx.keyRing,
    policies: ctx.policies,
    log: silentLogger(),
    engine: ctx,
    adminToken: ADMIN,
    rateLimits,
  });
  opened.push({ e, app });
  const ops = await createAgent(ctx.db, { id: OPS.executor, at: ctx.clock() });
  const other = await createAgent(ctx.db, { id: OTHER_AGENT, at: ctx.clock() });
  const s = {
    ...e,
    app,
    ops: { authorization: `Bearer ${ops.key}` },
    other: { authorization: `Bearer ${other.key}` },
    admin: { authorization: `Bearer ${ADMIN}` },
  };
  return s;
}
type S = Awaited<ReturnType<typeof setup>>;

/** A fresh ops job with its search-kb token claimed by the executor over the API. */
async function claimedToken(s: S, step = 'search-kb') {
  const job = await opsJob(s.ctx);
  const res = await s.app.inject({
    method: 'POST',
    url: `/v1/jobs/${job.jobId}/steps/${step}/token`,
    headers: s.ops,
  });
  expect(res.statusCode).toBe(200);
  const body = res.json() as { token: string; jti: string };
  return { jobId: job.jobId, token: body.token, jti: body.jti, hash: sha256Hex(body.token) };
}

const sha256Hex = (text: string) => createHash('sha256').update(text).digest('hex');

const post = (s: S, route: string, payload: unknown, headers: Record<string, string> = s.ops) =>
  s.app.inject({ method: 'POST', url: `/v1/tokens/${route}`, headers, payload: payload as object });

const errorOf = (res: { statusCode: number; json: () => unknown }) => [
  res.statusCode,
  (res.json() as { error: { code: string } }).error.code,
];

describe(`token API (${dialectName})`, () => {
  it('introspects an active token: claims, token_hash, job and step, no-store', async () => {
    const s = await setup();
    const t = await claimedToken(s);
    const res = await post(s, 'introspect', { token: t.token });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json();
    expect(body).toEqual({
      active: true,
      claims: expect.objectContaining({
        token_version: '1',
        sub: OPS.executor,
        aud: 'clawproxy',
        jti: t.jti,
        mission_id: `job:${t.jobId}`,
      }),
      token_hash: t.hash,
      job_id: t.jobId,
      step: 'search-kb',
    });
    expect(body.claims.scope).toEqual(
      expect.arrayContaining(['step:search-kb', 'tool:search', 'proxy:call']),
    );
    // Introspection is read-only: it can be asked again, by a gateway holding the admin token too.
    expect((await post(s, 'introspect', { token: t.token }, s.admin)).json()).toMatchObject({ active: true });
    expect((await post(s, 'introspect', { token: t.token, audience: 'clawproxy' })).json()).toMatchObject({
      active: true,
    });
  });

  it('says why a token is not active instead of failing the request', async () => {
    const s = await setup();
    const t = await claimedToken(s);
    const wrongAudience = await post(s, 'introspect', { token: t.token, audience: 'someone-else' });
    expect(wrongAudience.statusCode).toBe(200);
    expect(wrongAudience.json()).toEqual({
      active: false,
      code: 'ERR_TOKEN_INVALID',
      message: expect.any(String),
    });
    // A signature changed in its middle (its last characters barely vary: Ed25519's S is below 2^253).
    const at = t.token.lastIndexOf('.') + 10;
    const forged = t.token.slice(0, at) + (t.token[at] === 'A' ? 'B' : 'A') + t.token.slice(at + 1);
    expect(forged).not.toBe(t.token);
    for (const garbage of ['garbage', 'a.b.c', forged]) {
      const res = await post(s, 'introspect', { token: garbage });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ active: false, code: 'ERR_TOKEN_INVALID' });
      expect(res.json()).not.toHaveProperty('claims');
    }
  });

  it('refuses callers without a key and malformed bodies', async () => {
    const s = await setup();
    const t = await claimedToken(s);
    for (const route of ['introspect', 'redeem']) {
      expect(errorOf(await post(s, route, { token: t.token }, {}))).toEqual([401, 'ERR_UNAUTHENTICATED']);
      expect(errorOf(await post(s, route, { token: t.token }, { authorization: 'Bearer wrong' }))).toEqual([
        401,
        'ERR_UNAUTHENTICATED',
      ]);
      expect(errorOf(await post(s, route, { token: '' }))).toEqual([400, 'ERR_VALIDATION']);
      expect(errorOf(await post(s, route, { token: t.token, extra: 1 }))).toEqual([400, 'ERR_VALIDATION']);
    }
    expect(errorOf(await post(s, 'revoke', { jti: t.jti, reason: 'x' }, {}))).toEqual([
      401,
      'ERR_UNAUTHENTICATED',
    ]);
    // Nothing was spent or revoked along the way.
    expect((await post(s, 'introspect', { token: t.token })).json()).toMatchObject({ active: true });
  });

  it('redeems once; a second redemption is 409 ERR_TOKEN_REPLAYED', async () => {
    const s = await setup();
    const t = await claimedToken(s);
    const first = await post(s, 'redeem', { token: t.token, audience: 'clawproxy' });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({
      redeemed: true,
      token_hash: t.hash,
      job_id: t.jobId,
      step: 'search-kb',
      claims: { jti: t.jti },
    });
    expect(errorOf(await post(s, 'redeem', { token: t.token }))).toEqual([409, 'ERR_TOKEN_REPLAYED']);
    expect(errorOf(await post(s, 'redeem', { token: t.token }, s.admin))).toEqual([
      409,
      'ERR_TOKEN_REPLAYED',
    ]);
    expect((await post(s, 'introspect', { token: t.token })).json()).toMatchObject({
      active: false,
      code: 'ERR_TOKEN_REPLAYED',
    });
    const events = await s.ctx.db
      .selectFrom('job_events')
      .select('event_type')
      .where('job_id', '=', t.jobId)
      .where('event_type', '=', 'token_redeemed')
      .execute();
    expect(events).toHaveLength(1);
  });

  it('refuses to redeem garbage with 401 ERR_TOKEN_INVALID', async () => {
    const s = await setup();
    expect(errorOf(await post(s, 'redeem', { token: 'garbage' }))).toEqual([401, 'ERR_TOKEN_INVALID']);
  });

  it('an agent revokes its own token by jti; the token then introspects as ERR_TOKEN_REVOKED', async () => {
    const s = await setup();
    const t = await claimedToken(s);
    const res = await post(s, 'revoke', { jti: t.jti, reason: 'agent compromised' });
    expect(res.statusCode).toBe(200);
    // The claimed step cannot finish any more, so its job ends as revoked.
    expect(res.json()).toEqual({ jti: t.jti, job_id: t.jobId, already_revoked: false, job_ended: true });
    expect((await post(s, 'introspect', { token: t.token })).json()).toEqual({
      active: false,
      code: 'ERR_TOKEN_REVOKED',
      message: expect.any(String),
    });
    expect(errorOf(await post(s, 'redeem', { token: t.token }))).toEqual([401, 'ERR_TOKEN_REVOKED']);
    const again = await post(s, 'revoke', { jti: t.jti, reason: 'twice' });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ already_revoked: true, job_ended: false });
    const job = await s.ctx.db
      .selectFrom('jobs')
      .select(['status', 'bundle_id'])
      .where('id', '=', t.jobId)
      .executeTakeFirstOrThrow();
    expect(job.status).toBe('revoked');
    expect(job.bundle_id).toMatch(/^pb_/);
  });

  it('revokes by token_hash, in either hex case', async () => {
    const s = await setup();
    const t = await claimedToken(s);
    const res = await post(s, 'revoke', { token_hash: t.hash.toUpperCase(), reason: 'rotating' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ jti: t.jti, job_id: t.jobId, already_revoked: false });
    expect((await post(s, 'introspect', { token: t.token })).json()).toMatchObject({
      active: false,
      code: 'ERR_TOKEN_REVOKED',
    });
    // An unclaimed token can be revoked by its hash too (the agent never saw it).
    const job = await opsJob(s.ctx);
    const row = await s.ctx.db
      .selectFrom('tokens')
      .selectAll()
      .where('job_id', '=', job.jobId)
      .where('step_id', '=', 'fetch-status')
      .executeTakeFirstOrThrow();
    const unclaimed = await post(s, 'revoke', { token_hash: row.token_hash, reason: 'not needed' });
    expect(unclaimed.json()).toMatchObject({ jti: row.jti, job_id: job.jobId, already_revoked: false });
  });

  it("another agent's token is 404 ERR_TOKEN_NOT_FOUND and stays active; the admin token may revoke any", async () => {
    const s = await setup();
    const t = await claimedToken(s);
    expect(errorOf(await post(s, 'revoke', { jti: t.jti, reason: 'mine now' }, s.other))).toEqual([
      404,
      'ERR_TOKEN_NOT_FOUND',
    ]);
    expect(errorOf(await post(s, 'revoke', { token_hash: t.hash, reason: 'mine now' }, s.other))).toEqual([
      404,
      'ERR_TOKEN_NOT_FOUND',
    ]);
    expect((await post(s, 'introspect', { token: t.token })).json()).toMatchObject({ active: true });
    // Unknown tokens look the same.
    expect(
      errorOf(await post(s, 'revoke', { jti: '00000000-0000-4000-8000-000000000000', reason: 'x' })),
    ).toEqual([404, 'ERR_TOKEN_NOT_FOUND']);

    const res = await post(s, 'revoke', { jti: t.jti, reason: 'security review' }, s.admin);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ jti: t.jti, already_revoked: false, job_ended: true });
    expect((await post(s, 'introspect', { token: t.token })).json()).toMatchObject({
      active: false,
      code: 'ERR_TOKEN_REVOKED',
    });
    const revoked = await s.ctx.db
      .selectFrom('job_events')
      .select('payload')
      .where('job_id', '=', t.jobId)
      .where('event_type', '=', 'token_revoked')
      .orderBy('seq')
      .executeTakeFirstOrThrow();
    expect(JSON.parse(revoked.payload)).toMatchObject({
      jti: t.jti,
      by: 'admin:api',
      reason: 'security review',
    });
  });

  it.each([
    [
      'both jti and token_hash',
      (t: { jti: string; hash: string }) => ({ jti: t.jti, token_hash: t.hash, reason: 'x' }),
    ],
    ['neither jti nor token_hash', () => ({ reason: 'x' })],
    ['no reason', (t: { jti: string }) => ({ jti: t.jti })],
    ['a malformed jti', () => ({ jti: 'not-a-uuid', reason: 'x' })],
    ['a malformed token_hash', () => ({ token_hash: 'abc', reason: 'x' })],
  ])('refuses a revocation with %s: 400 ERR_VALIDATION', async (_why, body) => {
    const s = await setup();
    const t = await claimedToken(s);
    expect(errorOf(await post(s, 'revoke', body(t)))).toEqual([400, 'ERR_VALIDATION']);
    expect((await post(s, 'introspect', { token: t.token })).json()).toMatchObject({ active: true });
  });

  it('an approved and claimed gated step token works like the others', async () => {
    const s = await setup();
    const job = await opsJob(s.ctx);
    for (const userId of [U.alice, U.chioma]) {
      await decideStep(s.ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId });
    }
    const res = await s.app.inject({
      method: 'POST',
      url: `/v1/jobs/${job.jobId}/steps/post-summary/token`,
      headers: s.ops,
    });
    expect(res.statusCode).toBe(200);
    const introspected = (await post(s, 'introspect', { token: res.json().token })).json();
    expect(introspected).toMatchObject({ active: true, step: 'post-summary' });
    expect(introspected.claims.scope).toEqual(
      expect.arrayContaining(['step:post-summary', 'tool:send_message']),
    );
  });

  describe('rate limiting', () => {
    it('the fourth call in a window with max 3 is 429 ERR_RATE_LIMITED, per caller', async () => {
      const s = await setup({ perCaller: 3 });
      const t = await claimedToken(s);
      for (let i = 0; i < 3; i++) {
        expect((await post(s, 'introspect', { token: t.token })).statusCode).toBe(200);
      }
      const limited = await post(s, 'introspect', { token: t.token });
      expect(errorOf(limited)).toEqual([429, 'ERR_RATE_LIMITED']);
      expect(limited.body).not.toContain(t.token);
      // Another caller has its own budget.
      expect((await post(s, 'introspect', { token: t.token }, s.admin)).statusCode).toBe(200);
      // Each route has its own budget too.
      expect((await post(s, 'redeem', { token: t.token })).statusCode).toBe(200);
    });

    it('limits unauthenticated callers too, before they reach authentication', async () => {
      const s = await setup({ failedAuth: 3 });
      for (let i = 0; i < 3; i++) {
        expect(errorOf(await post(s, 'introspect', { token: 'x' }, {}))).toEqual([
          401,
          'ERR_UNAUTHENTICATED',
        ]);
      }
      expect(errorOf(await post(s, 'introspect', { token: 'x' }, {}))).toEqual([429, 'ERR_RATE_LIMITED']);
    });
  });
});
