import type { KyselyPlugin } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { startSandbox } from '@claw-approvals/mattermost-sandbox';
import {
  answerToRoot,
  botPostWithKey,
  expectHandledOnce,
  killBot,
  outboxDrained,
} from '../helpers/bot-faults.js';
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
import { createTestDb, dialectName } from '../helpers/db.js';

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

/** A job with alice's approval counted. */
async function jobWithOneApproval(b: RunningBot): Promise<{ root: string; jobId: number }> {
  const root = w.post('bruno', RUN);
  const jobId = jobIdIn(await answerToRoot(w, root.id));
  const alice = w.post('alice', `APPROVE job:${jobId} step:${STEP}`, root.id);
  await botPostWithKey(w, root.id, `reply:${alice.id}`);
  await b.bot.settle();
  return { root: root.id, jobId };
}

/** A job with alice's approval counted, then the bot killed. */
async function jobWithOneApprovalThenKill(): Promise<{ root: string; jobId: number; first: RunningBot }> {
  const first = await bot();
  const job = await jobWithOneApproval(first);
  await killBot(first);
  return { ...job, first };
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
    await answerToRoot(w, second.id);
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
    await answerToRoot(w, missed.id);
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
    await answerToRoot(w, bad.id);
    expect(await actionOf(w, bad.id)).toBe('unprocessable');
    const after = w.post('bruno', RUN);
    await answerToRoot(w, after.id);
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

// Found in review: ways a post could be skipped or applied out of order (each failed before its fix).

describe(`catch-up paging against Mattermost's GetPostsSince (${dialectName})`, () => {
  it('a thread root that comes along with a full page does not move `since` past unread changes', async () => {
    // GetPostsSince returns the (at most) 1000 changes after `since` AND the roots of their
    // threads. A reply moves its root's UpdateAt (sqlstore SaveMultiple), so a root can carry
    // an UpdateAt far past the page's last change; the next page must not start there.
    let frozen: number | null = null;
    const sandbox = await startSandbox({ now: () => frozen ?? Date.now() });
    w = await createWorld({ sandbox });
    const first = await bot();
    const { root, jobId } = await jobWithOneApproval(first);
    await killBot(first);

    const t0 = Date.now() + 5;
    frozen = t0;
    w.post('farid', 'anyone looking at this one?', root); // a reply: its root comes with page 1
    for (let i = 0; i < 999; i++) w.post('farid', `status update ${i}`);
    frozen = t0 + 1;
    const revoke = w.post('erin', `REVOKE job:${jobId} suspicious request`, root);
    frozen = t0 + 2;
    const dmitri = w.post('dmitri', `APPROVE job:${jobId} step:${STEP}`, root);
    frozen = null;

    const restarted = await bot();
    await eventually(() => actionOf(w, dmitri.id), 'the deciding approval handled');
    await restarted.bot.settle();

    expect(await actionOf(w, revoke.id)).toBe('revoke:JOB_REVOKED');
    expect(await actionOf(w, dmitri.id)).toBe('approve:ERR_JOB_REVOKED');
    expect(await tokensOf(jobId)).toEqual([]);
  });
});

describe(`a new connection while a channel's catch-up is running (${dialectName})`, () => {
  it('keeps holding live decisions until the second catch-up pass has read what the gap missed', async () => {
    w = await createWorld();
    const first = await bot();
    const { root, jobId } = await jobWithOneApproval(first);
    await killBot(first);

    // Missed while down, and slow to handle: the author's profile lookup is throttled, so the
    // restarted bot's first catch-up pass is still running when its WebSocket is replaced.
    w.sandbox.injectFault({
      status: 429,
      retryAfterSeconds: 1,
      times: 3,
      method: 'GET',
      pathPrefix: `/api/v4/users/${w.ids.grace}`,
    });
    const slow = w.post('grace', RUN);
    const restarted = await bot({ wait: false });
    await eventually(
      () => w.sandbox.requestCount({ pathPrefix: `/api/v4/users/${w.ids.grace}`, status: 429 }) > 0,
      'the first pass handling the slow post',
    );
    const catchUps = restarted.bot.stats.catchUps;

    // The server restarts (new connection, nothing replayed); security revokes meanwhile.
    await w.sandbox.restart();
    const revoke = w.post('erin', `REVOKE job:${jobId} suspicious request`, root);
    await eventually(
      () => restarted.bot.stats.catchUps > catchUps && restarted.bot.readiness().ok,
      'the bot on its new connection',
    );
    // Made after the revoke, live.
    const dmitri = w.post('dmitri', `APPROVE job:${jobId} step:${STEP}`, root);

    await eventually(() => actionOf(w, slow.id), 'the slow request handled');
    await eventually(() => actionOf(w, dmitri.id), 'the live approval handled');
    await restarted.bot.settle();

    expect(await actionOf(w, revoke.id)).toBe('revoke:JOB_REVOKED');
    expect(await actionOf(w, dmitri.id)).toBe('approve:ERR_JOB_REVOKED');
    expect(await tokensOf(jobId)).toEqual([]);
  });
});

/** A database whose writes fail with `code` while `failing` is set (reads still work). */
async function writesFailing(code: string) {
  const direct = await createTestDb();
  const state = { failing: false };
  const plugin: KyselyPlugin = {
    transformQuery(args) {
      const kind = args.node.kind;
      if (
        state.failing &&
        (kind === 'InsertQueryNode' || kind === 'UpdateQueryNode' || kind === 'DeleteQueryNode')
      )
        throw Object.assign(new Error(`write refused (${code})`), { code });
      return args.node;
    },
    transformResult: (args) => Promise.resolve(args.result),
  };
  return { d: { ...direct, db: direct.db.withPlugin(plugin) }, state };
}

describe(`a post whose writes fail in a synced channel (${dialectName})`, () => {
  it('is retried until it is handled when the failure is a failover (read-only, 25006)', async () => {
    const { d, state } = await writesFailing('25006');
    w = await createWorld({ d });
    const b = await bot();
    state.failing = true;
    const request = w.post('bruno', RUN);
    await eventually(
      () => w.sandbox.requestCount({ pathPrefix: `/api/v4/users/${w.ids.bruno}` }) > 0,
      'the bot working on the request',
    );
    await new Promise((r) => setTimeout(r, 1_000));
    expect(b.handled.some((h) => h.post.id === request.id)).toBe(false);
    state.failing = false;
    await answerToRoot(w, request.id);
    expect(await actionOf(w, request.id)).toBe('run');
  });

  it('is read again from the cursor after the bot gave up on it, without waiting for a reconnect', async () => {
    // 42501 (insufficient privilege: a grant revoked by mistake) is neither transient nor
    // unstorable: the bot gives up after a few tries, and even recording the refusal fails.
    const { d, state } = await writesFailing('42501');
    w = await createWorld({ d });
    const b = await bot();
    state.failing = true;
    const request = w.post('bruno', RUN);
    await eventually(
      () => b.handled.some((h) => h.post.id === request.id && h.result instanceof Error),
      'the bot giving up on the request',
    );
    state.failing = false;
    await answerToRoot(w, request.id);
    expect(await actionOf(w, request.id)).toBe('run');
  });
});
