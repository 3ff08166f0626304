import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import { pauseState } from '../../src/jobs/kill-switch.js';
import { readChain } from '../../src/proofs/event-chain.js';
import { cli, stateEnv } from '../helpers/cli.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, opsJob, type TestEngine } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';

const ADMIN = 'admin-token-for-the-kill-switch-tests-0123456789';
let e: TestEngine | null = null;
let app: FastifyInstance | null = null;

afterEach(async () => {
  await app?.close();
  app = null;
  await e?.close();
  e = null;
});

async function setup() {
  e = await createTestEngine();
  app = buildApp({
    db: e.d.db,
    keyRing: e.ctx.keyRing,
    policies: e.ctx.policies,
    log: silentLogger(),
    engine: e.ctx,
    adminToken: ADMIN,
  });
  const agent = await createAgent(e.d.db, { id: 'agent:ops-mattermost-1', at: new Date() });
  const job = await opsJob(e.ctx);
  return {
    app,
    agent: { authorization: `Bearer ${agent.key}` },
    admin: { authorization: `Bearer ${ADMIN}` },
    job,
  };
}

const marks = async (jobId: number) =>
  (await readChain(e!.d.db, jobId))
    .map((x) => x.event_type)
    .filter((t) => t === 'job_paused' || t === 'job_resumed');

describe(`the kill switch over HTTP (${dialectName})`, () => {
  it('ADMIN_TOKEN reads, pauses and resumes; saying it twice changes nothing', async () => {
    const s = await setup();
    const read = await s.app.inject({ method: 'GET', url: '/v1/admin/pause', headers: s.admin });
    expect(read.statusCode).toBe(200);
    expect(read.json()).toEqual({ paused: false, actor: null, reason: null, changed_at: null });

    const paused = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/pause',
      headers: s.admin,
      payload: { reason: 'incident 9' },
    });
    expect(paused.statusCode, paused.body).toBe(200);
    expect(paused.json()).toMatchObject({
      paused: true,
      actor: 'admin:api',
      reason: 'incident 9',
      changed: true,
      open_jobs: 1,
    });
    const again = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/pause',
      headers: s.admin,
      payload: { reason: 'x' },
    });
    expect(again.json()).toMatchObject({ paused: true, reason: 'incident 9', changed: false, open_jobs: 0 });
    expect(await marks(s.job.jobId)).toEqual(['job_paused']);
    // Work is refused while paused, over the same API.
    const run = await s.app.inject({
      method: 'POST',
      url: `/v1/jobs/${s.job.jobId}/steps/search-kb/token`,
      headers: s.agent,
    });
    expect(run.statusCode).toBe(503);

    const resumed = await s.app.inject({ method: 'POST', url: '/v1/admin/resume', headers: s.admin });
    expect(resumed.statusCode, resumed.body).toBe(200);
    expect(resumed.json()).toMatchObject({ paused: false, changed: true, open_jobs: 1 });
    const twice = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/resume',
      headers: s.admin,
      payload: {},
    });
    expect(twice.json()).toMatchObject({ paused: false, changed: false });
    expect(await marks(s.job.jobId)).toEqual(['job_paused', 'job_resumed']);
  });

  it.each([
    ['no credentials', {}],
    ['a wrong token', { authorization: 'Bearer not-the-admin-token' }],
    ['the admin token with a suffix', { authorization: `Bearer ${ADMIN}x` }],
  ] as const)('refuses %s with 401 and changes nothing', async (_why, headers) => {
    const s = await setup();
    for (const [method, url] of [
      ['GET', '/v1/admin/pause'],
      ['POST', '/v1/admin/pause'],
      ['POST', '/v1/admin/resume'],
    ] as const) {
      const res = await s.app.inject({
        method,
        url,
        headers,
        ...(method === 'POST' ? { payload: { reason: 'r' } } : {}),
      });
      expect(res.statusCode, `${method} ${url}`).toBe(401);
      expect(res.body).not.toContain('paused');
    }
    expect((await pauseState(e!.d.db)).paused).toBe(false);
    expect(await marks(s.job.jobId)).toEqual([]);
  });

  it('refuses an agent key with 403 and changes nothing', async () => {
    const s = await setup();
    for (const url of ['/v1/admin/pause', '/v1/admin/resume']) {
      const res = await s.app.inject({ method: 'POST', url, headers: s.agent, payload: { reason: 'r' } });
      expect(res.statusCode, url).toBe(403);
      expect(res.json()).toMatchObject({ error: { code: 'ERR_FORBIDDEN' } });
    }
    expect((await s.app.inject({ method: 'GET', url: '/v1/admin/pause', headers: s.agent })).statusCode).toBe(
      403,
    );
    expect((await pauseState(e!.d.db)).paused).toBe(false);
    expect(await marks(s.job.jobId)).toEqual([]);
  });

  it.each([
    ['a control character', { reason: 'incident\u0000 9' }],
    ['a line break', { reason: 'incident\n@channel' }],
    ['a bidi control', { reason: 'abc\u202edcba' }],
    ['an escape', { reason: '\u001b[31mred' }],
    ['too long a reason', { reason: 'x'.repeat(301) }],
    ['a reason that is not a string', { reason: 42 }],
    ['an unknown field', { reason: 'r', paused: false }],
    ['an array', ['pause']],
  ])('refuses %s with 400 and changes nothing', async (_why, payload) => {
    const s = await setup();
    const res = await s.app.inject({ method: 'POST', url: '/v1/admin/pause', headers: s.admin, payload });
    expect(res.statusCode, res.body).toBe(400);
    expect((await pauseState(e!.d.db)).paused).toBe(false);
    expect(await marks(s.job.jobId)).toEqual([]);
  });

  it('refuses a malformed JSON body with 400 and changes nothing', async () => {
    const s = await setup();
    const res = await s.app.inject({
      method: 'POST',
      url: '/v1/admin/pause',
      headers: { ...s.admin, 'content-type': 'application/json' },
      payload: '{"reason": "r"',
    });
    expect(res.statusCode).toBe(400);
    expect((await pauseState(e!.d.db)).paused).toBe(false);
  });
});

