import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import { confirmRequester } from '../../src/approvals/confirm-requester.js';
import { decideStep } from '../../src/approvals/record-decision.js';
import { OPENAPI_PATH } from '../../src/http/openapi.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, type TestEngine, U } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';
import { type OpenApiDocument, openApiPath, recordAnswers, undocumentedAnswers } from '../helpers/openapi.js';
import { receiptFor } from '../helpers/receipts.js';

const ADMIN = 'admin-token-for-openapi-tests-0123456789';
const COMMAND_TOKEN = 'cmdtoken0123456789abcdefgh';
const MM = (c: string) => c.repeat(26);

/** The operations of this part of the product; each must have answered with success below. */
const EXERCISED = [
  'getHealth',
  'getReadiness',
  'getJwks',
  'getOpenApi',
  'getPolicyVersion',
  'getPlan',
  'getBundle',
  'createJob',
  'getJob',
  'listJobs',
  'claimStepToken',
  'reportStepResult',
  'closeJob',
  'introspectToken',
  'redeemToken',
  'revokeToken',
  'getPauseState',
  'pause',
  'resume',
  'listAgents',
  'createAgent',
  'revokeAgent',
  'listPolicies',
  'pinPolicy',
  'unpinPolicy',
  'adminRevokeToken',
  'setKillSwitch',
  'mattermostCommand',
  'mattermostAction',
  'mattermostDialog',
];

const opened: { app: FastifyInstance; e: TestEngine }[] = [];
afterEach(async () => {
  for (const { app, e } of opened.splice(0)) {
    await app.close();
    await e.close();
  }
});

interface View {
  job_id: number;
  version: number;
  plan_hash_b64u: string;
  policy: { policy_hash_b64u: string };
  bundle_id: string | null;
  steps: { id: string; gate: string }[];
}

