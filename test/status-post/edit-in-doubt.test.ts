import { afterEach, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import type { ChatPort } from '../../src/chat/chat-port.js';
import { OutboxDelivery } from '../../src/chat/outbox-delivery.js';
import { leaseDue, markDelivered, statusPatchKey } from '../../src/chat/outbox.js';
import { ChatError, mayStillLand } from '../../src/ports/chat-error.js';
import { renderStatusPost } from '../../src/presenter/chat-presenter.js';
import { eventually } from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';

let e: TestEngine | null = null;
afterEach(async () => {
  await e?.close();
  e = null;
});

const LEASE_MS = 30_000;

/** A Mattermost whose edits fail with `failure` while it is set, and are kept in order otherwise. */
function editingChat() {
  const patches: string[] = [];
  const state: { failure: unknown; tries: number } = { failure: null, tries: 0 };
  const chat = {
    async user(id: string) {
      return { id, username: `u${id.slice(0, 4)}`, delete_at: 0, is_bot: false };
    },
    async patchPost(id: string, patch: { message?: string }) {
      state.tries++;
      if (state.failure) throw state.failure;
      patches.push(patch.message ?? '');
      return { id };
    },
  };
  return { chat: chat as unknown as ChatPort, patches, state };
}

/** A job whose status post was posted, with one approval counted: its edit is due. */
async function jobWithEditDue(t: TestEngine) {
  const { ctx, clock } = t;
  const job = await opsJob(ctx);
  const status = await ctx.db
    .selectFrom('outbox')
    .select('target_key')
    .where('dedupe_key', '=', statusPatchKey(job.jobId))
    .executeTakeFirstOrThrow();
  const plan = await ctx.db
    .selectFrom('outbox')
    .select(['id', 'lease_owner'])
    .where('dedupe_key', '=', status.target_key!)
    .executeTakeFirstOrThrow();
  await markDelivered(ctx.db, plan, 'planpost0000000000000000000', clock());
  await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice });
  // Only the edit is left to deliver (replies are not what this is about).
  await ctx.db.updateTable('outbox').set({ delivered_at: clock() }).where('kind', '!=', 'patch').execute();
  return job.jobId;
}

const patchRow = (t: TestEngine, jobId: number) =>
  t.ctx.db
    .selectFrom('outbox')
    .selectAll()
    .where('dedupe_key', '=', statusPatchKey(jobId))
    .executeTakeFirstOrThrow();

/** Whether the edit would be leased now by another replica. */
const dueElsewhere = async (t: TestEngine, jobId: number) => {
  const rows = await leaseDue(t.ctx.db, t.clock(), LEASE_MS, 10, 'another-replica', []);
  return rows.some((r) => r.dedupe_key === statusPatchKey(jobId));
};

function delivery(t: TestEngine, chat: ChatPort) {
  return new OutboxDelivery({
    db: t.ctx.db,
    chat,
    botUserId: 'botbotbotbotbotbotbotbotbo',
    clock: t.clock,
    log: silentLogger(),
    leaseMs: LEASE_MS,
    minBackoffMs: 10,
    maxBackoffMs: 10,
    statusPost: (db, jobId) => renderStatusPost(db, jobId, null),
  });
}

describe(`a status edit sent without an answer (${dialectName})`, () => {
  it('keeps its lease until it runs out: no newer edit is sent that the late one could land after', async () => {
    e = await createTestEngine();
    const t = e;
    const jobId = await jobWithEditDue(t);
    const chat = editingChat();
    // A timeout: the request was sent, and Mattermost may still apply it.
    chat.state.failure = new ChatError('network', 'cannot reach Mattermost: timed out', null, null, null, {
      cause: new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
    });
    const a = delivery(t, chat.chat);
    a.start();
    await eventually(async () => (await patchRow(t, jobId)).last_error !== null, 'the edit failed');
    await a.stop();
    const held = await patchRow(t, jobId);
    expect(held.lease_owner).toBeNull();
    expect(held.lease_until!.getTime()).toBe(t.clock().getTime() + LEASE_MS);
    expect(held.delivered_at).toBeNull();

    // The job moves on; the backoff is long over, but the lease is not.
    await decideStep(t.ctx, { kind: 'approve', jobId, step: 'post-summary', userId: U.chioma });
    await t.ctx.db
      .updateTable('outbox')
      .set({ delivered_at: t.clock() })
      .where('kind', '!=', 'patch')
      .execute();
    t.clock.advance(LEASE_MS / 1000 - 1);
    expect(await dueElsewhere(t, jobId)).toBe(false);
    t.clock.advance(1);
    expect(await dueElsewhere(t, jobId)).toBe(false); // at the end of the lease, not yet
    t.clock.advance(1);

    // Once it has run out, the newest state is sent.
    chat.state.failure = null;
    const b = delivery(t, chat.chat);
    b.start();
    await eventually(() => chat.patches.length === 1, 'the newer edit');
    await b.stop();
    expect(chat.patches[0]).toContain('approved');
    expect((await patchRow(t, jobId)).delivered_at).not.toBeNull();
  });

  it('is retried after the backoff alone when Mattermost answered, or the request never left', async () => {
    for (const failure of [
      new ChatError('unavailable', 'Mattermost error 503: busy', 503),
      new ChatError('rate_limited', 'rate limited by Mattermost', 429, 10),
      new ChatError('network', 'cannot reach Mattermost: fetch failed', null, null, null, {
        cause: Object.assign(new TypeError('fetch failed'), {
          cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
        }),
      }),
    ]) {
      e = await createTestEngine();
      const t = e;
      const jobId = await jobWithEditDue(t);
      const chat = editingChat();
      chat.state.failure = failure;
      const a = delivery(t, chat.chat);
      a.start();
      await eventually(async () => (await patchRow(t, jobId)).last_error !== null, 'the edit failed');
      await a.stop();
      const row = await patchRow(t, jobId);
      expect([failure.message, row.lease_until, row.lease_owner]).toEqual([failure.message, null, null]);
      t.clock.advance(1);
      expect(await dueElsewhere(t, jobId)).toBe(true);
      await e.close();
      e = null;
    }
  });
});

describe('mayStillLand', () => {
  it('says which failures leave a sent request in doubt', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const cases: [unknown, boolean][] = [
      [new ChatError('network', 'timed out', null), true],
      [new ChatError('network', 'socket hang up', null, null, null, { cause: { code: 'ECONNRESET' } }), true],
      [new ChatError('network', 'refused', null, null, null, { cause: { cause: refused } }), false],
      [new ChatError('network', 'no such host', null, null, null, { cause: { code: 'ENOTFOUND' } }), false],
      [new ChatError('unavailable', 'bad gateway', 502), true],
      [new ChatError('unavailable', 'gateway timeout', 504), true],
      [new ChatError('unavailable', 'unavailable', 503), false],
      [new ChatError('rate_limited', 'slow down', 429), false],
      [new ChatError('rejected', 'bad request', 400), false],
      [new Error('something else'), true],
    ];
    expect(cases.map(([err]) => mayStillLand(err))).toEqual(cases.map(([, doubt]) => doubt));
  });
});
