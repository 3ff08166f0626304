import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import { verifyBundle } from '../../src/proofs/verify-bundle.js';
import {
  createWorld,
  eventually,
  jobIdIn,
  ready,
  RUN,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { OPS } from '../helpers/engine.js';
import { receiptFor } from '../helpers/receipts.js';

let w: World;
let b: RunningBot;

beforeEach(async () => {
  w = await createWorld();
  b = await startBot(w);
  await ready(b);
});
afterEach(async () => {
  await b.stop();
  await w.close();
});

const STEP = 'post-summary';

async function requestJob(who: 'bruno' | 'farid' | 'grace' = 'bruno') {
  const root = w.post(who, RUN);
  const plan = await eventually(
    () => w.botReplies(root.id).find((p) => p.message.includes('Plan for job:')),
    'plan post',
  );
  return { root, plan, jobId: jobIdIn(plan) };
}

async function replyTo(rootId: string, includes: string) {
  return eventually(
    () => w.botReplies(rootId).find((p) => p.message.includes(includes)),
    `a reply with "${includes}"`,
  );
}

describe('a job from request to proof bundle, in one thread', () => {
  it('plans, refuses the outsider and the requester, counts two approvers from distinct groups, mints once and posts the bundle', async () => {
    const { root, plan, jobId } = await requestJob('bruno');
    expect(plan.root_id).toBe(root.id);
    expect(plan.message).toContain(`\`APPROVE job:${jobId} step:${STEP}\``);
    expect(plan.message).toMatch(/Policy `mattermost-agent-prod` \(`[A-Za-z0-9_-]{8}`\)/);
    expect(plan.props.claw_job_id).toBe(`job:${jobId}`);
    const job = await w.d.db.selectFrom('jobs').selectAll().where('id', '=', jobId).executeTakeFirstOrThrow();
    expect(job).toMatchObject({
      team_id: OPS.team,
      channel_id: OPS.channel,
      root_post_id: root.id,
      requester_id: w.ids.bruno,
    });

    const phrase = `APPROVE job:${jobId} step:${STEP}`;
    w.post('outsider', phrase, root.id);
    await replyTo(
      root.id,
      '@outsider not counted: only members of ops-oncall or sec-reviewers may decide step post-summary (ERR_NOT_ELIGIBLE).',
    );
    w.post('bruno', phrase, root.id);
    await replyTo(root.id, '@bruno not counted: the requester cannot approve their own job');

    const alice = w.post('alice', phrase, root.id);
    const counted = await replyTo(root.id, 'Approval by @alice counted');
    expect(counted.message).toContain('still needed: 1 more approval from sec-reviewers');
    await eventually(
      () => w.sandbox.reactionsOn(alice.id).some((r) => r.emoji_name === 'white_check_mark'),
      'reaction',
    );

    w.post('chioma', phrase, root.id);
    const minted = await replyTo(root.id, 'approved by');
    expect(minted.message).toMatch(
      /approved by @alice \(ops-oncall\), @chioma \(sec-reviewers\); CST `[0-9a-f-]{36}` for `agent:ops-mattermost-1`, expires/,
    );
    const tokens = await w.d.db.selectFrom('tokens').selectAll().where('job_id', '=', jobId).execute();
    expect(tokens.filter((t) => t.step_id === STEP)).toHaveLength(1);
    // The token itself never reaches the chat.
    for (const p of w.sandbox.postsIn(w.channel)) {
      for (const t of tokens) expect(p.message).not.toContain(t.compact ?? '\u0000never');
      expect(p.message).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\./);
    }

    // The agent claims each token, redeems it once and reports; the last report ends the job.
    for (const t of tokens) {
      const claimed = await claimToken(b.engine, { jobId, step: t.step_id, agentId: OPS.executor });
      await redeemToken(b.engine, claimed.token);
      await reportResult(b.engine, {
        jobId,
        step: t.step_id,
        agentId: OPS.executor,
        status: 'succeeded',
        summary: `${t.step_id} done`,
        receipts: [receiptFor(claimed)],
      });
    }
    const ended = await replyTo(root.id, `job:${jobId} completed`);
    const bundleId = String(ended.props.claw_bundle_id);
    expect(bundleId).toMatch(/^pb_[A-Za-z0-9_-]{22,}$/);
    expect(ended.props.claw_bundle_url).toBe(`https://claw.example.test/v1/bundles/${bundleId}`);
    expect(ended.message).toContain(`https://claw.example.test/v1/bundles/${bundleId}`);
    const stored = await w.d.db
      .selectFrom('bundles')
      .selectAll()
      .where('bundle_id', '=', bundleId)
      .executeTakeFirstOrThrow();
    const verdict = verifyBundle(JSON.parse(stored.envelope), {
      trustsSigner: (did) => did === b.engine.keyRing.active.did,
      gatewaySigners: b.engine.gatewaySigners,
    });
    expect(verdict).toMatchObject({ ok: true });
  });
});
