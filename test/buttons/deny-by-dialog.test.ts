import { afterEach, describe, expect, it } from 'vitest';
import { clickAction, openDialogs, submitDialog } from '@claw-approvals/mattermost-sandbox';
import { signActionContext, signDialogState } from '../../src/crypto/action-mac.js';
import { ACTIONS_PATH } from '../../src/presenter/chat-presenter.js';
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

afterEach(async () => {
  await bw.close();
});

/** Chioma clicks Deny: the dialog Mattermost was told to show her. */
async function denyDialogFor(plan: { id: string }) {
  const { w } = bw;
  const click = await clickAction(w.sandbox, w.tokens.chioma, plan.id, `deny${STEP_INDEX}`);
  expect(click.status).toBe(200);
  const [opened] = openDialogs(w.sandbox, w.ids.chioma);
  expect(opened).toBeDefined();
  const { state } = opened!.dialog;
  expect(typeof state).toBe('string');
  return { ...opened!, state: String(state) };
}

function submission(state: string, reason: unknown) {
  return {
    url: `${bw.appUrl}/v1/mattermost/dialogs`,
    channel_id: bw.w.channel,
    team_id: bw.w.team,
    callback_id: 'claw-deny',
    state,
    submission: { reason },
  };
}

describe('denying by button', () => {
  it('asks for a reason in a dialog, denies with it, records method button, removes the buttons, and seals a verifiable bundle', async () => {
    bw = await createButtonWorld({ methods: ['phrase', 'button'] });
    const { w } = bw;
    const { root, plan, jobId } = await requestJob(w);
    await buttonsShown(w, plan);
    const dialog = await denyDialogFor(plan);
    expect(dialog.url).toBe(`${bw.appUrl}/v1/mattermost/dialogs`);
    expect(dialog.dialog.elements).toEqual([
      expect.objectContaining({ name: 'reason', type: 'textarea', optional: false }),
    ]);

    // No reason: the dialog says so and nothing is recorded.
    const empty = await submitDialog(w.sandbox, w.tokens.chioma, submission(dialog.state, '   '));
    expect(empty.body).toEqual({ errors: { reason: 'Say why the step is denied.' } });
    expect(await w.d.db.selectFrom('decisions').selectAll().where('job_id', '=', jobId).execute()).toEqual(
      [],
    );
    // A reason the chain could not hold, or that would read differently from what it says: refused.
    for (const bad of ['ok\u0000', 'ok\u202eevil', 'ok\u0007', 'first line\nsecond line']) {
      const refused = await submitDialog(w.sandbox, w.tokens.chioma, submission(dialog.state, bad));
      expect(refused.body).toEqual({ errors: { reason: expect.stringContaining('One line of plain text') } });
    }
    expect(await w.d.db.selectFrom('decisions').selectAll().where('job_id', '=', jobId).execute()).toEqual(
      [],
    );

    const done = await submitDialog(
      w.sandbox,
      w.tokens.chioma,
      submission(dialog.state, 'the summary goes to the wrong channel'),
    );
    expect(done).toEqual({ status: 200, body: {} });
    const denied = (await readChain(w.d.db, jobId))
      .filter((e) => e.event_type === 'step_denied')
      .map((e) => JSON.parse(e.payload) as Record<string, unknown>);
    expect(denied).toEqual([
      expect.objectContaining({
        step: STEP,
        user_id: w.ids.chioma,
        reason: 'the summary goes to the wrong channel',
        method: 'button',
        button_post_id: plan.id,
        post_id: null,
      }),
    ]);
    await eventually(() => actionsOn(w, plan.id).length === 0, 'buttons removed');

    // Submitting the same dialog again changes nothing: the step is decided.
    const again = await submitDialog(w.sandbox, w.tokens.chioma, submission(dialog.state, 'twice'));
    expect(again.body).toMatchObject({ error: expect.stringContaining('Not recorded') });

    const ended = await eventually(
      () => w.botReplies(root.id).find((p) => typeof p.props.claw_bundle_id === 'string'),
      'the ended post',
    );
    const stored = await w.d.db
      .selectFrom('bundles')
      .selectAll()
      .where('bundle_id', '=', String(ended.props.claw_bundle_id))
      .executeTakeFirstOrThrow();
    const envelope = JSON.parse(stored.envelope) as {
      payload: { human_approval_receipts: Record<string, unknown>[] };
    };
    const people = envelope.payload.human_approval_receipts.filter((r) => r.approval_type !== 'auto_approve');
    expect(people).toEqual([
      expect.objectContaining({
        approval_type: 'explicit_deny',
        approver_subject: w.ids.chioma,
        approver_method: 'ui_click',
      }),
    ]);
    expect(
      verifyBundle(envelope, {
        trustsSigner: (did) => did === bw.b.engine.keyRing.active.did,
        gatewaySigners: bw.b.engine.gatewaySigners,
      }),
    ).toMatchObject({ ok: true });
  });

  it('refuses a forged, altered, borrowed or expired dialog state, and a button context in its place', async () => {
    bw = await createButtonWorld({ methods: ['phrase', 'button'] });
    const { w } = bw;
    const { plan, jobId } = await requestJob(w);
    await buttonsShown(w, plan);
    const dialog = await denyDialogFor(plan);
    const state = JSON.parse(dialog.state) as Record<string, string>;
    const job = await w.d.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow();
    const claims = {
      job: jobId,
      step: STEP,
      planHash: job.plan_hash_b64u,
      policyHash: job.policy_hash_b64u,
      postId: plan.id,
      action: 'deny' as const,
    };
    const refused = 'This dialog could not be verified, so nothing was recorded.';
    const cases: [string, string][] = [
      [
        'another key',
        signDialogState(new Uint8Array(32).fill(1), {
          ...claims,
          userId: w.ids.chioma,
          expiresAt: Number(state.expires_at),
        }),
      ],
      ['another step', JSON.stringify({ ...state, step: 'search-kb' })],
      ['a later expiry', JSON.stringify({ ...state, expires_at: String(Number(state.expires_at) + 60_000) })],
      ['a button context', JSON.stringify(signActionContext(bw.secret, claims))],
      ['not JSON', 'deny please'],
    ];
    for (const [what, forged] of cases) {
      const res = await submitDialog(w.sandbox, w.tokens.chioma, submission(forged, 'forged'));
      expect(res.body, what).toEqual({ error: refused });
    }
    // Chioma's genuine state, submitted by Dmitri (Mattermost puts his id in user_id).
    const borrowed = await submitDialog(w.sandbox, w.tokens.dmitri, submission(dialog.state, 'borrowed'));
    expect(borrowed.body).toEqual({
      error: 'This dialog was opened for someone else; nothing was recorded.',
    });
    // A state that ran out.
    const stale = signDialogState(bw.secret, { ...claims, userId: w.ids.chioma, expiresAt: Date.now() - 1 });
    const expired = await submitDialog(w.sandbox, w.tokens.chioma, submission(stale, 'late'));
    expect(expired.body).toEqual({
      error: 'This dialog has expired; nothing was recorded. Click Deny again.',
    });
    // The dialog's state is seen by the clicker's client: it never passes as a button's context.
    const res = await fetch(`${bw.appUrl}${ACTIONS_PATH}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user_id: w.ids.alice, post_id: plan.id, channel_id: w.channel, context: state }),
    });
    expect(((await res.json()) as { ephemeral_text: string }).ephemeral_text).toContain(
      'could not be verified',
    );
    expect(await w.d.db.selectFrom('decisions').selectAll().where('job_id', '=', jobId).execute()).toEqual(
      [],
    );
  });
});

describe('buttons off by policy', () => {
  it('a policy without approval_methods shows no buttons and refuses a genuine context; the phrase still works', async () => {
    bw = await createButtonWorld();
    const { w } = bw;
    const { root, plan, jobId } = await requestJob(w);
    await bw.b.bot.settle();
    const status = await eventually(
      () =>
        w.d.db
          .selectFrom('outbox')
          .selectAll()
          .where('dedupe_key', '=', `status:${jobId}`)
          .where('delivered_at', 'is not', null)
          .executeTakeFirst(),
      'the status row settled',
    );
    expect(status.props).not.toContain('attachments');
    expect(actionsOn(w, plan.id)).toEqual([]);
    expect(plan.message).not.toContain('buttons');

    const job = await w.d.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow();
    const context = signActionContext(bw.secret, {
      job: jobId,
      step: STEP,
      planHash: job.plan_hash_b64u,
      policyHash: job.policy_hash_b64u,
      postId: plan.id,
      action: 'approve',
    });
    const res = await fetch(`${bw.appUrl}${ACTIONS_PATH}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user_id: w.ids.alice, post_id: plan.id, channel_id: w.channel, context }),
    });
    expect(((await res.json()) as { ephemeral_text: string }).ephemeral_text).toContain(
      'does not take decisions by button; reply with the phrase',
    );
    w.post('alice', `APPROVE job:${jobId} step:${STEP}`, root.id);
    await eventually(
      () => w.botReplies(root.id).some((p) => p.message.includes('Approval by @alice counted')),
      'phrase counted',
    );
    expect(lastEphemeral(w, w.ids.alice)).toBe('');
  });
});