describe(`real answers against /openapi.json (${dialectName})`, () => {
  it('every answer of a whole job, its tokens, the kill switch, the admin routes and the Mattermost callbacks is what the document says, field for field', async () => {
    const e = await createTestEngine();
    const { ctx } = e;
    const app = buildApp({
      db: ctx.db,
      keyRing: ctx.keyRing,
      policies: ctx.policies,
      log: silentLogger(),
      engine: ctx,
      adminToken: ADMIN,
      rateLimits: { perCaller: 10_000, perAddress: 10_000, failedAuth: 10_000 },
      mattermostActions: {
        secret: new Uint8Array(randomBytes(32)),
        publicUrl: 'http://127.0.0.1:9',
        chat: { openDialog: async () => {} },
      },
      slashCommand: { token: COMMAND_TOKEN, chat: null },
    });
    opened.push({ app, e });
    const answers = recordAnswers(app);
    const ops = {
      authorization: `Bearer ${(await createAgent(ctx.db, { id: OPS.executor, at: ctx.clock() })).key}`,
    };
    const admin = { authorization: `Bearer ${ADMIN}` };
    const call = async (
      method: 'GET' | 'POST',
      url: string,
      expected: number,
      opts: { headers?: Record<string, string>; payload?: object | string } = {},
    ) => {
      const res = await app.inject({
        method,
        url,
        headers: opts.headers ?? ops,
        ...(opts.payload === undefined ? {} : { payload: opts.payload }),
      });
      expect(res.statusCode, `${method} ${url}: ${res.body.slice(0, 300)}`).toBe(expected);
      return res;
    };
    const runbook = {
      channel_id: OPS.channel,
      requester_id: U.grace,
      runbook: {
        name: 'service-context',
        params: { service: 'payments-api', query: 'latency spikes', notify_channel: 'payments-oncall' },
      },
    };
    const job = async () => {
      const created = (await call('POST', '/v1/jobs', 201, { payload: runbook })).json() as View;
      expect((await confirmRequester(ctx, { jobId: created.job_id, userId: U.grace })).code).toBe(
        'REQUESTER_CONFIRMED',
      );
      return created;
    };
    const claim = async (jobId: number, step: string) =>
      (await call('POST', `/v1/jobs/${jobId}/steps/${step}/token`, 200)).json() as {
        token: string;
        jti: string;
        run_id: string;
        event_hash_b64u: string;
      };
    const succeed = (jobId: number, step: string, c: { run_id: string; event_hash_b64u: string }) =>
      call('POST', `/v1/jobs/${jobId}/steps/${step}/result`, 200, {
        payload: {
          status: 'succeeded',
          summary: 'done',
          receipts: [receiptFor({ runId: c.run_id, eventHash: c.event_hash_b64u })],
        },
      });
    const approve = async (jobId: number) => {
      for (const userId of [U.alice, U.chioma])
        expect(
          (await decideStep(ctx, { kind: 'approve', jobId, step: 'post-summary', userId })).accepted,
        ).toBe(true);
    };

    // Probes, keys, the document.
    await call('GET', '/healthz', 200);
    await call('GET', '/readyz', 200, { headers: {} });
    await call('GET', '/readyz', 200, { headers: admin });
    await call('GET', '/readyz', 401, {
      headers: { authorization: 'Bearer wrong-token-wrong-token-wrong-token' },
    });
    await call('GET', '/.well-known/jwks.json', 200, { headers: {} });
    const doc = (await call('GET', OPENAPI_PATH, 200, { headers: {} })).json() as OpenApiDocument;

    // A whole job: submitted, looked at, every step claimed, redeemed and reported, sealed.
    const a = await job();
    await call('GET', `/v1/jobs/${a.job_id}`, 200);
    await call('GET', `/v1/jobs/${a.job_id}?wait=1&after=0`, 200);
    await call('GET', '/v1/jobs?ready=1', 200);
    await call('GET', '/v1/jobs', 200);
    await call('GET', `/v1/jobs/${a.job_id}?wait=31`, 400);
    await call('GET', '/v1/jobs/999999', 404);
    await call('GET', `/v1/wpc/${a.policy.policy_hash_b64u}`, 200, { headers: {} });
    await call('GET', `/v1/wpc/${'A'.repeat(43)}`, 404, { headers: {} });
    await call('GET', '/v1/wpc/short', 400, { headers: {} });
    await call('GET', `/v1/plans/${a.plan_hash_b64u}`, 200, { headers: {} });
    await call('POST', `/v1/jobs/${a.job_id}/steps/post-summary/token`, 409);
    await call('POST', `/v1/jobs/${a.job_id}/steps/no-such-step/token`, 404);
    for (const step of a.steps.filter((s) => s.gate === 'auto')) {
      const c = await claim(a.job_id, step.id);
      await call('POST', `/v1/jobs/${a.job_id}/steps/${step.id}/token`, 409);
      await call('POST', '/v1/tokens/introspect', 200, { payload: { token: c.token } });
      await call('POST', '/v1/tokens/redeem', 200, { payload: { token: c.token } });
      await call('POST', '/v1/tokens/redeem', 409, { payload: { token: c.token } });
      await call('POST', '/v1/tokens/introspect', 200, { payload: { token: c.token } });
      await succeed(a.job_id, step.id, c);
    }
    await approve(a.job_id);
    const gated = await claim(a.job_id, 'post-summary');
    await call('POST', `/v1/jobs/${a.job_id}/steps/post-summary/result`, 422, {
      payload: { status: 'succeeded' },
    });
    await succeed(a.job_id, 'post-summary', gated);
    const ended = (await call('GET', `/v1/jobs/${a.job_id}`, 200)).json() as View;
    expect(ended.bundle_id).toMatch(/^pb_/);
    await call('GET', `/v1/bundles/${ended.bundle_id}`, 200, { headers: {} });
    await call('GET', `/v1/bundles/${ended.bundle_id}`, 200, { headers: { accept: 'text/html' } });
    await call('GET', '/v1/bundles/pb_AAAAAAAAAAAAAAAAAAAAAA', 404, { headers: {} });
    await call('POST', `/v1/jobs/${a.job_id}/close`, 409);
    await call('POST', '/v1/tokens/redeem', 401, { payload: { token: 'not.a.token' } });

    // A job closed early, one whose token is revoked, bad bodies.
    const b = await job();
    await call('POST', `/v1/jobs/${b.job_id}/close`, 200, { payload: { reason: 'not needed' } });
    const c = await job();
    await approve(c.job_id);
    const token = await claim(c.job_id, 'post-summary');
    await call('POST', '/v1/tokens/revoke', 200, { payload: { jti: token.jti, reason: 'wrong target' } });
    await call('POST', '/v1/tokens/revoke', 200, {
      headers: admin,
      payload: { jti: token.jti, reason: 'again' },
    });
    await call('POST', '/v1/tokens/revoke', 404, {
      payload: { jti: '00000000-0000-4000-8000-000000000000', reason: 'x' },
    });
    await call('POST', '/v1/tokens/revoke', 400, { payload: { reason: 'neither' } });
    await call('POST', '/v1/jobs', 400, { payload: { channel_id: 'nope' } });
    await call('POST', '/v1/jobs', 403, {
      payload: { channel_id: MM('z'), requester_id: U.grace, runbook: { name: 'x' } },
    });
    await call('POST', '/v1/jobs', 415, {
      payload: '<job/>',
      headers: { ...ops, 'content-type': 'application/xml' },
    });
    await call('POST', '/v1/jobs', 400, {
      payload: '{',
      headers: { ...ops, 'content-type': 'application/json' },
    });

    // The kill switch.
    await call('GET', '/v1/admin/pause', 200, { headers: admin });
    await call('GET', '/v1/admin/pause', 403);
    await call('POST', '/v1/admin/pause', 200, { headers: admin });
    const d = (await call('GET', `/v1/jobs/${c.job_id}`, 200)).json() as View;
    expect(d.job_id).toBe(c.job_id);
    await call('POST', '/v1/jobs', 503, { payload: runbook });
    await call('POST', '/v1/admin/resume', 200, { headers: admin, payload: { reason: 'all clear' } });

    // What the CLI does while the server holds the database: agents, pins, token revocation.
    await call('GET', '/v1/admin/agents', 403);
    const second = (
      await call('POST', '/v1/admin/agents', 201, {
        headers: admin,
        payload: { id: 'agent:openapi-second', description: 'a second agent' },
      })
    ).json() as { key: string; key_hint: string };
    expect(second.key.startsWith(second.key_hint)).toBe(true);
    await call('POST', '/v1/admin/agents', 409, { headers: admin, payload: { id: 'agent:openapi-second' } });
    await call('POST', '/v1/admin/agents', 400, { headers: admin, payload: { id: '-not an id' } });
    const agents = (await call('GET', '/v1/admin/agents', 200, { headers: admin })).json() as {
      agents: { id: string }[];
    };
    expect(agents.agents.map((x) => x.id).sort()).toEqual(['agent:openapi-second', OPS.executor]);
    await call('POST', '/v1/admin/agents/revoke', 404, {
      headers: admin,
      payload: { id: 'agent:nobody', actor: 'alice' },
    });
    type Report = { policies: { name: string; active_hash: string | null; pins: unknown[] }[] };
    const report = (await call('GET', '/v1/admin/policies', 200, { headers: admin })).json() as Report;
    const mine = report.policies.find((p) => p.active_hash === a.policy.policy_hash_b64u)!;
    const other = report.policies.find((p) => p.name !== mine.name && p.active_hash !== null)!;
    expect(other).toBeDefined();
    const pin = { name: mine.name, actor: 'alice', reason: 'hold this version' };
    await call('POST', '/v1/admin/policies/pin', 200, {
      headers: admin,
      payload: { ...pin, hash: a.policy.policy_hash_b64u },
    });
    await call('POST', '/v1/admin/policies/pin', 409, {
      headers: admin,
      payload: { ...pin, hash: other.active_hash },
    });
    await call('POST', '/v1/admin/policies/pin', 404, {
      headers: admin,
      payload: { ...pin, hash: 'A'.repeat(43) },
    });
    const pinned = (await call('GET', '/v1/admin/policies', 200, { headers: admin })).json() as Report;
    expect(pinned.policies.find((p) => p.name === mine.name)!.pins).toHaveLength(1);
    await call('POST', '/v1/admin/policies/unpin', 200, { headers: admin, payload: pin });
    await call('POST', '/v1/admin/policies/unpin', 404, {
      headers: admin,
      payload: { ...pin, name: 'never-pinned' },
    });
    const f = await job();
    await approve(f.job_id);
    const fToken = await claim(f.job_id, 'post-summary');
    const adminRevoke = { jti: fToken.jti, actor: 'alice', reason: 'wrong target' };
    const revoked = (
      await call('POST', '/v1/admin/tokens/revoke', 200, { headers: admin, payload: adminRevoke })
    ).json() as { job_ended: boolean };
    expect(revoked.job_ended).toBe(true);
    const twice = (
      await call('POST', '/v1/admin/tokens/revoke', 200, { headers: admin, payload: adminRevoke })
    ).json() as { already_revoked: boolean };
    expect(twice.already_revoked).toBe(true);
    await call('POST', '/v1/admin/tokens/revoke', 404, {
      headers: admin,
      payload: { ...adminRevoke, jti: '00000000-0000-4000-8000-000000000000' },
    });
    await call('POST', '/v1/admin/tokens/revoke', 400, {
      headers: admin,
      payload: { actor: 'alice', reason: 'neither' },
    });
    const g = await job();
    const paused = (
      await call('POST', '/v1/admin/kill-switch', 200, {
        headers: admin,
        payload: { paused: true, actor: 'cli:alice', reason: 'drill' },
      })
    ).json() as { changed: boolean; open_jobs: number };
    expect(paused.changed).toBe(true);
    expect(paused.open_jobs).toBeGreaterThan(0);
    await call('POST', '/v1/admin/kill-switch', 200, {
      headers: admin,
      payload: { paused: false, actor: 'cli:alice' },
    });

    // What Mattermost sends back.
    const form = (text: string) =>
      new URLSearchParams({
        trigger_id: 'dHJpZ2dlcg==',
        user_id: U.grace,
        user_name: 'grace',
        channel_id: OPS.channel,
        team_domain: 'ops',
        command: '/claw',
        text,
      }).toString();
    const formHeaders = (auth: string) => ({
      authorization: auth,
      'content-type': 'application/x-www-form-urlencoded',
    });
    await call('POST', '/v1/mattermost/command', 200, {
      headers: formHeaders(`Token ${COMMAND_TOKEN}`),
      payload: form('help'),
    });
    await call('POST', '/v1/mattermost/command', 401, {
      headers: formHeaders('Token wrongwrongwrongwrongwrong1'),
      payload: form('help'),
    });
    const click = { user_id: U.alice, post_id: MM('p'), channel_id: OPS.channel, context: { job: 1 } };
    await call('POST', '/v1/mattermost/actions', 200, { headers: {}, payload: click });
    await call('POST', '/v1/mattermost/actions', 400, { headers: {}, payload: { user_id: 'x' } });
    const dialog = {
      user_id: U.alice,
      channel_id: OPS.channel,
      state: 'forged',
      submission: { reason: 'no' },
    };
    await call('POST', '/v1/mattermost/dialogs', 200, { headers: {}, payload: dialog });
    await call('POST', '/v1/mattermost/dialogs', 200, {
      headers: {},
      payload: { ...dialog, cancelled: true },
    });

    // Revoking the agent with a live token: its token revoked, its jobs ended.
    await approve(g.job_id);
    const gToken = await claim(g.job_id, 'post-summary');
    const gone = (
      await call('POST', '/v1/admin/agents/revoke', 200, {
        headers: admin,
        payload: { id: OPS.executor, actor: 'alice', reason: 'key leaked' },
      })
    ).json() as { tokens: { jti: string }[]; jobs_ended: number[] };
    expect(gone.tokens.map((t) => t.jti)).toContain(gToken.jti);
    expect(gone.jobs_ended).toContain(g.job_id);

    expect(undocumentedAnswers(doc, answers)).toEqual([]);
    const succeeded = new Set(
      answers
        .filter((x) => x.status < 300 && x.route !== undefined)
        .map((x) => doc.paths[openApiPath(x.route!)]?.[x.method.toLowerCase()]?.operationId),
    );
    expect(EXERCISED.filter((id) => !succeeded.has(id))).toEqual([]);
    // Refusals carried their codes: the document was checked against some of each kind.
    const statuses = new Set(answers.map((x) => x.status));
    for (const s of [400, 401, 403, 404, 409, 415, 422, 503]) expect(statuses).toContain(s);
  }, 120_000);
});
