import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { authenticateAgent, createAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import { readChain } from '../../src/proofs/event-chain.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, opsJob, type TestEngine } from '../helpers/engine.js';
import { captureLogger } from '../helpers/log.js';

const ADMIN = 'admin-token-for-the-admin-route-tests-0123456789';
let e: TestEngine | null = null;
let app: FastifyInstance | null = null;

afterEach(async () => {
  await app?.close();
  app = null;
  await e?.close();
  e = null;
});

async function setup(opts: { adminToken?: string | null; perCaller?: number } = {}) {
  e = await createTestEngine();
  const logs = captureLogger('info');
  app = buildApp({
    db: e.d.db,
    keyRing: e.ctx.keyRing,
    policies: e.ctx.policies,
    log: logs.log,
    engine: e.ctx,
    adminToken: opts.adminToken === undefined ? ADMIN : opts.adminToken,
    ...(opts.perCaller ? { rateLimits: { perCaller: opts.perCaller } } : {}),
  });
  const agent = await createAgent(e.d.db, { id: OPS.executor, at: e.clock() });
  const job = await opsJob(e.ctx);
  const active = e.ctx.policies.current()!.resolution.active;
  return {
    app,
    logs,
    job,
    agentKey: agent.key,
    agent: { authorization: `Bearer ${agent.key}` },
    admin: { authorization: `Bearer ${ADMIN}` },
    triage: active.get('invoice-triage')!.hash,
    otherHash: active.get('mattermost-agent-prod')!.hash,
  };
}

/** Everything an admin route could change, so a refusal can be shown to change none of it. */
async function state() {
  const db = e!.d.db;
  const chains = await db
    .selectFrom('job_events')
    .select(['job_id', 'seq', 'event_type'])
    .orderBy('job_id')
    .orderBy('seq')
    .execute();
  return {
    agents: await db.selectFrom('agents').select(['id', 'key_hash', 'revoked_at']).orderBy('id').execute(),
    pins: await db.selectFrom('policy_pins').selectAll().orderBy('id').execute(),
    killSwitch: await db.selectFrom('kill_switch').selectAll().execute(),
    tokens: await db
      .selectFrom('tokens')
      .select(['jti', 'revoked_at', 'revoke_reason'])
      .orderBy('jti')
      .execute(),
    jobs: await db.selectFrom('jobs').select(['id', 'status']).orderBy('id').execute(),
    chains,
  };
}

type S = Awaited<ReturnType<typeof setup>>;
type Call = { method: 'GET' | 'POST'; url: string; payload?: unknown };

/** One valid request per admin route. */
const routes = (s: S): Call[] => [
  { method: 'GET', url: '/v1/admin/agents' },
  { method: 'POST', url: '/v1/admin/agents', payload: { id: 'agent:new-one', description: 'new' } },
  { method: 'POST', url: '/v1/admin/agents/revoke', payload: { id: OPS.executor, actor: 'alice' } },
  { method: 'GET', url: '/v1/admin/policies' },
  {
    method: 'POST',
    url: '/v1/admin/policies/pin',
    payload: { name: 'invoice-triage', hash: s.triage, actor: 'alice', reason: 'rollback' },
  },
  {
    method: 'POST',
    url: '/v1/admin/policies/unpin',
    payload: { name: 'invoice-triage', actor: 'alice', reason: 'fixed' },
  },
  {
    method: 'POST',
    url: '/v1/admin/tokens/revoke',
    payload: { jti: s.job.minted[0]!.jti, actor: 'alice', reason: 'leaked' },
  },
  {
    method: 'POST',
    url: '/v1/admin/kill-switch',
    payload: { paused: true, actor: 'alice', reason: 'incident' },
  },
];

describe(`admin routes: who may call them (${dialectName})`, { timeout: 120_000 }, () => {
  it.each([
    ['no credentials', () => ({})],
    ['a wrong token', () => ({ authorization: 'Bearer not-the-admin-token-but-long-enough-0000' })],
    ['the admin token with a suffix', () => ({ authorization: `Bearer ${ADMIN}x` })],
    ['the admin token in another scheme', () => ({ authorization: `Basic ${ADMIN}` })],
  ] as const)('refuse %s with 401 and change nothing', async (_why, headers) => {
    const s = await setup();
    const before = await state();
    for (const r of routes(s)) {
      const res = await s.app.inject({ ...r, headers: headers() } as never);
      expect(res.statusCode, `${r.method} ${r.url}`).toBe(401);
      expect(res.json()).toMatchObject({ error: { code: 'ERR_UNAUTHENTICATED' } });
    }
    expect(await state()).toEqual(before);
  });

  it('refuse an agent key with 403 and change nothing', async () => {
    const s = await setup();
    const before = await state();
    for (const r of routes(s)) {
      const res = await s.app.inject({ ...r, headers: s.agent } as never);
      expect(res.statusCode, `${r.method} ${r.url}`).toBe(403);
      expect(res.json()).toEqual({
        error: { code: 'ERR_FORBIDDEN', message: 'this route needs ADMIN_TOKEN' },
      });
    }
    expect(await state()).toEqual(before);
  });

  it('refuse every token when the server has no ADMIN_TOKEN', async () => {
    const s = await setup({ adminToken: null });
    const before = await state();
    for (const r of routes(s)) {
      const res = await s.app.inject({ ...r, headers: s.admin } as never);
      expect(res.statusCode, `${r.method} ${r.url}`).toBe(401);
    }
    expect(await state()).toEqual(before);
  });

  it('count the admin against its budget per route, like every authenticated caller', async () => {
    const s = await setup({ perCaller: 2 });
    for (let i = 0; i < 2; i++)
      expect(
        (await s.app.inject({ method: 'GET', url: '/v1/admin/agents', headers: s.admin })).statusCode,
      ).toBe(200);
    const over = await s.app.inject({ method: 'GET', url: '/v1/admin/agents', headers: s.admin });
    expect(over.statusCode).toBe(429);
    expect(over.headers['retry-after']).toMatch(/^\d+$/);
    expect(over.json()).toMatchObject({ error: { code: 'ERR_RATE_LIMITED' } });
    // Another route has its own budget.
    expect(
      (await s.app.inject({ method: 'GET', url: '/v1/admin/policies', headers: s.admin })).statusCode,
    ).toBe(200);
  });
});

describe(`admin routes: malformed requests (${dialectName})`, { timeout: 120_000 }, () => {
  const long = (n: number) => 'x'.repeat(n);
  it.each([
    ['/v1/admin/agents', 'an invalid agent id', { id: 'bad id with spaces' }],
    ['/v1/admin/agents', 'an unknown field', { id: 'agent:x', key: 'cak_chosen' }],
    ['/v1/admin/agents', 'a missing id', { description: 'x' }],
    ['/v1/admin/agents', 'a description that is not a string', { id: 'agent:x', description: 7 }],
    ['/v1/admin/agents', 'an oversized description', { id: 'agent:x', description: long(501) }],
    ['/v1/admin/agents', 'a description with a line break', { id: 'agent:x', description: 'a\nb' }],
    ['/v1/admin/agents/revoke', 'a missing actor', { id: OPS.executor }],
    ['/v1/admin/agents/revoke', 'an empty actor', { id: OPS.executor, actor: '' }],
    ['/v1/admin/agents/revoke', 'an oversized actor', { id: OPS.executor, actor: long(201) }],
    ['/v1/admin/agents/revoke', 'an actor with a bidi control', { id: OPS.executor, actor: 'ali\u202ece' }],
    [
      '/v1/admin/agents/revoke',
      'a reason with an escape',
      { id: OPS.executor, actor: 'a', reason: '\u001b[31m' },
    ],
    ['/v1/admin/agents/revoke', 'an oversized reason', { id: OPS.executor, actor: 'a', reason: long(501) }],
    [
      '/v1/admin/policies/pin',
      'a malformed hash',
      { name: 'invoice-triage', hash: 'abc', actor: 'a', reason: 'r' },
    ],
    [
      '/v1/admin/policies/pin',
      'an invalid name',
      { name: 'Invoice Triage', hash: 'TRIAGE', actor: 'a', reason: 'r' },
    ],
    ['/v1/admin/policies/pin', 'a missing reason', { name: 'invoice-triage', hash: 'TRIAGE', actor: 'a' }],
    [
      '/v1/admin/policies/pin',
      'an empty reason',
      { name: 'invoice-triage', hash: 'TRIAGE', actor: 'a', reason: '' },
    ],
    [
      '/v1/admin/policies/pin',
      'a null hash',
      { name: 'invoice-triage', hash: null, actor: 'a', reason: 'r' },
    ],
    [
      '/v1/admin/policies/pin',
      'a reason with a NUL',
      { name: 'invoice-triage', hash: 'TRIAGE', actor: 'a', reason: 'r\u0000' },
    ],
    [
      '/v1/admin/policies/unpin',
      'a hash given to unpin',
      { name: 'invoice-triage', hash: 'TRIAGE', actor: 'a', reason: 'r' },
    ],
    ['/v1/admin/tokens/revoke', 'neither jti nor token_hash', { actor: 'a', reason: 'r' }],
    [
      '/v1/admin/tokens/revoke',
      'both jti and token_hash',
      { jti: 'JTI', token_hash: long(64).replace(/x/g, 'a'), actor: 'a', reason: 'r' },
    ],
    ['/v1/admin/tokens/revoke', 'a malformed jti', { jti: 'not-a-jti', actor: 'a', reason: 'r' }],
    ['/v1/admin/tokens/revoke', 'a malformed token_hash', { token_hash: 'zz', actor: 'a', reason: 'r' }],
    ['/v1/admin/kill-switch', 'paused as a string', { paused: 'true', actor: 'a' }],
    ['/v1/admin/kill-switch', 'a missing paused', { actor: 'a', reason: 'r' }],
    [
      '/v1/admin/kill-switch',
      'a reason over 300 characters',
      { paused: true, actor: 'a', reason: long(301) },
    ],
    [
      '/v1/admin/kill-switch',
      'a reason with a line break',
      { paused: true, actor: 'a', reason: 'x\n@channel' },
    ],
    ['/v1/admin/kill-switch', 'an array body', [true]],
  ] as const)('%s: %s is 400 ERR_VALIDATION and changes nothing', async (url, _why, raw) => {
    const s = await setup();
    // Placeholders for values only known once the engine runs.
    const payload = JSON.parse(
      JSON.stringify(raw)
        .replaceAll('"TRIAGE"', JSON.stringify(s.triage))
        .replaceAll('"JTI"', JSON.stringify(s.job.minted[0]!.jti)),
    ) as unknown;
    const before = await state();
    const res = await s.app.inject({ method: 'POST', url, headers: s.admin, payload: payload as object });
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json()).toMatchObject({ error: { code: 'ERR_VALIDATION' } });
    expect(await state()).toEqual(before);
  });

  it.each([
    ['is not JSON', '{"id": "agent:x"'],
    ['is empty', ''],
  ])('a body that %s is 400 ERR_BAD_REQUEST and changes nothing', async (_why, body) => {
    const s = await setup();
    const before = await state();
    for (const url of [
      '/v1/admin/agents',
      '/v1/admin/policies/pin',
      '/v1/admin/tokens/revoke',
      '/v1/admin/kill-switch',
    ]) {
      const res = await s.app.inject({
        method: 'POST',
        url,
        headers: { ...s.admin, 'content-type': 'application/json' },
        payload: body,
      });
      expect(res.statusCode, url).toBe(400);
      expect(res.json()).toMatchObject({ error: { code: 'ERR_BAD_REQUEST' } });
    }
    expect(await state()).toEqual(before);
  });

  it('a body over 64 KiB is 413 and changes nothing', async () => {
    const s = await setup();
    const before = await state();
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/agents',
      headers: s.admin,
      payload: { id: 'agent:x', description: 'x'.repeat(70_000) },
    });
    expect(res.statusCode).toBe(413);
    expect(await state()).toEqual(before);
  });
});

