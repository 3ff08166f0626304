import { afterEach, describe, expect, it } from 'vitest';
import { confirmRequester } from '../../src/approvals/confirm-requester.js';
import { decideStep, type PostContext } from '../../src/approvals/record-decision.js';
import { ChatCache } from '../../src/chat/chat-cache.js';
import { OUTBOX_KEY_PROP } from '../../src/chat/outbox-delivery.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { endJobByCommand } from '../../src/jobs/revoke-job.js';
import type { ChatFacts, ChatPost } from '../../src/ports/chat.js';
import { readChain } from '../../src/proofs/event-chain.js';
import { dialectName } from '../helpers/db.js';
import { agentJob, createTestEngine, OPS, type TestEngine, U } from '../helpers/engine.js';

/**
 * An agent's job whose plan post is made but not recorded as its thread: a decision in that
 * thread binds the job to it, as the plan post's delivery would, only when Mattermost says the
 * root is the bot's own root post in the job's channel carrying the job's plan outbox key.
 */

let e: TestEngine | undefined;
afterEach(async () => {
  await e?.close();
  e = undefined;
});

const BOT = 'bot0000000000000000000000a';
const id = (x: string) => x.padEnd(26, '0');
const PLAN = id('plan');

async function world(opts: { botKnown?: boolean } = {}) {
  const cache = new ChatCache({ freshMs: 0 });
  if (opts.botKnown ?? true) cache.setBotUserId(BOT);
  cache.streamConnected();
  const posts = new Map<string, ChatPost>();
  const facts: ChatFacts = {
    stream: cache,
    post: (p) => Promise.resolve(posts.get(p) ?? null),
    freshUser: (u) => Promise.resolve({ id: u, username: u, is_bot: false, delete_at: 0 }),
  };
  e = await createTestEngine({ facts });
  const ctx: EngineContext = e.ctx;
  const jobId = await agentJob(ctx);
  const root = (over: Partial<ChatPost> = {}): ChatPost => ({
    id: PLAN,
    create_at: 1,
    update_at: 1,
    edit_at: 0,
    delete_at: 0,
    user_id: BOT,
    channel_id: OPS.channel,
    root_id: '',
    original_id: '',
    message: 'plan',
    type: '',
    props: { [OUTBOX_KEY_PROP]: `job:${jobId}:plan` },
    ...over,
  });
  let n = 0;
  const reply = (): PostContext => ({ postId: id(`reply${++n}`), channelId: OPS.channel, rootId: PLAN });
  const row = () =>
    ctx.db
      .selectFrom('jobs')
      .select(['root_post_id', 'status'])
      .where('id', '=', jobId)
      .executeTakeFirstOrThrow();
  const bindings = async () =>
    (await readChain(ctx.db, jobId)).filter((x) => x.event_type === 'thread_bound');
  return { ctx, posts, root, reply, row, bindings, jobId };
}

describe(`a decision in an agent's plan post thread not yet recorded (${dialectName})`, () => {
  it('CONFIRM binds the job to the plan post, once, and counts', async () => {
    const w = await world();
    w.posts.set(PLAN, w.root());
    const o = await confirmRequester(w.ctx, { jobId: w.jobId, userId: U.grace, post: w.reply() });
    expect(o.code).toBe('REQUESTER_CONFIRMED');
    expect((await w.row()).root_post_id).toBe(PLAN);
    const bound = await w.bindings();
    expect(bound.map((x) => JSON.parse(String(x.payload)) as unknown)).toEqual([{ root_post_id: PLAN }]);
    // Bound now: the next decision in the thread binds nothing again.
    const again = await decideStep(w.ctx, {
      kind: 'approve',
      jobId: w.jobId,
      step: 'post-summary',
      userId: U.alice,
      post: w.reply(),
    });
    expect(again.code).toBe('APPROVAL_COUNTED');
    expect(await w.bindings()).toHaveLength(1);
  });

  it('APPROVE binds it too, and its events follow the binding in the chain', async () => {
    const w = await world();
    w.posts.set(PLAN, w.root());
    expect((await confirmRequester(w.ctx, { jobId: w.jobId, userId: U.grace })).code).toBe(
      'REQUESTER_CONFIRMED',
    );
    const o = await decideStep(w.ctx, {
      kind: 'approve',
      jobId: w.jobId,
      step: 'post-summary',
      userId: U.alice,
      post: w.reply(),
    });
    expect(o.code).toBe('APPROVAL_COUNTED');
    const chain = await readChain(w.ctx.db, w.jobId);
    const types = chain.map((x) => x.event_type);
    expect(types.indexOf('thread_bound')).toBeGreaterThan(-1);
    expect(types.indexOf('approval_recorded')).toBe(types.indexOf('thread_bound') + 1);
    expect(chain.map((x) => x.seq)).toEqual(chain.map((_, i) => chain[0]!.seq + i));
  });

  it('REVOKE by the security group binds it and ends the job', async () => {
    const w = await world();
    w.posts.set(PLAN, w.root());
    const o = await endJobByCommand(w.ctx, {
      kind: 'revoke',
      jobId: w.jobId,
      actor: { kind: 'user', userId: U.erin },
      reason: 'stop',
      post: w.reply(),
    });
    expect(o.code).toBe('JOB_REVOKED');
    expect(await w.row()).toEqual({ root_post_id: PLAN, status: 'revoked' });
    expect(await w.bindings()).toHaveLength(1);
  });

  const spoofs: [string, (w: Awaited<ReturnType<typeof world>>) => ChatPost | null][] = [
    ["a person's own root post with the prop", (w) => w.root({ user_id: U.grace })],
    [
      "the bot's plan post of another job",
      (w) => w.root({ props: { [OUTBOX_KEY_PROP]: `job:${w.jobId + 1}:plan` } }),
    ],
    ["the bot's post in another channel", (w) => w.root({ channel_id: id('elsewhere') })],
    ["a reply of the bot's, not a root", (w) => w.root({ root_id: id('other') })],
    ["the bot's post, deleted", (w) => w.root({ delete_at: 5 })],
    ["the bot's post without the prop", (w) => w.root({ props: {} })],
    ['no post at all', () => null],
  ];
  for (const [what, make] of spoofs) {
    it(`${what}: not the job's thread, nothing bound`, async () => {
      const w = await world();
      const p = make(w);
      if (p) w.posts.set(PLAN, p);
      const o = await confirmRequester(w.ctx, { jobId: w.jobId, userId: U.grace, post: w.reply() });
      expect(o.code).toBe('ERR_WRONG_THREAD');
      expect((await w.row()).root_post_id).toBeNull();
      expect(await w.bindings()).toEqual([]);
    });
  }

  it("when the bot's own id is not known, nothing is bound", async () => {
    const w = await world({ botKnown: false });
    w.posts.set(PLAN, w.root());
    const o = await decideStep(w.ctx, {
      kind: 'approve',
      jobId: w.jobId,
      step: 'post-summary',
      userId: U.alice,
      post: w.reply(),
    });
    expect(o.code).toBe('ERR_WRONG_THREAD');
    expect((await w.row()).root_post_id).toBeNull();
  });
});
