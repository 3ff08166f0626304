import { afterEach, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import { claimToken } from '../../src/jobs/agent-job-ops.js';
import { lockJob } from '../../src/jobs/job-repository.js';
import { pauseState, setPaused } from '../../src/jobs/kill-switch.js';
import { readChain } from '../../src/proofs/event-chain.js';
import { introspectToken } from '../../src/tokens/token-lifecycle.js';
import { createTestEngine, OPS, opsJob, registerAgent, type TestEngine, U } from '../helpers/engine.js';

let e: TestEngine;
afterEach(async () => e?.close());

const SECURITY = { kind: 'user' as const, userId: U.chioma };

describe('the kill switch (engine)', () => {
  it('refuses new jobs, approvals, claims and introspection while paused; DENY still counts; resume restores', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    await registerAgent(ctx);
    const job = await opsJob(ctx);
    const first = await decideStep(ctx, {
      kind: 'approve',
      jobId: job.jobId,
      step: 'post-summary',
      userId: U.alice,
    });
    expect(first.code).toBe('APPROVAL_COUNTED');
    const claimed = await claimToken(ctx, { jobId: job.jobId, step: 'search-kb', agentId: OPS.executor });

    const paused = await setPaused(ctx, { paused: true, actor: SECURITY, reason: 'incident 42' });
    expect(paused).toMatchObject({ changed: true, jobs: [job.jobId] });
    expect(await pauseState(ctx.db)).toMatchObject({
      paused: true,
      actor: `user:${U.chioma}`,
      reason: 'incident 42',
    });
    // Saying it again changes nothing and records nothing.
    expect((await setPaused(ctx, { paused: true, actor: SECURITY, reason: 'again' })).changed).toBe(false);

    await expect(opsJob(ctx)).rejects.toMatchObject({ code: 'ERR_PAUSED' });
    const refused = await decideStep(ctx, {
      kind: 'approve',
      jobId: job.jobId,
      step: 'post-summary',
      userId: U.dmitri,
    });
    expect(refused).toMatchObject({ accepted: false, code: 'ERR_PAUSED' });
    await expect(
      claimToken(ctx, { jobId: job.jobId, step: 'read-runbook', agentId: OPS.executor }),
    ).rejects.toMatchObject({ code: 'ERR_PAUSED' });
    expect(await introspectToken(ctx, claimed.token)).toMatchObject({ active: false, code: 'ERR_PAUSED' });

    const resumed = await setPaused(ctx, { paused: false, actor: SECURITY, reason: 'contained' });
    expect(resumed.changed).toBe(true);
    expect((await introspectToken(ctx, claimed.token)).active).toBe(true);
    const second = await decideStep(ctx, {
      kind: 'approve',
      jobId: job.jobId,
      step: 'post-summary',
      userId: U.dmitri,
    });
    expect(second.code).toBe('QUORUM_MET');

    const types = (await readChain(ctx.db, job.jobId)).map((ev) => ev.event_type);
    expect(types.filter((t) => t === 'job_paused' || t === 'job_resumed')).toEqual([
      'job_paused',
      'job_resumed',
    ]);
    // The refused approval is in the chain as refused, never as counted.
    expect(types).toContain('approval_rejected');
  });

  it('a DENY while paused still closes the job', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    await setPaused(ctx, { paused: true, actor: SECURITY, reason: 'stop' });
    const denied = await decideStep(ctx, {
      kind: 'deny',
      jobId: job.jobId,
      step: 'post-summary',
      userId: U.alice,
      reason: 'not now',
    });
    expect(denied).toMatchObject({ accepted: true, code: 'STEP_DENIED' });
  });

  it('a pause and an approval racing each other: the approval either counted before the pause or is refused', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const [approval] = await Promise.all([
      decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice }),
      setPaused(ctx, { paused: true, actor: SECURITY, reason: 'race' }),
    ]);
    const chain = (await readChain(ctx.db, job.jobId)).map((ev) => ev.event_type);
    const paused = chain.indexOf('job_paused');
    if (approval.code === 'APPROVAL_COUNTED') expect(chain.indexOf('approval_recorded')).toBeLessThan(paused);
    else expect(approval.code).toBe('ERR_PAUSED');
  });

  it('a pause arriving while a decision holds the job waits for it: no deadlock, the pause is never lost', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    // What every deciding transaction does: lock the job, then (deciding) read the switch.
    const decision = ctx.db.transaction().execute(async (trx) => {
      await lockJob(trx, job.jobId);
      await sleep(300); // meanwhile the pause asks for the switch and every open job
      return decideStep(
        ctx,
        { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice },
        trx,
      );
    });
    await sleep(100);
    const pause = setPaused(ctx, { paused: true, actor: SECURITY, reason: 'incident' });
    const [decided, paused] = await Promise.all([decision, pause]);
    expect(paused.changed).toBe(true);
    expect((await pauseState(ctx.db)).paused).toBe(true);
    const chain = (await readChain(ctx.db, job.jobId)).map((ev) => ev.event_type);
    // Whichever got the switch first: the approval counted before the pause, or was refused by it.
    if (decided.code === 'APPROVAL_COUNTED')
      expect(chain.indexOf('approval_recorded')).toBeLessThan(chain.indexOf('job_paused'));
    else expect(decided.code).toBe('ERR_PAUSED');
  });
});