describe(`admin routes: what they do (${dialectName})`, { timeout: 120_000 }, () => {
  it('agents: create answers the key once (no-store), list never shows it, a second create is 409', async () => {
    const s = await setup();
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/agents',
      headers: s.admin,
      payload: { id: 'agent:second', description: 'the second agent' },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json<{ id: string; key: string; key_hint: string }>();
    expect(body).toEqual({
      id: 'agent:second',
      key: expect.stringMatching(/^cak_[A-Za-z0-9_-]{43}$/),
      key_hint: body.key.slice(0, 8),
      description: 'the second agent',
      created_at: e!.clock().toISOString(),
      revoked_at: null,
    });
    expect((await authenticateAgent(e!.d.db, body.key))?.id).toBe('agent:second');

    const list = await s.app.inject({ method: 'GET', url: '/v1/admin/agents', headers: s.admin });
    expect(list.headers['cache-control']).toBe('no-store');
    expect(list.body).not.toContain(body.key);
    expect(list.json<{ agents: { id: string }[] }>().agents.map((a) => a.id)).toEqual([
      OPS.executor,
      'agent:second',
    ]);
    const again = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/agents',
      headers: s.admin,
      payload: { id: 'agent:second' },
    });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ error: { code: 'ERR_AGENT_EXISTS' } });
    // Neither secret reaches the log.
    expect(s.logs.text()).not.toContain(body.key);
    expect(s.logs.text()).not.toContain(ADMIN);
  });

  it('agents revoke: the key stops working, its tokens are revoked by the named operator', async () => {
    const s = await setup();
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/agents/revoke',
      headers: s.admin,
      payload: { id: OPS.executor, actor: 'oncall-lead', reason: 'laptop stolen' },
    });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json<{ tokens: { jti: string; job_id: number }[]; jobs_ended: number[] }>();
    expect(body).toMatchObject({
      id: OPS.executor,
      revoked_at: expect.any(String),
      jobs_ended: [s.job.jobId],
    });
    expect(body.tokens.map((t) => t.jti).sort()).toEqual(s.job.minted.map((m) => m.jti).sort());
    expect(await authenticateAgent(e!.d.db, s.agentKey)).toBeNull();
    // The first revocation ends the job, which revokes the rest with it; the job ends by the operator's hand.
    const chain = (await readChain(e!.d.db, s.job.jobId)).map((x) => ({
      type: x.event_type,
      payload: JSON.parse(x.payload) as Record<string, unknown>,
    }));
    const revoked = chain.filter((x) => x.type === 'token_revoked');
    expect(revoked).toHaveLength(3);
    expect(revoked[0]!.payload).toMatchObject({
      by: 'admin:oncall-lead',
      reason: `agent ${OPS.executor} revoked: laptop stolen`,
    });
    expect(chain.at(-1)).toMatchObject({
      type: 'job_ended',
      payload: { status: 'revoked', reason: expect.stringContaining('revoked by admin:oncall-lead') },
    });
    const unknown = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/agents/revoke',
      headers: s.admin,
      payload: { id: 'agent:nobody', actor: 'a' },
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ error: { code: 'ERR_AGENT_NOT_FOUND' } });
  });

  it('policies: pin and unpin are recorded with the named actor and this server applies them at once', async () => {
    const s = await setup();
    const pin = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/policies/pin',
      headers: s.admin,
      payload: { name: 'invoice-triage', hash: s.triage, actor: 'alice', reason: 'ttl broke on-call' },
    });
    expect(pin.statusCode, pin.body).toBe(200);
    expect(pin.json()).toEqual({
      id: 1,
      policy_name: 'invoice-triage',
      policy_hash_b64u: s.triage,
      actor: 'alice',
      reason: 'ttl broke on-call',
      created_at: e!.clock().toISOString(),
    });
    expect(e!.ctx.policies.current()!.resolution.active.get('invoice-triage')).toMatchObject({
      origin: 'pin',
    });
    const list = await s.app.inject({ method: 'GET', url: '/v1/admin/policies', headers: s.admin });
    const triage = list
      .json<{ policies: { name: string; origin: string; pins: unknown[] }[] }>()
      .policies.find((p) => p.name === 'invoice-triage');
    expect(triage).toMatchObject({
      origin: 'pin',
      pins: [{ id: 1, actor: 'alice', reason: 'ttl broke on-call' }],
    });

    const conflict = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/policies/pin',
      headers: s.admin,
      payload: { name: 'invoice-triage', hash: s.otherHash, actor: 'alice', reason: 'wrong one' },
    });
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json()).toMatchObject({ error: { code: 'ERR_POLICY_CONFLICT' } });

    const unpin = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/policies/unpin',
      headers: s.admin,
      payload: { name: 'invoice-triage', actor: 'bob', reason: 'fixed' },
    });
    expect(unpin.json()).toMatchObject({ id: 2, policy_hash_b64u: null, actor: 'bob', reason: 'fixed' });
    expect(e!.ctx.policies.current()!.resolution.active.get('invoice-triage')).toMatchObject({
      origin: 'file',
    });
    const never = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/policies/unpin',
      headers: s.admin,
      payload: { name: 'never-pinned', actor: 'bob', reason: 'x' },
    });
    expect(never.json()).toMatchObject({ error: { code: 'ERR_POLICY_NOT_FOUND' } });
  });

  it('tokens revoke and the kill switch record the named actor in the job chain', async () => {
    const s = await setup();
    const pause = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/kill-switch',
      headers: s.admin,
      payload: { paused: true, actor: 'cli:alice', reason: 'incident 7' },
    });
    expect(pause.json()).toEqual({
      paused: true,
      actor: 'admin:cli:alice',
      reason: 'incident 7',
      changed_at: e!.clock().toISOString(),
      changed: true,
      open_jobs: 1,
    });
    const resume = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/kill-switch',
      headers: s.admin,
      payload: { paused: false, actor: 'cli:alice' },
    });
    expect(resume.json()).toMatchObject({
      paused: false,
      actor: 'admin:cli:alice',
      reason: null,
      changed: true,
    });

    const minted = s.job.minted[0]!;
    const revoke = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/tokens/revoke',
      headers: s.admin,
      payload: { jti: minted.jti, actor: 'sec-oncall', reason: 'leaked in a log' },
    });
    expect(revoke.json()).toEqual({
      jti: minted.jti,
      job_id: s.job.jobId,
      already_revoked: false,
      job_ended: true,
    });
    const chain = await readChain(e!.d.db, s.job.jobId);
    const payloadOf = (type: string) =>
      JSON.parse(chain.find((x) => x.event_type === type)!.payload) as unknown;
    expect(payloadOf('job_paused')).toEqual({ admin: 'cli:alice', reason: 'incident 7' });
    expect(payloadOf('job_resumed')).toEqual({ admin: 'cli:alice', reason: '' });
    expect(payloadOf('token_revoked')).toMatchObject({
      jti: minted.jti,
      by: 'admin:sec-oncall',
      reason: 'leaked in a log',
    });
    const again = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/tokens/revoke',
      headers: s.admin,
      payload: { jti: minted.jti, actor: 'sec-oncall', reason: 'again' },
    });
    expect(again.json()).toMatchObject({ already_revoked: true, job_ended: false });
  });
});
