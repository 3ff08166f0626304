import { afterEach, describe, expect, it } from 'vitest';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { botPostWithKey, expectHandledOnce, killBot, outboxDrained } from '../helpers/bot-faults.js';
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
import { actionOf } from '../helpers/agent-api.js';
import { dialectName } from '../helpers/db.js';

let w: World;
const bots: RunningBot[] = [];

afterEach(async () => {
  for (const b of bots.splice(0)) await b.stop();
  await w.close();
});

async function bot(opts: { wait?: boolean } = {}): Promise<RunningBot> {
  const b = await startBot(w);
  bots.push(b);
  if (opts.wait !== false) await ready(b);
  return b;
}

const STEP = 'post-summary';

/** Tokens of the gated step (auto steps get theirs when the job is created). */
const tokensOf = (jobId: number) =>
  w.d.db
    .selectFrom('tokens')
    .select(['jti', 'step_id'])
    .where('job_id', '=', jobId)
    .where('step_id', '=', STEP)
    .execute();

/** A job with alice's approval counted, then the bot killed. */
async function jobWithOneApprovalThenKill(): Promise<{ root: string; jobId: number; first: RunningBot }> {
  const first = await bot();
  const root = w.post('bruno', RUN);
  const jobId = jobIdIn(await botPostWithKey(w, root.id, `reply:${root.id}`));
  const alice = w.post('alice', `APPROVE job:${jobId} step:${STEP}`, root.id);
  await botPostWithKey(w, root.id, `reply:${alice.id}`);
  await first.bot.settle();
  await killBot(first);
  return { root: root.id, jobId, first };
}

describe(`catch-up cursors never pass an unhandled post (${dialectName})`, () => {
  it('a REVOKE missed while down is applied before live approvals, even when the first catch-up fails', async () => {
    w = await createWorld();
    const { root, jobId, first } = await jobWithOneApprovalThenKill();

    // While the bot is down, security revokes the job.
    const revoke = w.post('erin', `REVOKE job:${jobId} suspicious request`, root);
    // The bot comes back but cannot read the channel's history for a while.
    w.sandbox.injectFault({
      status: 503,
      forMs: 2_500,
      method: 'GET',
      pathPrefix: `/api/v4/channels/${w.channel}/posts`,
    });
    const restarted = await bot({ wait: false });
    await eventually(() => restarted.bot.readiness().ok, 'the restarted bot connected');
    // Live traffic in the channel meanwhile: chatter, a new request, and the deciding approval.
    w.post('farid', 'is the payments dashboard red for anyone else?');
    const second = w.post('farid', RUN);
    const dmitri = w.post('dmitri', `APPROVE job:${jobId} step:${STEP}`, root);

    await botPostWithKey(w, root, `reply:${revoke.id}`);
    await botPostWithKey(w, second.id, `reply:${second.id}`);
    await botPostWithKey(w, root, `reply:${dmitri.id}`);
    await restarted.bot.settle();
    await outboxDrained(w);

    // The revoke was applied first: the live approval found the job revoked, nothing minted.
    expect(await actionOf(w, revoke.id)).toBe('revoke:JOB_REVOKED');
    expect(await actionOf(w, dmitri.id)).toBe('approve:ERR_JOB_REVOKED');
    expect(await tokensOf(jobId)).toEqual([]);
    const job = await w.d.db.selectFrom('jobs').select('status').where('id', '=', jobId).executeTakeFirst();
    expect(job?.status).toBe('revoked');
    expect(await actionOf(w, second.id)).toBe('run');
    expectHandledOnce([first, restarted], [revoke.id, dmitri.id, second.id]);
  });

  it('a request missed in one channel is answered while another channel’s catch-up is throttled', async () => {
    w = await createWorld();
    // A second channel a shipped policy claims; it sorts before ours and Mattermost throttles it.
    const slow = w.sandbox.createChannel({
      id: '764sdesxud1ew5yaqwmgdw4pe9',
      team_id: w.team,
      name: 'change-requests',
      type: 'O',
    }).id;
    w.sandbox.addChannelMember(slow, w.botUserId);
    const first = await bot();
    await killBot(first);
    const missed = w.post('bruno', RUN);
    w.sandbox.injectFault({
      status: 429,
      retryAfterSeconds: 30,
      forMs: 120_000,
      method: 'GET',
      pathPrefix: `/api/v4/channels/${slow}/posts`,
    });
    const restarted = await bot({ wait: false });
    // Live chatter in our channel arrives around the catch-up.
    await eventually(() => restarted.bot.readiness().ok, 'the restarted bot connected');
    w.post('farid', 'chatter while the bot catches up');
    await botPostWithKey(w, missed.id, `reply:${missed.id}`);
    expect(await actionOf(w, missed.id)).toBe('run');
    w.sandbox.clearFaults();
  });
});

describe(`catch-up paging loses nothing when many posts share one millisecond (${dialectName})`, () => {
  it('handles the deciding approval that sits past the 1000th change, in the boundary millisecond', async () => {
    let frozen: number | null = null;
    const sandbox = await startSandbox({ now: () => frozen ?? Date.now() });
    w = await createWorld({ sandbox });
    const { root, jobId } = await jobWithOneApprovalThenKill();

    // While down: 999 changes in one millisecond, then the next millisecond holds chatter and
    // the deciding approval, so the boundary of the first page of 1000 falls inside it.
    const t1 = Date.now() + 5;
    frozen = t1;
    for (let i = 0; i < 999; i++) w.post('farid', `status update ${i}`);
    frozen = t1 + 1;
    w.post('alice', 'still watching');
    w.post('farid', 'same here');
    const dmitri = w.post('dmitri', `APPROVE job:${jobId} step:${STEP}`, root);
    frozen = null;
    expect(dmitri.update_at).toBe(t1 + 1);

    const restarted = await bot();
    await botPostWithKey(w, root, `job:${jobId}:minted:${STEP}`);
    await restarted.bot.settle();
    expect(await actionOf(w, dmitri.id)).toBe('approve:QUORUM_MET');
    expect(await tokensOf(jobId)).toHaveLength(1);
  });
});

describe(`a post the database cannot store (${dialectName})`, () => {
  it('is recorded as refused, answered once, and neither pins the cursor nor loops', async () => {
    w = await createWorld();
    const first = await bot();
    const bad = w.post('bruno', '@clawbot frobnicate a\u0000b');
    await botPostWithKey(w, bad.id, `reply:${bad.id}`);
    expect(await actionOf(w, bad.id)).toBe('unprocessable');
    const after = w.post('bruno', RUN);
    await botPostWithKey(w, after.id, `reply:${after.id}`);
    expect(await actionOf(w, after.id)).toBe('run');
    await first.bot.settle();
    await first.stop();
    bots.splice(0);

    // A restart reads from the cursor: the refused post is not handled again.
    const restarted = await bot();
    await restarted.bot.settle();
    expect(
      restarted.handled
        .filter((h) => h.post.id === bad.id && !(h.result instanceof Error))
        .map((h) => (h.result as { outcome: string }).outcome),
    ).not.toContain('handled');
    expect(w.botReplies(bad.id)).toHaveLength(1);
  });
});
