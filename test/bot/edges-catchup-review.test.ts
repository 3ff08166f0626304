import type { KyselyPlugin } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { startSandbox } from '../../src/sandbox/sandbox.js';
import { botPostWithKey, killBot } from '../helpers/bot-faults.js';
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

/**
 * Found in review of issue 9 items 1, 2 and 4: ways a post the bot must act on could be
 * skipped, or applied out of order, by the catch-up machinery (each failed before its fix).
 */

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
  const jobId = jobIdIn(await botPostWithKey(w, root.id, `reply:${root.id}`));
  const alice = w.post('alice', `APPROVE job:${jobId} step:${STEP}`, root.id);
  await botPostWithKey(w, root.id, `reply:${alice.id}`);
  await b.bot.settle();
  return { root: root.id, jobId };
}

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
    await botPostWithKey(w, request.id, `reply:${request.id}`);
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
    await botPostWithKey(w, request.id, `reply:${request.id}`);
    expect(await actionOf(w, request.id)).toBe('run');
  });
});
