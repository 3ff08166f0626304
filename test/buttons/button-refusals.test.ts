import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clickAction } from '@claw-approvals/mattermost-sandbox';
import { type ActionClaims, signActionContext } from '../../src/crypto/action-mac.js';
import { ACTIONS_PATH } from '../../src/presenter/chat-presenter.js';
import { eventually } from '../helpers/bot-world.js';
import {
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

/** What the status post's Approve button of `jobId` carries, signed as the server signs it. */
async function claimsFor(
  jobId: number,
  postId: string,
  action: 'approve' | 'deny' = 'approve',
): Promise<ActionClaims> {
  const job = await bw.w.d.db
    .selectFrom('jobs')
    .selectAll()
    .where('id', '=', jobId)
    .executeTakeFirstOrThrow();
  return {
    job: jobId,
    step: STEP,
    planHash: job.plan_hash_b64u,
    policyHash: job.policy_hash_b64u,
    postId,
    action,
  };
}

/** A callback as Mattermost sends it (PostActionIntegrationRequest), straight to the app. */
async function callback(
  body: Record<string, unknown>,
): Promise<{ status: number; body: { ephemeral_text?: string } }> {
  const res = await fetch(`${bw.appUrl}${ACTIONS_PATH}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as { ephemeral_text?: string } };
}

function request(userId: string, postId: string, context: unknown) {
  return {
    user_id: userId,
    user_name: 'someone',
    channel_id: bw.w.channel,
    channel_name: 'ops-requests',
    team_id: bw.w.team,
    team_domain: 'ops',
    post_id: postId,
    trigger_id: 'not-used-by-approve',
    type: 'button',
    data_source: '',
    ...(context === undefined ? {} : { context }),
  };
}

async function decisionsOf(jobId: number) {
  return bw.w.d.db.selectFrom('decisions').selectAll().where('job_id', '=', jobId).orderBy('id').execute();
}

describe('button callbacks that must change nothing', () => {
  it('a forged MAC, a missing context and a context for another post are refused with a clear answer', async () => {
    const { w } = bw;
    const a = await requestJob(w);
    const b = await requestJob(w, 'farid');
    await buttonsShown(w, a.plan);
    const claims = await claimsFor(a.jobId, a.plan.id);

    const forged = signActionContext(new Uint8Array(32).fill(7), claims);
    const tampered = { ...signActionContext(bw.secret, claims), step: 'search-kb' };
    const flipped = signActionContext(bw.secret, claims);
    flipped.mac = `${flipped.mac.slice(0, -1)}${flipped.mac.endsWith('A') ? 'B' : 'A'}`;
    for (const context of [forged, tampered, flipped, undefined, {}]) {
      const res = await callback(request(w.ids.alice, a.plan.id, context));
      expect(res.status).toBe(200);
      expect(res.body.ephemeral_text).toContain('could not be verified, so nothing was recorded');
    }
    // Job A's genuine context, presented as a click on job B's status post.
    const copied = await callback(request(w.ids.alice, b.plan.id, signActionContext(bw.secret, claims)));
    expect(copied.body.ephemeral_text).toContain('could not be verified, so nothing was recorded');
    expect(await decisionsOf(a.jobId)).toEqual([]);
    expect(await decisionsOf(b.jobId)).toEqual([]);
    // A malformed request is not a click at all: no Mattermost sends a user id of another form,
    // nor a context that is not an object.
    const good = signActionContext(bw.secret, claims);
    expect((await callback(request('Alice', a.plan.id, good))).status).toBe(400);
    expect((await callback(request(w.ids.alice, a.plan.id, JSON.stringify(good)))).status).toBe(400);
    expect(await decisionsOf(a.jobId)).toEqual([]);
  });

  it('a replayed callback is the same person deciding again: it counts once', async () => {
    const { w } = bw;
    const { plan, jobId } = await requestJob(w);
    await buttonsShown(w, plan);
    const body = request(w.ids.alice, plan.id, signActionContext(bw.secret, await claimsFor(jobId, plan.id)));
    expect((await callback(body)).body.ephemeral_text).toContain('counts');
    const replay = await callback(body);
    expect(replay.body.ephemeral_text).toContain(
      'Not recorded: your approval of step post-summary already counts',
    );
    const accepted = (await decisionsOf(jobId)).filter((d) => d.outcome === 'accepted');
    expect(accepted).toHaveLength(1);
    expect(accepted[0]).toMatchObject({ user_id: w.ids.alice, post_id: null, kind: 'approve' });
  });

  it('an ineligible clicker and the requester are refused as a phrase would be', async () => {
    const { w } = bw;
    const { plan, jobId } = await requestJob(w, 'bruno');
    await buttonsShown(w, plan);
    expect((await clickAction(w.sandbox, w.tokens.outsider, plan.id, `approve${STEP_INDEX}`)).status).toBe(
      200,
    );
    expect(lastEphemeral(w, w.ids.outsider)).toContain(
      'Not recorded: only members of ops-oncall or sec-reviewers may decide step post-summary',
    );
    expect((await clickAction(w.sandbox, w.tokens.bruno, plan.id, `approve${STEP_INDEX}`)).status).toBe(200);
    expect(lastEphemeral(w, w.ids.bruno)).toContain(
      'Not recorded: the requester cannot approve or deny their own job',
    );
    const decisions = await decisionsOf(jobId);
    expect(decisions.map((d) => [d.user_id, d.outcome, d.reason_code])).toEqual([
      [w.ids.outsider, 'rejected', 'ERR_NOT_ELIGIBLE'],
      [w.ids.bruno, 'rejected', 'ERR_SELF_APPROVAL'],
    ]);
  });

  it('two decisive clicks at once mint one token; the other is told the step was decided', async () => {
    const { w } = bw;
    const { plan, jobId } = await requestJob(w);
    await buttonsShown(w, plan);
    await clickAction(w.sandbox, w.tokens.alice, plan.id, `approve${STEP_INDEX}`);
    const both = await Promise.all([
      clickAction(w.sandbox, w.tokens.chioma, plan.id, `approve${STEP_INDEX}`),
      clickAction(w.sandbox, w.tokens.dmitri, plan.id, `approve${STEP_INDEX}`),
    ]);
    expect(both.map((r) => r.status)).toEqual([200, 200]);
    const answers = [lastEphemeral(w, w.ids.chioma), lastEphemeral(w, w.ids.dmitri)].sort();
    expect(answers[0]).toContain('Not recorded: step post-summary is already');
    expect(answers[1]).toContain('completed its quorum; a token was minted');
    const tokens = await w.d.db.selectFrom('tokens').selectAll().where('job_id', '=', jobId).execute();
    expect(tokens.filter((t) => t.step_id === STEP)).toHaveLength(1);
  });

  it('a click after the job expired expires it and records nothing else', async () => {
    const { w } = bw;
    const { plan, jobId } = await requestJob(w);
    await buttonsShown(w, plan);
    await w.d.db
      .updateTable('jobs')
      .set({ expires_at: new Date(Date.now() - 1_000) })
      .where('id', '=', jobId)
      .execute();
    await clickAction(w.sandbox, w.tokens.alice, plan.id, `approve${STEP_INDEX}`);
    expect(lastEphemeral(w, w.ids.alice)).toContain(`Not recorded: job:${jobId} has expired`);
    const job = await w.d.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow();
    expect(job.status).toBe('expired');
    expect((await decisionsOf(jobId)).every((d) => d.outcome === 'rejected')).toBe(true);
    await eventually(
      () => !JSON.stringify(w.sandbox.thread(plan.root_id || plan.id)).includes('approve3'),
      'buttons gone',
    );
  });
});
