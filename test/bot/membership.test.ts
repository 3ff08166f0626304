import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { groupsDirectory } from '../../src/approvals/directory.js';
import { MattermostBot } from '../../src/bot/bot.js';
import { MattermostRest } from '../../src/chat/mattermost-rest.js';
import { systemClock } from '../../src/clock.js';
import { type EngineContext, JobNotifier } from '../../src/jobs/context.js';
import { PolicyService } from '../../src/policy/policy-service.js';
import { ChatPresenter } from '../../src/presenter/chat-presenter.js';
import { tokenVerifier } from '../../src/tokens/verify-token.js';
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
import { silentLogger } from '../helpers/log.js';
import { testGateway } from '../helpers/receipts.js';
import { newKey, ringOf } from '../helpers/state.js';

// groups.json: ops-oncall delegates to the Mattermost user group uibxf4…, and security to
// the members of the private channel 5xcnr99….
const OPS_ONCALL_GROUP = 'uibxf4oba4dbo6fisi3knuwnjy';
const SECURITY_CHANNEL = '5xcnr99t1annwkxri4w1b9a75b';

let w: World;
let b: RunningBot;
let hank: string;
let ivy: string;

beforeEach(async () => {
  w = await createWorld();
  hank = w.sandbox.createUser({ username: 'hank' }).user.id;
  ivy = w.sandbox.createUser({ username: 'ivy' }).user.id;
  for (const id of [hank, ivy]) w.sandbox.addChannelMember(w.channel, id);
  const group = w.sandbox.createGroup({ id: OPS_ONCALL_GROUP, name: 'ops-oncall' });
  w.sandbox.addGroupMembers(group.id, [hank]);
  const sec = w.sandbox.createChannel({
    id: SECURITY_CHANNEL,
    team_id: w.team,
    name: 'security-response',
    type: 'P',
  });
  w.sandbox.addChannelMember(sec.id, w.botUserId);
  w.sandbox.addChannelMember(sec.id, ivy);
  b = await startBot(w);
  await ready(b);
});
afterEach(async () => {
  await b.stop();
  await w.close();
});

async function job() {
  const root = w.post('grace', RUN);
  const plan = await eventually(
    () => w.botReplies(root.id).find((p) => p.message.includes('Plan for job:')),
    'plan',
  );
  return { root: root.id, jobId: jobIdIn(plan) };
}

const says = (root: string, text: string) =>
  eventually(() => w.botReplies(root).find((p) => p.message.includes(text)), `a reply with "${text}"`);

describe('approver groups that delegate to Mattermost', () => {
  it('a member of the Mattermost user group approves as ops-oncall; quorum with a listed sec-reviewer mints', async () => {
    const { root, jobId } = await job();
    w.sandbox.createPost(hank, {
      channel_id: w.channel,
      root_id: root,
      message: `APPROVE job:${jobId} step:post-summary`,
    });
    await says(root, 'Approval by @hank counted');
    w.post('dmitri', `APPROVE job:${jobId} step:post-summary`, root);
    const minted = await says(root, 'approved by');
    expect(minted.message).toContain('@hank (ops-oncall)');
    expect(minted.message).toContain('@dmitri (sec-reviewers)');
  });

  it('a member of the security channel may REVOKE; someone outside it may not', async () => {
    const { root, jobId } = await job();
    w.post('farid', `REVOKE job:${jobId} looks wrong`, root);
    await says(root, '@farid not counted');
    w.sandbox.createPost(ivy, {
      channel_id: w.channel,
      root_id: root,
      message: `REVOKE job:${jobId} credential leak suspected`,
    });
    await says(root, `job:${jobId} revoked by @ivy`);
    const ended = await says(root, `job:${jobId} revoked**`);
    expect(ended.props.claw_bundle_id).toMatch(/^pb_/);
    const row = await w.d.db
      .selectFrom('jobs')
      .select('status')
      .where('id', '=', jobId)
      .executeTakeFirstOrThrow();
    expect(row.status).toBe('revoked');
  });

  it('fails closed while Mattermost cannot answer the membership question, then decides once', async () => {
    const { root, jobId } = await job();
    w.sandbox.injectFault({ status: 503, forMs: 1_500, method: 'GET', pathPrefix: '/api/v4/users' });
    const post = w.sandbox.createPost(hank, {
      channel_id: w.channel,
      root_id: root,
      message: `APPROVE job:${jobId} step:post-summary`,
    });
    // While the fault lasts, nothing is decided about this post.
    await eventually(
      () => w.sandbox.requestCount({ pathPrefix: '/api/v4/users', status: 503 }) > 0,
      'a refused membership call',
    );
    const early = await w.d.db.selectFrom('decisions').selectAll().where('post_id', '=', post.id).execute();
    expect(early).toHaveLength(0);
    await says(root, 'Approval by @hank counted');
    const decided = await w.d.db.selectFrom('decisions').selectAll().where('post_id', '=', post.id).execute();
    expect(decided).toHaveLength(1);
    expect(decided[0]).toMatchObject({ outcome: 'accepted', reason_code: 'APPROVAL_COUNTED' });
  });
});

