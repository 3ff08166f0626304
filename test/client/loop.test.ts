import { inspect } from 'node:util';
import { ClawApiError, isClawError, type JobView } from '@claw-approvals/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dialectName } from '../helpers/db.js';
import { receiptFor } from '../helpers/receipts.js';
import { type ClientWorld, clientWorld, GATED } from './client-world.js';

let cw: ClientWorld;
beforeEach(async () => {
  cw = await clientWorld();
});
afterEach(async () => {
  await cw.close();
});

/** Everything an error could show: none of it may hold a secret. */
const shown = (err: unknown) =>
  [String(err), JSON.stringify(err), inspect(err, { depth: 6 }), (err as Error).stack ?? ''].join('\n');

describe(`the client drives a job through the real API and the sandbox (${dialectName})`, () => {
  it('submit → people approve in chat → approved → claim → redeem → report with receipts → completed', async () => {
    const { client } = cw;
    const job = await cw.submit();
    expect(job).toMatchObject({
      status: 'open',
      origin: 'api',
      runbook: 'service-context',
      version: expect.any(Number),
    });
    expect(job.steps.map((s) => [s.id, s.gate, s.status])).toEqual([
      ['search-kb', 'auto', 'approved'],
      ['read-runbook', 'auto', 'approved'],
      ['fetch-status', 'auto', 'approved'],
      [GATED, 'gated', 'awaiting_approval'],
    ]);

    // The wait starts before anyone has decided: it must be the long-poll that sees the mint.
    const decision = client.waitForDecision(job.job_id, GATED, { timeoutMs: 30_000 });
    decision.catch(() => undefined); // awaited below; a failure before that is not unhandled
    await cw.approveInChat(job.job_id);
    const d = await decision;
    expect(d.outcome).toBe('approved');
    expect(d.by.map((p) => p.username)).toEqual(['alice', 'dmitri']);
    expect(d.step).toMatchObject({ id: GATED, status: 'approved', approvals: 2, token: { claimable: true } });
    expect(d.reason).toBeUndefined();

    const ready = await client.readyJobs();
    expect(ready.map((j) => j.id)).toEqual([job.id]);

    let last;
    for (const step of d.job.steps) {
      const claim = await client.claimToken(job, step.id);
      expect(claim).toMatchObject({ run_id: job.id, jti: step.token!.jti });
      const seen = await client.introspect(claim.token, 'clawproxy');
      expect(seen).toMatchObject({ active: true, job_id: job.job_id, step: step.id });
      const redeemed = await client.redeem(claim.token, 'clawproxy');
      expect(redeemed).toMatchObject({ redeemed: true, job_id: job.job_id, step: step.id });
      expect(redeemed.claims.jti).toBe(claim.jti);
      if (step.id === GATED) {
        // Single use: the replay is a typed error that names no token.
        const replay = await client.redeem(claim.token, 'clawproxy').catch((e: unknown) => e);
        expect(replay).toBeInstanceOf(ClawApiError);
        expect(replay).toMatchObject({
          status: 409,
          code: 'ERR_TOKEN_REPLAYED',
          request: 'POST /v1/tokens/redeem',
        });
        expect(isClawError(replay, 'ERR_TOKEN_REPLAYED')).toBe(true);
        expect(shown(replay)).not.toContain(claim.token);
        expect(shown(replay)).not.toContain(cw.agentKey);
        expect(await client.introspect(claim.token)).toMatchObject({
          active: false,
          code: 'ERR_TOKEN_REPLAYED',
        });
      }
      last = await client.reportResult(job.job_id, step.id, {
        status: 'succeeded',
        summary: `${step.id} done`,
        receipts: [receiptFor({ runId: claim.run_id, eventHash: claim.event_hash_b64u })],
      });
      expect(last.receipts).toEqual([{ receipt_id: expect.any(String), verified: true, failure: null }]);
    }
    expect(last).toMatchObject({
      step: GATED,
      status: 'succeeded',
      job_status: 'completed',
      bundle_id: expect.stringMatching(/^pb_/),
    });
    const done = await client.getJob(`job:${job.job_id}`);
    expect(done).toMatchObject({ status: 'completed', bundle_id: last!.bundle_id });
    expect(done.version).toBeGreaterThan(d.job.version);
    // A decided step answers at once, however long the caller would wait.
    expect((await client.waitForDecision(done, GATED, { timeoutMs: 0 })).outcome).toBe('approved');
    expect(await client.readyJobs()).toEqual([]);
  });

  it('a DENY in the thread answers denied with the job’s end reason; the job is then closed to the agent', async () => {
    const { client, w } = cw;
    const job = await cw.submit();
    const decision = client.waitForDecision(job, GATED, { timeoutMs: 30_000 });
    const root = await cw.planPost(job.job_id);
    // Stopping work needs no confirmation by the requester.
    w.post('chioma', `DENY job:${job.job_id} step:${GATED} not during the freeze`, root.id);
    const d = await decision;
    expect(d.outcome).toBe('denied');
    expect(d.step.status).toBe('denied');
    expect(d.job.status).toBe('denied');
    expect(d.reason).toBe(`step ${GATED} denied by ${w.ids.chioma}`);
    expect(d.by.map((p) => p.user_id)).toEqual([w.ids.chioma]);
    expect(d.step.decision?.reason).toBe('not during the freeze');
    // The auto steps were stopped by the denial: they answer the job's ending.
    expect((await client.waitForDecision(job, 'search-kb', { timeoutMs: 0 })).outcome).toBe('denied');
    await expect(client.claimToken(job, 'search-kb')).rejects.toMatchObject({
      name: 'ClawApiError',
      status: 409,
      code: 'ERR_JOB_CLOSED',
    });
  });

  it('a REVOKE answers revoked; closing the job answers cancelled for a step still waiting', async () => {
    const { client, w } = cw;
    const revoked = await cw.submit();
    const root = await cw.planPost(revoked.job_id);
    const waiting = client.waitForDecision(revoked, GATED, { timeoutMs: 30_000 });
    w.post('erin', `REVOKE job:${revoked.job_id} leaked credentials`, root.id);
    const r = await waiting;
    expect(r.outcome).toBe('revoked');
    expect(r.job.status).toBe('revoked');

    const closed = await cw.submit();
    expect(await client.closeJob(closed, 'no longer needed')).toMatchObject({
      job_status: 'cancelled',
      bundle_id: expect.stringMatching(/^pb_/),
    });
    const c = await client.waitForDecision(closed, GATED, { timeoutMs: 0 });
    expect(c).toMatchObject({ outcome: 'cancelled', step: { status: 'cancelled' } });
    expect(c.reason).toContain('no longer needed');
    await expect(client.closeJob(closed)).rejects.toMatchObject({ code: 'ERR_JOB_CLOSED' });
  });

  it('nobody decides: the wait answers pending when its time is up, the job still open', async () => {
    const { client } = cw;
    const job = await cw.submit();
    const at = await client.waitForDecision(job, GATED, { timeoutMs: 0 });
    expect(at).toMatchObject({
      outcome: 'pending',
      step: { status: 'awaiting_approval' },
      job: { status: 'open' },
    });
    const later = await client.waitForDecision(job, GATED, { timeoutMs: 1_500 });
    expect(later.outcome).toBe('pending');
    expect(later.job.status).toBe('open');
    // An abort ends the wait with the caller's reason, not with an answer.
    const stop = new AbortController();
    const aborted = client.waitForDecision(job, GATED, { timeoutMs: 30_000, signal: stop.signal });
    stop.abort(new Error('caller gave up'));
    await expect(aborted).rejects.toThrow('caller gave up');
    // A step the job does not have is a typed error, before any waiting.
    await expect(client.waitForDecision(job, 'no-such-step', { timeoutMs: 30_000 })).rejects.toMatchObject({
      code: 'ERR_STEP_NOT_FOUND',
      status: 404,
    });
  });

  it('the long-poll of getJob answers on the next change after `afterVersion`', async () => {
    const { client } = cw;
    const job = await cw.submit();
    const now = await client.getJob(job);
    const next = client.getJob(job, { waitSeconds: 20, afterVersion: now.version });
    await cw.approveInChat(job.job_id);
    const changed: JobView = await next;
    expect(changed.version).toBeGreaterThan(now.version);
  });
});
