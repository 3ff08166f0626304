import { inspect } from 'node:util';
import {
  API_ERROR_CODES,
  ClawApiError,
  ClawClient,
  CLIENT_ROUTES,
  type ClaimedToken,
  isClawError,
  type JobStepView,
  type JobView,
} from '@claw-approvals/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { ERROR_STATUS } from '../../src/errors.js';
import { dialectName } from '../helpers/db.js';
import { type ClientWorld, clientWorld, GATED, SERVICE_CONTEXT } from './client-world.js';

let cw: ClientWorld;
beforeAll(async () => {
  cw = await clientWorld();
});
afterAll(async () => {
  await cw.close();
});

const shown = (err: unknown) =>
  [String(err), JSON.stringify(err), inspect(err, { depth: 6 }), (err as Error).stack ?? ''].join('\n');

// Each type's keys, checked by the compiler against the interface (none missing, none extra).
const JOB_VIEW_KEYS = {
  id: 1,
  job_id: 1,
  version: 1,
  status: 1,
  origin: 1,
  channel_id: 1,
  root_post_id: 1,
  requester_id: 1,
  executor: 1,
  runbook: 1,
  policy: 1,
  plan_hash_b64u: 1,
  created_at: 1,
  expires_at: 1,
  ended_at: 1,
  end_reason: 1,
  bundle_id: 1,
  steps: 1,
} satisfies Record<keyof JobView, 1>;
const STEP_KEYS = {
  id: 1,
  tool: 1,
  args: 1,
  summary: 1,
  gate: 1,
  status: 1,
  required_approvals: 1,
  approver_groups: 1,
  distinct_groups: 1,
  approvals: 1,
  simulation_step: 1,
  token: 1,
  decision: 1,
} satisfies Record<keyof JobStepView, 1>;
const CLAIM_KEYS = { token: 1, jti: 1, expires_at: 1, run_id: 1, event_hash_b64u: 1 } satisfies Record<
  keyof ClaimedToken,
  1
>;
const keys = (o: object) => Object.keys(o).sort();

describe('the client agrees with the server', () => {
  it('lists exactly the server’s error codes', () => {
    expect([...API_ERROR_CODES].sort()).toEqual(Object.keys(ERROR_STATUS).sort());
  });

  it('calls only routes the server has', () => {
    for (const [name, r] of Object.entries(CLIENT_ROUTES)) {
      const url = r.path.replace(/\{(\w+)\}/g, ':$1');
      expect(cw.app.hasRoute({ method: r.method, url }), `${name}: ${r.method} ${url}`).toBe(true);
    }
    // The check can fail: a route the server does not have is not found.
    expect(cw.app.hasRoute({ method: 'GET', url: '/v1/jobs/:id/steps/:step' })).toBe(false);
  });

  it(`answers carry exactly the fields the types declare (${dialectName})`, async () => {
    const job = await cw.submit();
    expect(keys(job)).toEqual(keys(JOB_VIEW_KEYS));
    for (const s of job.steps) expect(keys(s)).toEqual(keys(STEP_KEYS));
    expect(keys(job.steps[0]!.token!)).toEqual(['claimable', 'expires_at', 'jti']);
    expect(keys(job.steps[0]!.decision!)).toEqual(['at', 'by', 'outcome', 'reason']);
    expect(job.steps.find((s) => s.id === GATED)!.decision).toBeNull();
    const claim = await cw.client.claimToken(job, 'search-kb');
    expect(keys(claim)).toEqual(keys(CLAIM_KEYS));
    await cw.client.closeJob(job);
  });
});