/**
 * The bot as `startBot` builds it, but with MATTERMOST_FRESH_SECONDS=30 and the cache's clock in
 * the test's hands: `startBot` asks Mattermost every time (freshness 0), as `serve` did before.
 */
async function startCachedBot(world: World, now: () => number): Promise<RunningBot> {
  const log = silentLogger();
  const keyRing = ringOf(cachedKey);
  const policies = new PolicyService({
    db: world.d.db,
    keyRing,
    clock: systemClock,
    log,
    policiesDir: world.policiesDir,
  });
  await policies.reload();
  const rest = new MattermostRest({
    url: world.sandbox.url,
    token: world.botToken,
    log,
    minBackoffMs: 20,
    maxBackoffMs: 200,
    freshSeconds: 30,
    now,
  });
  const engine: EngineContext = {
    db: world.d.db,
    keyRing,
    verifier: tokenVerifier(keyRing),
    policies,
    directory: groupsDirectory(() => policies.current()?.groups ?? null, rest),
    clock: systemClock,
    log,
    notifier: new JobNotifier(),
    gatewaySigners: new Set([testGateway.did]),
    securityGroup: 'security',
    version: 'test',
    publicUrl: 'https://claw.example.test',
    events: new ChatPresenter({ publicUrl: 'https://claw.example.test' }),
    chat: rest,
  };
  const bot = new MattermostBot({
    url: world.sandbox.url,
    token: world.botToken,
    chat: rest,
    engine,
    log,
    pingIntervalMs: 1_000,
    minBackoffMs: 20,
    maxBackoffMs: 300,
    outboxPollMs: 100,
    firstCatchUpMs: 60_000,
  });
  const handled: RunningBot['handled'] = [];
  bot.onHandled = (post, result) => handled.push({ post, result });
  bot.start();
  return { bot, engine, rest, handled, stop: () => bot.stop() };
}
const cachedKey = newKey();

