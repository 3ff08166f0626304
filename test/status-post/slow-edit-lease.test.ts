import { afterEach, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import type { ChatPort } from '../../src/chat/chat-port.js';
import { OutboxDelivery } from '../../src/chat/outbox-delivery.js';
import { statusPatchKey } from '../../src/chat/outbox.js';
import { renderStatusPost } from '../../src/presenter/chat-presenter.js';
import { eventually } from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, markStatusPostDelivered, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';
import { counted } from '../helpers/statements.js';

let e: TestEngine | null = null;
afterEach(async () => {
  await e?.close();
  e = null;
});

/**
 * A Mattermost that keeps every edit it is sent, in order. `hold()` makes the next user lookup
 * (the name rendering before an edit) wait until released: a server slow to answer.
 */
function recordingChat() {
  const patches: string[] = [];
  let held: { release: () => void; reached: Promise<void> } | null = null;
  let reachedNow: () => void = () => undefined;
  const chat = {
    async user(id: string) {
      if (held) {
        const h = held;
        held = null;
        reachedNow();
        await new Promise<void>((r) => (h.release = r));
      }
      return { id, username: `u${id.slice(0, 4)}`, delete_at: 0, is_bot: false };
    },
    async patchPost(id: string, patch: { message?: string }) {
      patches.push(patch.message ?? '');
      return { id };
    },
  };
  return {
    chat: chat as unknown as ChatPort,
    patches,
    hold() {
      const h = { release: () => undefined, reached: new Promise<void>((r) => (reachedNow = r)) };
      held = h;
      return h;
    },
  };
}

describe(`a status edit whose lease ran out while Mattermost was slow (${dialectName})`, () => {
  it('is not sent after a newer edit by the holder that took the lease over, and the row keeps what the post says', async () => {
    e = await createTestEngine();
    const { ctx, clock } = e;
    const job = await opsJob(ctx);
    await markStatusPostDelivered(ctx, job.jobId, clock());
    // Only the edit is left to deliver (replies are not what this is about).
    const replies = () =>
      ctx.db.updateTable('outbox').set({ delivered_at: clock() }).where('kind', '!=', 'patch').execute();
    await replies();
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice });

    const slow = recordingChat();
    const fast = recordingChat();
    const options = (chat: ChatPort) => ({
      db: ctx.db,
      chat,
      botUserId: 'botbotbotbotbotbotbotbotbo',
      clock,
      log: silentLogger(),
      leaseMs: 30_000,
      statusPost: (db: typeof ctx.db, jobId: number) => renderStatusPost(db, jobId, null),
    });
    const a = new OutboxDelivery(options(slow.chat));
    const b = new OutboxDelivery(options(fast.chat));

    // A leases the edit, reads the job (alice approved), and waits on Mattermost past its lease.
    const held = slow.hold();
    a.start();
    await held.reached;
    clock.advance(31);
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.chioma });
    await replies();
    // B takes the expired lease and sends the newer state.
    b.start();
    await eventually(() => fast.patches.length === 1, 'the newer edit');
    await b.stop();
    expect(fast.patches[0]).toContain('approved');
    held.release();
    await a.stop();

    // A's older state never lands after B's newer one.
    expect(slow.patches).toEqual([]);
    const row = await ctx.db
      .selectFrom('outbox')
      .selectAll()
      .where('dedupe_key', '=', statusPatchKey(job.jobId))
      .executeTakeFirstOrThrow();
    expect(row.message).toBe((await renderStatusPost(ctx.db, job.jobId, null))!.message);
  });
});

describe(`a status edit's statements (${dialectName})`, () => {
  it('take the lease again before the edit is sent, however much of it is left: 6 in all', async () => {
    e = await createTestEngine();
    const { ctx, clock } = e;
    const jobs = [await opsJob(ctx), await opsJob(ctx)];
    for (const job of jobs) await markStatusPostDelivered(ctx, job.jobId, clock());
    await ctx.db.updateTable('outbox').set({ delivered_at: clock() }).where('kind', '!=', 'patch').execute();
    const c = counted(ctx);

    /** Delivers the edit that alice's approval of `job` causes; the statements it took. */
    const deliverEdit = async (job: { jobId: number }, lookupSeconds: number) => {
      await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice });
      const chat = recordingChat();
      const d = new OutboxDelivery({
        db: c.ctx.db,
        chat: chat.chat,
        botUserId: 'botbotbotbotbotbotbotbotbo',
        clock,
        log: silentLogger(),
        leaseMs: 30_000,
        pollMs: 3_600_000,
        statusPost: (db, jobId) => renderStatusPost(db, jobId, null),
      });
      const held = chat.hold();
      c.reset();
      d.start();
      // Naming alice takes this long by the delivery's clock.
      await held.reached;
      clock.advance(lookupSeconds);
      held.release();
      await eventually(() => chat.patches.length === 1, 'the edit');
      await d.stop();
      expect(chat.patches[0]).toContain(`@u${U.alice.slice(0, 4)}`);
      return c.statements();
    };
    // Whatever is left of the lease, it is taken again: a request that fails without an answer
    // then has the whole lease to record its hold before another replica could take the row.
    const fresh = await deliverEdit(jobs[0]!, 1);
    const aged = await deliverEdit(jobs[1]!, 6);
    expect(aged).toBe(fresh);
    // A delivery's start (leases of processes gone), the lease, the status post's id, the job's
    // state as one read (its chain and its row), the lease taken again, and the edit recorded.
    expect(fresh).toBe(6);
  });
});
