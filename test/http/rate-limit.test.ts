import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import { addressKey, type RateLimits, WindowCounter } from '../../src/http/rate-limit.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, opsJob, type TestEngine } from '../helpers/engine.js';
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

async function setup(rateLimits: Partial<RateLimits>) {
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
  return {
    ...e,
    app,
    ops: { authorization: `Bearer ${ops.key}` },
    other: { authorization: `Bearer ${other.key}` },
    admin: { authorization: `Bearer ${ADMIN}` },
  };
}

const errorOf = (res: { statusCode: number; json: () => unknown }) => [
  res.statusCode,
  (res.json() as { error?: { code: string } }).error?.code,
];

const bogus = (i: number) => ({ authorization: `Bearer cak_${String(i).padStart(43, 'A')}` });

describe('rate limit building blocks', () => {
  it('a window counts up to its budget, then says how long to wait; a refund gives one back', () => {
    let now = 1_000_000;
    const c = new WindowCounter(2, 60_000, () => now);
    expect([c.hit('a'), c.hit('a')]).toEqual([0, 0]);
    expect(c.hit('a')).toBe(60);
    expect(c.hit('b')).toBe(0);
    now += 30_000;
    expect(c.hit('a')).toBe(30);
    now += 30_000;
    expect(c.hit('a')).toBe(0);
    c.refund('a');
    expect([c.hit('a'), c.hit('a')]).toEqual([0, 0]);
    expect(c.hit('a')).toBe(60);
  });

  it.each([
    ['192.0.2.7', '192.0.2.7'],
    ['::ffff:192.0.2.7', '192.0.2.7'],
    ['2001:db8:1:2:aaaa:bbbb:cccc:dddd', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002:ffff::', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['1:2::3:4:5:192.0.2.7', '1:2:0:3::/64'],
  ])('counts %s as %s (IPv6 by its /64)', (ip, key) => {
    expect(addressKey(ip)).toBe(key);
  });
});

describe(`HTTP rate limits (${dialectName})`, () => {
  it('rotating a bogus Authorization header buys no fresh budget: failures share one per address', async () => {
    const s = await setup({ failedAuth: 3 });
    const attempts = [
      s.app.inject({ url: '/v1/jobs', headers: bogus(1) }),
      s.app.inject({
        method: 'POST',
        url: '/v1/tokens/introspect',
        headers: bogus(2),
        payload: { token: 'x' },
      }),
      s.app.inject({ url: '/v1/jobs/1' }),
    ];
    for (const res of await Promise.all(attempts)) expect(errorOf(res)).toEqual([401, 'ERR_UNAUTHENTICATED']);
    const limited = await s.app.inject({ url: '/v1/jobs', headers: bogus(4) });
    expect(errorOf(limited)).toEqual([429, 'ERR_RATE_LIMITED']);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
    // While this address is out of failures its attempts are not even looked up: a valid key too.
    expect(errorOf(await s.app.inject({ url: '/v1/jobs', headers: s.ops }))).toEqual([
      429,
      'ERR_RATE_LIMITED',
    ]);
    // Another address has its own failure budget, and a valid key there works.
    const there = { remoteAddress: '198.51.100.9' };
    expect(errorOf(await s.app.inject({ url: '/v1/jobs', headers: bogus(5), ...there }))).toEqual([
      401,
      'ERR_UNAUTHENTICATED',
    ]);
    expect((await s.app.inject({ url: '/v1/jobs', headers: s.ops, ...there })).statusCode).toBe(200);
  });

  it('concurrent bogus attempts cannot slip under the failure budget while they are being checked', async () => {
    const s = await setup({ failedAuth: 3 });
    const all = await Promise.all(
      Array.from({ length: 10 }, (_, i) => s.app.inject({ url: '/v1/jobs', headers: bogus(i) })),
    );
    const codes = all.map((r) => errorOf(r)[1]);
    expect(codes.filter((c) => c === 'ERR_UNAUTHENTICATED')).toHaveLength(3);
    expect(codes.filter((c) => c === 'ERR_RATE_LIMITED')).toHaveLength(7);
  });

  it('successful authentications do not use up the failure budget', async () => {
    const s = await setup({ failedAuth: 2 });
    for (let i = 0; i < 5; i++)
      expect((await s.app.inject({ url: '/v1/jobs', headers: s.ops })).statusCode).toBe(200);
    expect(errorOf(await s.app.inject({ url: '/v1/jobs', headers: bogus(1) }))).toEqual([
      401,
      'ERR_UNAUTHENTICATED',
    ]);
  });

  it('an agent is limited by who it is, from any address; others keep their budget', async () => {
    const s = await setup({ perCaller: 3 });
    const job = await opsJob(s.ctx);
    const addresses = ['192.0.2.1', '192.0.2.2', '2001:db8::1'];
    for (const remoteAddress of addresses) {
      expect(
        (await s.app.inject({ url: `/v1/jobs/${job.jobId}`, headers: s.ops, remoteAddress })).statusCode,
      ).toBe(200);
    }
    const limited = await s.app.inject({
      url: `/v1/jobs/${job.jobId}`,
      headers: s.ops,
      remoteAddress: '192.0.2.99',
    });
    expect(errorOf(limited)).toEqual([429, 'ERR_RATE_LIMITED']);
    expect(limited.headers['retry-after']).toBeDefined();
    // Another agent, and the same agent on another route, still have their budgets.
    expect(errorOf(await s.app.inject({ url: `/v1/jobs/${job.jobId}`, headers: s.other }))).toEqual([
      404,
      'ERR_JOB_NOT_FOUND',
    ]);
    expect((await s.app.inject({ url: '/v1/jobs', headers: s.ops })).statusCode).toBe(200);
    const claimed = await s.app.inject({
      method: 'POST',
      url: `/v1/jobs/${job.jobId}/steps/search-kb/token`,
      headers: s.ops,
    });
    expect(claimed.statusCode).toBe(200);
  });

  it('ADMIN_TOKEN is one caller wherever it comes from', async () => {
    const s = await setup({ perCaller: 2 });
    const introspect = (remoteAddress: string) =>
      s.app.inject({
        method: 'POST',
        url: '/v1/tokens/introspect',
        headers: s.admin,
        remoteAddress,
        payload: { token: 'not-a-token' },
      });
    expect((await introspect('192.0.2.1')).statusCode).toBe(200);
    expect((await introspect('192.0.2.2')).statusCode).toBe(200);
    expect(errorOf(await introspect('192.0.2.3'))).toEqual([429, 'ERR_RATE_LIMITED']);
  });

  it('long-polls are not starved by their own waiting: each counts once, and the calls that end them have their own budget', async () => {
    const s = await setup({ perCaller: 2 });
    const job = await opsJob(s.ctx);
    const row = await s.ctx.db
      .selectFrom('job_events')
      .select((eb) => eb.fn.max('seq').as('v'))
      .where('job_id', '=', job.jobId)
      .executeTakeFirstOrThrow();
    const polls = [1, 2].map(() =>
      s.app.inject({ url: `/v1/jobs/${job.jobId}?wait=30&after=${Number(row.v)}`, headers: s.ops }),
    );
    // Both polls wait for a change; the agent's own claim makes it, within its own budget.
    const claimed = await s.app.inject({
      method: 'POST',
      url: `/v1/jobs/${job.jobId}/steps/search-kb/token`,
      headers: s.ops,
    });
    expect(claimed.statusCode).toBe(200);
    for (const res of await Promise.all(polls)) {
      expect(res.statusCode).toBe(200);
      expect((res.json() as { version: number }).version).toBeGreaterThan(Number(row.v));
    }
    expect(errorOf(await s.app.inject({ url: `/v1/jobs/${job.jobId}`, headers: s.ops }))).toEqual([
      429,
      'ERR_RATE_LIMITED',
    ]);
  });

  it('bundles and policies, which need no credential, are limited per address', async () => {
    const s = await setup({ perAddress: 2 });
    const hash = s.ctx.policies.current()!.resolution.active.values().next().value!.hash;
    for (let i = 0; i < 2; i++) expect((await s.app.inject(`/v1/wpc/${hash}`)).statusCode).toBe(200);
    const limited = await s.app.inject(`/v1/wpc/${hash}`);
    expect(errorOf(limited)).toEqual([429, 'ERR_RATE_LIMITED']);
    expect((await s.app.inject({ url: `/v1/wpc/${hash}`, remoteAddress: '192.0.2.50' })).statusCode).toBe(
      200,
    );
    const bundle = `/v1/bundles/pb_${'A'.repeat(22)}`;
    for (let i = 0; i < 2; i++)
      expect(errorOf(await s.app.inject(bundle))).toEqual([404, 'ERR_BUNDLE_NOT_FOUND']);
    expect(errorOf(await s.app.inject(bundle))).toEqual([429, 'ERR_RATE_LIMITED']);
  });
});