describe(`typed errors from the real server (${dialectName})`, () => {
  it('a wrong agent key is 401 ERR_UNAUTHENTICATED, and the key is nowhere in the error', async () => {
    const key = 'claw_wrong_key_0123456789abcdef0123456789';
    const wrong = new ClawClient({ baseUrl: cw.url, agentKey: key });
    const err = await wrong.getJob(1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClawApiError);
    expect(err).toMatchObject({ status: 401, code: 'ERR_UNAUTHENTICATED', request: 'GET /v1/jobs/1' });
    expect(isClawError(err, 'ERR_UNAUTHENTICATED')).toBe(true);
    expect(isClawError(err, 'ERR_FORBIDDEN')).toBe(false);
    expect(shown(err)).not.toContain(key);
    expect(inspect(wrong, { depth: 6 }) + JSON.stringify(wrong)).not.toContain(key);
  });

  it('another agent’s job is 404 ERR_JOB_NOT_FOUND, like a missing one', async () => {
    const job = await cw.submit();
    const other = await createAgent(cw.w.d.db, { id: 'agent:someone-else', at: new Date() });
    const stranger = new ClawClient({ baseUrl: cw.url, agentKey: other.key });
    await expect(stranger.getJob(job)).rejects.toMatchObject({ status: 404, code: 'ERR_JOB_NOT_FOUND' });
    await expect(stranger.claimToken(job, 'search-kb')).rejects.toMatchObject({ code: 'ERR_JOB_NOT_FOUND' });
    await expect(cw.client.getJob(999_999)).rejects.toMatchObject({ code: 'ERR_JOB_NOT_FOUND' });
    await cw.client.closeJob(job);
  });

  it('bad requests answer the server’s codes and change nothing', async () => {
    const { client, w } = cw;
    const jobCount = async () =>
      Number(
        (
          await w.d.db
            .selectFrom('jobs')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const before = await jobCount();
    await expect(
      client.submitJob({ channel_id: 'not-an-id', requester_id: w.ids.grace, runbook: SERVICE_CONTEXT }),
    ).rejects.toMatchObject({ status: 400, code: 'ERR_VALIDATION' });
    await expect(
      client.submitJob({
        channel_id: w.channel,
        requester_id: w.ids.grace,
        steps: [{ id: 'wipe', tool: 'exec', args: { cmd: 'rm -rf /' }, summary: 'wipe the disk' }],
      }),
    ).rejects.toMatchObject({ status: 422, code: 'ERR_PLAN_DENIED' });
    expect(await jobCount()).toBe(before);
    const job = await cw.submit();
    // Not approved yet: no token to claim.
    await expect(client.claimToken(job, GATED)).rejects.toMatchObject({
      status: 409,
      code: 'ERR_STEP_STATE',
    });
    await expect(client.claimToken(job, 'no-such-step')).rejects.toMatchObject({
      code: 'ERR_STEP_NOT_FOUND',
    });
    // A success without the gateway's receipt is refused.
    await client.claimToken(job, 'search-kb');
    await expect(client.reportResult(job, 'search-kb', { status: 'succeeded' })).rejects.toMatchObject({
      status: 422,
      code: 'ERR_RECEIPTS_REQUIRED',
    });
    expect((await client.getJob(job)).steps[0]!.status).toBe('claimed');
    await expect(client.introspect('not.a.token')).resolves.toMatchObject({ active: false });
    await expect(client.redeem('not.a.token')).rejects.toMatchObject({
      code: expect.stringMatching(/^ERR_TOKEN_/),
    });
    await expect(
      client.revokeToken({ jti: '00000000-0000-4000-8000-000000000000' }, 'test'),
    ).rejects.toMatchObject({ status: 404, code: 'ERR_TOKEN_NOT_FOUND' });
    await client.closeJob(job, 'done testing');
  });

  it('revokes its own token: the token is then inactive and the job ends', async () => {
    const job = await cw.submit();
    const claim = await cw.client.claimToken(job, 'search-kb');
    expect(await cw.client.revokeToken({ jti: claim.jti }, 'leaked in a log')).toMatchObject({
      jti: claim.jti,
      job_id: job.job_id,
      already_revoked: false,
      job_ended: true,
    });
    expect(await cw.client.getJob(job)).toMatchObject({ status: 'revoked' });
    expect(await cw.client.introspect(claim.token)).toMatchObject({ active: false });
    const err = await cw.client.redeem(claim.token).catch((e: unknown) => e);
    expect(err).toMatchObject({
      status: expect.any(Number),
      code: expect.stringMatching(/^ERR_(TOKEN_REVOKED|JOB_)/),
    });
    expect(shown(err)).not.toContain(claim.token);
  });

  it('over the budget: 429 ERR_RATE_LIMITED with retryAfterSeconds from Retry-After', async () => {
    const url = await cw.listen({ perCaller: 1 });
    const throttled = new ClawClient({ baseUrl: url, agentKey: cw.agentKey });
    const job = await cw.submit();
    await throttled.getJob(job);
    const err = await throttled.getJob(job).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClawApiError);
    const limited = err as ClawApiError;
    expect(limited).toMatchObject({ status: 429, code: 'ERR_RATE_LIMITED' });
    expect(limited.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(limited.retryAfterSeconds).toBeLessThanOrEqual(60);
    // A wait whose time runs out while throttled, without a look at the job, says so.
    await expect(throttled.waitForDecision(job, GATED, { timeoutMs: 200 })).rejects.toMatchObject({
      code: 'ERR_RATE_LIMITED',
    });
    await cw.client.closeJob(job);
  });
});