describe('with the chat cache (MATTERMOST_FRESH_SECONDS=30)', () => {
  let t = 1_000_000;
  let cached: RunningBot;
  beforeEach(async () => {
    // The plain bot of the outer beforeEach leaves: one bot per world.
    await b.stop();
    t = 1_000_000;
    cached = await startCachedBot(w, () => t);
    b = cached;
    await ready(cached);
  });

  const approve = (who: string, root: string, jobId: number) =>
    w.sandbox.createPost(who, {
      channel_id: w.channel,
      root_id: root,
      message: `APPROVE job:${jobId} step:post-summary`,
    });
  const asked = (path: string) => w.sandbox.requestCount({ method: 'GET', pathPrefix: `/api/v4${path}` });
  const eventHeard = async (before: number) =>
    eventually(() => cached.rest.cache.stats.invalidations > before, 'the event reached the cache');
  const tokens = (jobId: number) =>
    w.d.db
      .selectFrom('tokens')
      .selectAll()
      .where('job_id', '=', jobId)
      .where('step_id', '=', 'post-summary')
      .execute();

  it("an approver's second decision within the bound asks Mattermost nothing about them", async () => {
    const first = await job();
    approve(hank, first.root, first.jobId);
    await says(first.root, 'Approval by @hank counted');
    const account = asked(`/users/${hank}`);
    const groups = asked('/users?in_group=');
    expect(account).toBeGreaterThan(0);
    const second = await job();
    approve(hank, second.root, second.jobId);
    await says(second.root, 'Approval by @hank counted');
    expect(asked(`/users/${hank}`)).toBe(account);
    expect(asked('/users?in_group=')).toBe(groups);
  });

  it('a member removed from the security channel may not REVOKE as soon as user_removed arrives', async () => {
    const first = await job();
    w.sandbox.createPost(ivy, {
      channel_id: w.channel,
      root_id: first.root,
      message: `REVOKE job:${first.jobId} leak`,
    });
    await says(first.root, `job:${first.jobId} revoked by @ivy`);
    const membership = `/channels/${SECURITY_CHANNEL}/members/${ivy}`;
    expect(asked(membership)).toBe(1);
    const before = cached.rest.cache.stats.invalidations;
    w.sandbox.removeChannelMember(SECURITY_CHANNEL, ivy);
    await eventHeard(before);
    const second = await job();
    w.sandbox.createPost(ivy, {
      channel_id: w.channel,
      root_id: second.root,
      message: `REVOKE job:${second.jobId} leak`,
    });
    await says(second.root, '@ivy not counted');
    // Asked again, because the event dropped the answer: nothing else changed within the bound.
    expect(asked(membership)).toBe(2);
  });

  it('an approver deactivated after approving does not make up the quorum', async () => {
    const { root, jobId } = await job();
    approve(hank, root, jobId);
    await says(root, 'Approval by @hank counted');
    const before = cached.rest.cache.stats.invalidations;
    w.sandbox.setUserActive(hank, false);
    await eventHeard(before);
    w.post('dmitri', `APPROVE job:${jobId} step:post-summary`, root);
    await says(root, 'Approval by @dmitri counted');
    expect(await tokens(jobId)).toEqual([]);
  });

  it('an edited approval post is withdrawn as before: the other approval alone mints nothing', async () => {
    const { root, jobId } = await job();
    const post = approve(hank, root, jobId);
    await says(root, 'Approval by @hank counted');
    w.sandbox.editPost(hank, post.id, `APPROVE job:${jobId} step:post-summary (edited)`);
    await says(root, 'withdrawn: the post was edited');
    w.post('dmitri', `APPROVE job:${jobId} step:post-summary`, root);
    await says(root, 'Approval by @dmitri counted');
    expect(await tokens(jobId)).toEqual([]);
  });

  it('after the WebSocket breaks, what was cached is asked for again', async () => {
    const first = await job();
    approve(hank, first.root, first.jobId);
    await says(first.root, 'Approval by @hank counted');
    const account = asked(`/users/${hank}`);
    w.sandbox.dropConnections();
    await ready(cached);
    const second = await job();
    approve(hank, second.root, second.jobId);
    await says(second.root, 'Approval by @hank counted');
    expect(asked(`/users/${hank}`)).toBeGreaterThan(account);
  });

  it('a stale answer is asked for again, and while Mattermost cannot answer nothing is decided', async () => {
    const first = await job();
    approve(hank, first.root, first.jobId);
    await says(first.root, 'Approval by @hank counted');
    const second = await job();
    t += 30_000;
    w.sandbox.injectFault({ status: 503, forMs: 1_500, method: 'GET', pathPrefix: '/api/v4/users' });
    const post = approve(hank, second.root, second.jobId);
    await eventually(
      () => w.sandbox.requestCount({ pathPrefix: '/api/v4/users', status: 503 }) > 0,
      'a refused membership call',
    );
    const early = await w.d.db.selectFrom('decisions').selectAll().where('post_id', '=', post.id).execute();
    expect(early).toHaveLength(0);
    await says(second.root, 'Approval by @hank counted');
  });
});
