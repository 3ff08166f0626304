import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/bot-world.js';
import { type ButtonWorld, buttonsShown, createButtonWorld, requestJob } from './button-world.js';

let bw: ButtonWorld;
beforeEach(async () => {
  bw = await createButtonWorld({ methods: ['phrase', 'button'] });
});
afterEach(async () => bw.close());

describe('signed button contexts are never stored', () => {
  it('the status row remembers a digest of the props it sent, not the contexts and their MACs', async () => {
    const { w } = bw;
    const { plan, jobId } = await requestJob(w);
    await buttonsShown(w, plan);
    const row = await eventually(async () => {
      const r = await w.d.db
        .selectFrom('outbox')
        .select(['props', 'delivered_at'])
        .where('dedupe_key', '=', `status:${jobId}`)
        .executeTakeFirstOrThrow();
      return r.delivered_at !== null ? r : undefined;
    }, 'the status edit with the buttons recorded');
    // Were the props stored, a reader of the database could present a context as any approver.
    expect(row.props).toMatch(/^sha256:[A-Za-z0-9_-]{43}$/);
    const everything = await w.d.db.selectFrom('outbox').select(['message', 'props']).execute();
    for (const r of everything) expect(`${r.message ?? ''} ${r.props ?? ''}`).not.toContain('"mac"');
  });
});