describe(`the kill switch at the CLI (${dialectName})`, () => {
  it('pause --status, pause <reason>, pause again, resume', async () => {
    const { env, db } = await stateEnv();
    try {
      const status = await cli(['pause', '--status'], env);
      expect(status.code, status.err).toBe(0);
      expect(JSON.parse(status.out)).toMatchObject({ paused: false });

      const paused = await cli(['pause', 'incident', '12'], env);
      expect(paused.code, paused.err).toBe(0);
      expect(JSON.parse(paused.out)).toMatchObject({
        changed: true,
        paused: true,
        reason: 'incident 12',
        actor: 'admin:cli:tester',
      });
      expect(JSON.parse((await cli(['pause', '--status'], env)).out)).toMatchObject({
        paused: true,
        reason: 'incident 12',
      });
      expect(JSON.parse((await cli(['pause', 'again'], env)).out)).toMatchObject({
        changed: false,
        reason: 'incident 12',
      });

      const resumed = await cli(['resume'], env);
      expect(resumed.code, resumed.err).toBe(0);
      expect(JSON.parse(resumed.out)).toMatchObject({ changed: true, paused: false });
      expect(JSON.parse((await cli(['pause', '--status'], env)).out)).toMatchObject({ paused: false });
    } finally {
      await db?.close();
    }
  });

  it.each([
    ['a control character', ['incident\u0000']],
    ['a line break', ['incident\n@channel']],
    ['a bidi control', ['abc\u202edcba']],
    ['too long a reason', ['x'.repeat(301)]],
  ])('refuses %s, and work stays running', async (_why, words) => {
    const { env, db } = await stateEnv();
    try {
      const res = await cli(['pause', ...words], env);
      expect(res.code).not.toBe(0);
      expect(res.out).toBe('');
      expect(res.err).toContain('one line of plain text');
      expect(JSON.parse((await cli(['pause', '--status'], env)).out)).toMatchObject({ paused: false });
    } finally {
      await db?.close();
    }
  });
});
