import { afterEach, describe, expect, it } from 'vitest';
import type { NewPost } from '../../src/chat/chat-port.js';
import { OutboxDelivery } from '../../src/chat/outbox-delivery.js';
import { ChatError } from '../../src/ports/chat-error.js';
import { eventually } from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, type TestEngine } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';
import { BOT, commitPost, fakeMattermost, outboxRow } from './outbox-fakes.js';

let e: TestEngine | null = null;
const deliveries: OutboxDelivery[] = [];
afterEach(async () => {
  for (const d of deliveries.splice(0)) await d.stop();
  await e?.close();
  e = null;
});

const threads = ['threadaaaaaaaaaaaaaaaaaaaa', 'threadbbbbbbbbbbbbbbbbbbbb', 'threadcccccccccccccccccccc'];

/**
 * Every thread's post is answered only once all are in flight, each with the refusal `answer`
 * gives it, one after the other in thread order (each answer is handled before the next comes).
 */
async function failTogether(
  engine: TestEngine,
  answer: (thread: number) => ChatError,
  backoff: [number, number],
) {
  let inFlight = 0;
  let allIn: () => void = () => undefined;
  const all = new Promise<void>((r) => (allIn = r));
  let turn = Promise.resolve();
  const mm = fakeMattermost({
    async onCreate(p: NewPost) {
      const i = threads.indexOf(p.root_id!);
      if (++inFlight === threads.length) allIn();
      await all;
      const mine = turn.then(async () => {
        // Gives the answer before it time to record its pause.
        for (let k = 0; k < 20; k++) await new Promise((r) => setImmediate(r));
      });
      turn = mine;
      await mine;
      throw answer(i);
    },
  });
  for (const t of threads) await commitPost(engine, `post:${t}`, t);
  const d = new OutboxDelivery({
    db: engine.ctx.db,
    chat: mm.chat,
    botUserId: BOT,
    clock: engine.clock,
    log: silentLogger(),
    pollMs: 3_600_000,
    minBackoffMs: backoff[0],
    maxBackoffMs: backoff[1],
  });
  deliveries.push(d);
  d.start();
  const now = engine.clock().getTime();
  // Each row waits until the pause its delivery recorded ends.
  const waits = await eventually(async () => {
    const rows = await Promise.all(threads.map((t) => outboxRow(engine, `post:${t}`)));
    if (rows.some((r) => r.lease_owner !== null || r.last_error === null)) return null;
    return rows.map((r) => r.next_attempt_at.getTime() - now);
  }, 'every row back in the outbox');
  return { waits, mm };
}

describe(`rows failing together pause delivery once (${dialectName})`, () => {
  it('a shorter backoff after a 503 does not cut short a Retry-After of another row', async () => {
    e = await createTestEngine();
    const { waits } = await failTogether(
      e,
      (i) =>
        i === 0
          ? new ChatError('rate_limited', 'rate limited by Mattermost', 429, 60_000)
          : new ChatError('unavailable', 'Mattermost error 503', 503),
      [500, 30_000],
    );
    // The 429 came first: nothing is tried before its minute is over.
    expect(waits[0]).toBe(60_000);
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(60_000);
  });

  it('rows that fail together count as one failure for the backoff', async () => {
    e = await createTestEngine();
    // Backoff after the first failure: 500 to 1000 ms; after the second, 1000 to 2000; third, 2000 to 4000.
    const { waits } = await failTogether(
      e,
      () => new ChatError('unavailable', 'Mattermost error 503', 503),
      [1_000, 1_000_000],
    );
    expect(Math.max(...waits)).toBeLessThanOrEqual(1_000);
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(500);
  });
});
