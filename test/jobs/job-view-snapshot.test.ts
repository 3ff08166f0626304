import type { KyselyPlugin } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { snapshotJobView } from '../../src/jobs/job-view.js';
import { expireDueJobs } from '../../src/jobs/revoke-job.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, opsJob, type TestEngine } from '../helpers/engine.js';

let e: TestEngine | undefined;
afterEach(async () => {
  await e?.close();
  e = undefined;
});

describe(`a job's view, as agents read it (${dialectName})`, () => {
  it('is one snapshot: an expiry committed while it is read never shows an open job with cancelled steps', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    await ctx.db
      .updateTable('jobs')
      .set({ expires_at: new Date(e.clock().getTime() - 1_000) })
      .where('id', '=', job.jobId)
      .execute();
    const before = (await snapshotJobView(ctx, job.jobId))!;
    expect(before.view.status).toBe('open');

    // Once the job's row is read, the expiry runs; the view's other reads wait for it to
    // commit, or, where it cannot commit before they are done (one embedded connection), a while.
    let expiry: Promise<unknown> | undefined;
    const expireOnceTheRowIsRead: KyselyPlugin = {
      transformQuery: (args) => args.node,
      async transformResult(args) {
        const row = args.result.rows[0] as Record<string, unknown> | undefined;
        if (!expiry && row && 'plan_hash_b64u' in row && 'expires_at' in row && 'status' in row) {
          expiry = expireDueJobs(ctx);
          await Promise.race([expiry, new Promise((r) => setTimeout(r, 300))]);
        }
        return args.result;
      },
    };
    const read = (await snapshotJobView(
      { ...ctx, db: ctx.db.withPlugin(expireOnceTheRowIsRead) },
      job.jobId,
    ))!;
    expect(expiry).toBeDefined();
    expect(((await expiry) as { jobId: number }[]).map((x) => x.jobId)).toEqual([job.jobId]);

    // The job as it was before the expiry, whole.
    expect(read.view.status).toBe('open');
    expect(read.view.steps.map((s) => s.status)).toEqual(before.view.steps.map((s) => s.status));
    expect(read.version).toBe(before.version);
    // And after it, whole too.
    const after = (await snapshotJobView(ctx, job.jobId))!;
    expect(after.view.status).toBe('expired');
    expect(after.view.end_reason).toBe('approval window elapsed');
    expect(after.view.steps.filter((s) => s.status === 'awaiting_approval')).toEqual([]);
    expect(after.version).toBeGreaterThan(before.version);
  });
});
