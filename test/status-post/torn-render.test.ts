import { afterEach, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { endJobByCommand } from '../../src/jobs/revoke-job.js';
import { renderStatusPost } from '../../src/presenter/chat-presenter.js';
import { boardOf } from '../../src/presenter/status-board.js';
import { statusBoardMessage } from '../../src/presenter/status-board.js';
import { readChain } from '../../src/proofs/event-chain.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, opsJob, type TestEngine } from '../helpers/engine.js';

let e: TestEngine | null = null;
afterEach(async () => {
  await e?.close();
  e = null;
});

/**
 * The database as a renderer sees it, with `between()` run once, right after its first read
 * has been answered: another transaction committing between two reads of one render.
 */
function withCommitAfterFirstRead(db: Db, between: () => Promise<unknown>): Db {
  let fired = false;
  const wrap = (builder: object): object =>
    new Proxy(builder, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const out: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
          if (typeof prop === 'string' && prop.startsWith('execute'))
            return (out as Promise<unknown>).then(async (rows) => {
              if (!fired) {
                fired = true;
                await between();
              }
              return rows;
            });
          return out !== null && typeof out === 'object' && !(out instanceof Promise) ? wrap(out) : out;
        };
      },
    });
  return new Proxy(db, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (prop !== 'selectFrom' || typeof value !== 'function') return value;
      return (...args: unknown[]) => wrap((value as (...a: unknown[]) => object).apply(target, args));
    },
  });
}

describe(`a status render while the job ends (${dialectName})`, () => {
  it('shows a state the job was in: never ended without its proof bundle', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const end = () =>
      endJobByCommand(ctx, {
        kind: 'cancel',
        jobId: job.jobId,
        actor: { kind: 'admin', name: 'test' },
        reason: 'ended mid-render',
      });
    const rendered = await renderStatusPost(withCommitAfterFirstRead(ctx.db, end), job.jobId, null);

    const chain = await readChain(ctx.db, job.jobId);
    const { bundle_id: bundleId } = await ctx.db
      .selectFrom('jobs')
      .select('bundle_id')
      .where('id', '=', job.jobId)
      .executeTakeFirstOrThrow();
    expect(bundleId).not.toBeNull();
    const states = chain.map((_, i) => {
      const prefix = chain.slice(0, i + 1);
      const ended = prefix.some((ev) => ev.event_type === 'job_ended');
      const board = boardOf(job.jobId, prefix, ended ? bundleId : null);
      return board ? statusBoardMessage(board, null) : null;
    });
    expect(states).toContain(rendered?.message);
  });
});
