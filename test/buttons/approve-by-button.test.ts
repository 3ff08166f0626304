import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clickAction } from '@claw-approvals/mattermost-sandbox';
import { readChain } from '../../src/proofs/event-chain.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import { eventually } from '../helpers/bot-world.js';
import {
  actionsOn,
  type ButtonWorld,
  buttonsShown,
  createButtonWorld,
  lastEphemeral,
  requestJob,
  STEP,
  STEP_INDEX,
} from './button-world.js';

let bw: ButtonWorld;

beforeEach(async () => {
  bw = await createButtonWorld({ methods: ['phrase', 'button'] });
});
afterEach(async () => {
  await bw.close();
});

describe('approving by button', () => {
  it('counts two eligible clicks to quorum, mints once, records method button, and removes the buttons', async () => {
    const { w } = bw;
    const { root, plan, jobId } = await requestJob(w);
    await buttonsShown(w, plan);
    const actions = actionsOn(w, plan.id);
    expect(actions.map((a) => a.id)).toEqual([`approve${STEP_INDEX}`, `deny${STEP_INDEX}`]);
    // Mattermost never lets a client see the integration (and its context's MAC).
    for (const a of actions) expect(a.integration).toBeUndefined();

    const first = await clickAction(w.sandbox, w.tokens.alice, plan.id, `approve${STEP_INDEX}`);
    expect(first.status).toBe(200);
    expect(lastEphemeral(w, w.ids.alice)).toContain(
      `Your approval of step \`${STEP}\` of job:${jobId} counts`,
    );
    const second = await clickAction(w.sandbox, w.tokens.chioma, plan.id, `approve${STEP_INDEX}`);
    expect(second.status).toBe(200);
    expect(lastEphemeral(w, w.ids.chioma)).toContain('completed its quorum; a token was minted');

    const tokens = await w.d.db.selectFrom('tokens').selectAll().where('job_id', '=', jobId).execute();
    expect(tokens.filter((t) => t.step_id === STEP)).toHaveLength(1);
    const approvals = (await readChain(w.d.db, jobId))
      .filter((e) => e.event_type === 'approval_recorded')
      .map((e) => JSON.parse(e.payload) as Record<string, unknown>);
    expect(approvals).toEqual([
      expect.objectContaining({
        user_id: w.ids.alice,
        method: 'button',
        button_post_id: plan.id,
        post_id: null,
      }),
      expect.objectContaining({
        user_id: w.ids.chioma,
        method: 'button',
        button_post_id: plan.id,
        post_id: null,
      }),
    ]);
    // The mint is told in the thread; the decided step's buttons are gone from the status post.
    await eventually(
      () => w.botReplies(root.id).some((p) => p.message.includes('approved by')),
      'mint reply',
    );
    await eventually(() => actionsOn(w, plan.id).length === 0, 'buttons removed');

    // The bundle says the approvals were clicks, and still verifies.
    w.post('bruno', `@clawbot cancel job:${jobId}`, root.id);
    const job = await eventually(
      () =>
        w.d.db
          .selectFrom('jobs')
          .selectAll()
          .where('id', '=', jobId)
          .where('bundle_id', 'is not', null)
          .executeTakeFirst(),
      'sealed bundle',
    );
    const stored = await w.d.db
      .selectFrom('bundles')
      .selectAll()
      .where('bundle_id', '=', job.bundle_id!)
      .executeTakeFirstOrThrow();
    const envelope = JSON.parse(stored.envelope) as {
      payload: { human_approval_receipts: { approver_subject: string; approver_method?: string }[] };
    };
    const receipts = envelope.payload.human_approval_receipts.filter(
      (r) => !r.approver_subject.startsWith('policy:'),
    );
    expect(receipts.map((r) => [r.approver_subject, r.approver_method]).sort()).toEqual(
      [
        [w.ids.alice, 'ui_click'],
        [w.ids.chioma, 'ui_click'],
      ].sort(),
    );
    const verdict = verifyBundle(envelope, {
      trustsSigner: (did) => did === bw.b.engine.keyRing.active.did,
      gatewaySigners: bw.b.engine.gatewaySigners,
    });
    expect(verdict).toMatchObject({ ok: true });
  });
});
