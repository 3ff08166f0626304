import { afterEach, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import type { ChatPort } from '../../src/chat/chat-port.js';
import type { LeaseOwner } from '../../src/chat/lease-owner.js';
import { OutboxDelivery } from '../../src/chat/outbox-delivery.js';
import { markDelivered, statusPatchKey } from '../../src/chat/outbox.js';
import { ChatError } from '../../src/ports/chat-error.js';
import { renderStatusPost } from '../../src/presenter/chat-presenter.js';
import { eventually } from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';
import { BOT, commitPost, fakeMattermost, gate, keyOf, outboxRow } from './outbox-fakes.js';

let e: TestEngine | null = null;
const deliveries: OutboxDelivery[] = [];
/** Opened after every test, so that a failed one leaves no request waiting forever. */
const gates: ReturnType<typeof gate>[] = [];
function held() {
  const g = gate();
  gates.push(g);
  return g;
}
afterEach(async () => {
  for (const g of gates.splice(0)) g.open();
  for (const d of deliveries.splice(0)) await d.stop();
  await e?.close();
  e = null;
});

const owner = (id: string): LeaseOwner => ({ id, isGone: () => false });

/** One replica's delivery: its own lease holder, the one database. */
function replica(engine: TestEngine, chat: ChatPort, id: string): OutboxDelivery {
  const d = new OutboxDelivery({
    db: engine.ctx.db,
    chat,
    botUserId: BOT,
    clock: engine.clock,
    log: silentLogger(),
    pollMs: 3_600_000,
    leaseMs: 30_000,
    owner: owner(id),
    statusPost: (db, jobId) => renderStatusPost(db, jobId, null),
  });
  deliveries.push(d);
  return d;
}

describe(`a replica whose lease ran out and was taken over (${dialectName})`, () => {
  it('records nothing of its late refusal of a status edit: the new holder keeps the row and records its edit', async () => {
    e = await createTestEngine();
    const { ctx, clock } = e;
    const job = await opsJob(ctx);
    const status = await outboxRow(e, statusPatchKey(job.jobId));
    const plan = await outboxRow(e, status.target_key!);
    await markDelivered(ctx.db, plan, 'planpost0000000000000000000', clock());
    const replies = () =>
      ctx.db.updateTable('outbox').set({ delivered_at: clock() }).where('kind', '!=', 'patch').execute();
    await replies();
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice });

    const first = held();
    const second = held();
    const r1 = fakeMattermost({
      async onPatch() {
        await first.pass();
        throw new ChatError('rejected', 'Mattermost rejected the request (400)', 400);
      },
    });
    const r2 = fakeMattermost({ onPatch: () => second.pass() });
    const a = replica(e, r1.chat, 'r1');
    const b = replica(e, r2.chat, 'r2');
    a.start();
    await first.reached;
    clock.advance(31);
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.chioma });
    await replies();
    b.start();
    await second.reached;
    // R1's answer comes while R2 sends the newer state.
    first.open();
    await a.stop();
    expect(await outboxRow(e, statusPatchKey(job.jobId))).toMatchObject({
      lease_owner: 'r2',
      failed_at: null,
    });
    second.open();
    await eventually(
      async () => (await outboxRow(e!, statusPatchKey(job.jobId))).delivered_at,
      'the edit recorded',
    );
    const row = await outboxRow(e, statusPatchKey(job.jobId));
    expect(row.failed_at).toBeNull();
    expect(row.message).toBe((await renderStatusPost(ctx.db, job.jobId, null))!.message);
    expect(r2.patches).toHaveLength(1);
  });

  it('records nothing of its late 503 for a post: the new holder keeps the lease and posts it once', async () => {
    e = await createTestEngine();
    const first = held();
    const second = held();
    let calls = 0;
    const mm = fakeMattermost({
      async onCreate() {
        calls += 1;
        if (calls === 1) {
          await first.pass();
          throw new ChatError('unavailable', 'Mattermost error 503', 503);
        }
        await second.pass();
      },
    });
    await commitPost(e, 'reply', 'threadaaaaaaaaaaaaaaaaaaaa');
    const a = replica(e, mm.chat, 'r1');
    a.start();
    await first.reached;
    e.clock.advance(31);
    const b = replica(e, mm.chat, 'r2');
    b.start();
    await second.reached;
    first.open();
    await a.stop();
    expect(await outboxRow(e, 'reply')).toMatchObject({ lease_owner: 'r2', delivered_at: null });
    second.open();
    await eventually(async () => (await outboxRow(e!, 'reply')).delivered_at, 'the post recorded');
    expect(mm.posts.map(keyOf)).toEqual(['reply']);
  });

  it('does not post a message another replica posted while it was still naming people', async () => {
    e = await createTestEngine();
    const naming = held();
    let lookups = 0;
    const mm = fakeMattermost({
      async onUser() {
        if (++lookups === 1) await naming.pass();
      },
    });
    await commitPost(e, 'named', 'threadaaaaaaaaaaaaaaaaaaaa', `approved by <@${U.alice}>`);
    const a = replica(e, mm.chat, 'r1');
    a.start();
    // R1 asks Mattermost for a name and waits past its lease.
    await naming.reached;
    e.clock.advance(31);
    const b = replica(e, mm.chat, 'r2');
    b.start();
    await eventually(async () => (await outboxRow(e!, 'named')).delivered_at, 'R2 posted it');
    naming.open();
    await a.stop();
    expect(mm.posts.map(keyOf)).toEqual(['named']);
    expect(await outboxRow(e, 'named')).toMatchObject({ delivered_post_id: mm.posts[0]!.id });
  });
});
