import type { KyselyPlugin } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { DECIDE_ATTEMPTS, decideStep } from '../../src/approvals/record-decision.js';
import { ChatCache } from '../../src/chat/chat-cache.js';
import type { Db } from '../../src/db/database.js';
import type { EngineContext } from '../../src/jobs/context.js';
import type { ChatFacts, ChatPost, ChatStreamEvent, ChatUser } from '../../src/ports/chat.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, opsJob, U, type TestEngine } from '../helpers/engine.js';

/**
 * Mattermost's answers are asked before the deciding transaction takes its locks; an event the
 * chat cache hears while the decision waits for them (an edit, a break in the stream) makes the
 * decision start again on new answers, so quorum is evaluated on what Mattermost said last.
 */

let e: TestEngine | undefined;
afterEach(async () => {
  await e?.close();
  e = undefined;
});

const BOT = 'bot0000000000000000000000a';
const postId = (x: string) => x.padEnd(26, '0');

interface World {
  ctx: EngineContext;
  cache: ChatCache;
  posts: Map<string, { userId: string; message: string; edited?: boolean }>;
  /** Every post id Mattermost was asked about, in order. */
  fetched: string[];
  /** Runs `hook` each time a deciding transaction is about to take its locks. */
  beforeLock(hook: () => void): void;
  decide(userId: string, id: string): ReturnType<typeof decideStep>;
  phrase: string;
  jobId: number;
}

const event = (name: string, data: Record<string, unknown>, channelId = ''): ChatStreamEvent => ({
  event: name,
  data,
  broadcast: { omit_users: null, user_id: '', channel_id: channelId, team_id: '' },
});

async function world(): Promise<World> {
  const cache = new ChatCache({ freshMs: 30_000 });
  cache.setBotUserId(BOT);
  cache.streamConnected();
  const posts: World['posts'] = new Map();
  const fetched: string[] = [];
  let thread = { channelId: '', rootId: '' };
  const facts: ChatFacts = {
    stream: cache,
    post: (id) =>
      cache.get(
        `post:${id}`,
        async (): Promise<ChatPost | null> => {
          fetched.push(id);
          const p = posts.get(id);
          if (!p) return null;
          return {
            id,
            create_at: 1,
            update_at: 1,
            edit_at: p.edited ? 2 : 0,
            delete_at: 0,
            user_id: p.userId,
            channel_id: thread.channelId,
            root_id: thread.rootId,
            original_id: '',
            message: p.message,
            type: '',
            props: {},
          };
        },
        (p) => (p ? { scope: { kind: 'channel', channelId: p.channel_id }, rootId: p.root_id } : null),
      ),
    freshUser: (id) =>
      cache.get(
        `user:${id}`,
        async (): Promise<ChatUser | null> => ({ id, username: id, is_bot: false, delete_at: 0 }),
        () => ({ scope: { kind: 'account' } }),
      ),
  };
  e = await createTestEngine({ facts });
  let hook: (() => void) | null = null;
  const plugin: KyselyPlugin = {
    transformQuery(args) {
      if (hook && JSON.stringify(args.node).includes('for share of kill_switch')) hook();
      return args.node;
    },
    async transformResult(args) {
      return args.result;
    },
  };
  const ctx: EngineContext = { ...e.ctx, db: e.ctx.db.withPlugin(plugin) as Db };
  const job = await opsJob(ctx);
  const row = await ctx.db
    .selectFrom('jobs')
    .selectAll()
    .where('id', '=', job.jobId)
    .executeTakeFirstOrThrow();
  thread = { channelId: row.channel_id!, rootId: row.root_post_id! };
  // The bot hears the job's channel, so answers about its posts are kept.
  await cache.get(
    ChatCache.channelKey(thread.channelId, BOT),
    async () => true,
    () => ({ scope: { kind: 'channel', channelId: thread.channelId } }),
  );
  return {
    ctx,
    cache,
    posts,
    fetched,
    beforeLock: (h) => {
      hook = h;
    },
    decide: (userId, id) =>
      decideStep(ctx, {
        kind: 'approve',
        jobId: job.jobId,
        step: 'post-summary',
        userId,
        post: { postId: id, ...thread },
      }),
    phrase: `APPROVE job:${job.jobId} step:post-summary`,
    jobId: job.jobId,
  };
}

const tokensOf = (w: World) =>
  w.ctx.db
    .selectFrom('tokens')
    .select('jti')
    .where('job_id', '=', w.jobId)
    .where('step_id', '=', 'post-summary')
    .execute();

describe(`answers that changed while the decision waited for its locks (${dialectName})`, () => {
  it('an edit heard between asking and locking makes the decision ask again, and the new answer decides', async () => {
    const w = await world();
    const [pa, pd] = [postId('pa'), postId('pd')];
    w.posts.set(pa, { userId: U.alice, message: w.phrase });
    expect((await w.decide(U.alice, pa)).code).toBe('APPROVAL_COUNTED');
    w.posts.set(pd, { userId: U.dmitri, message: w.phrase });
    let edits = 0;
    w.beforeLock(() => {
      if (edits++ > 0) return;
      // alice edits her approval after the bot asked about it, before the job is locked.
      w.posts.set(pa, { userId: U.alice, message: `${w.phrase} (not yet)`, edited: true });
      w.cache.streamEvent(event('post_edited', { post: JSON.stringify({ id: pa }) }));
    });
    const deciding = await w.decide(U.dmitri, pd);
    expect(deciding.code).toBe('APPROVAL_COUNTED');
    expect(deciding.minted).toBeUndefined();
    expect(await tokensOf(w)).toHaveLength(0);
    expect(w.fetched.filter((id) => id === pa)).toHaveLength(2);
    const alice = await w.ctx.db
      .selectFrom('decisions')
      .selectAll()
      .where('post_id', '=', pa)
      .executeTakeFirstOrThrow();
    expect(alice.withdrawn_reason).toBe('post edited');
    const withdrawn = await w.ctx.db
      .selectFrom('job_events')
      .select('payload')
      .where('job_id', '=', w.jobId)
      .where('event_type', '=', 'approval_withdrawn')
      .execute();
    expect(withdrawn).toHaveLength(1);
  });

  it('a break in the stream between asking and locking: asked again, then decided', async () => {
    const w = await world();
    const [pa, pd] = [postId('pa'), postId('pd')];
    w.posts.set(pa, { userId: U.alice, message: w.phrase });
    w.posts.set(pd, { userId: U.dmitri, message: w.phrase });
    expect((await w.decide(U.alice, pa)).code).toBe('APPROVAL_COUNTED');
    let breaks = 0;
    w.beforeLock(() => {
      if (breaks++ > 0) return;
      w.cache.streamDisconnected();
      w.cache.streamConnected();
    });
    const deciding = await w.decide(U.dmitri, pd);
    expect(deciding.code).toBe('QUORUM_MET');
    expect(w.fetched.filter((id) => id === pa)).toHaveLength(2);
  });

  it('an event about something else asks nothing again', async () => {
    const w = await world();
    const [pa, pd] = [postId('pa'), postId('pd')];
    w.posts.set(pa, { userId: U.alice, message: w.phrase });
    w.posts.set(pd, { userId: U.dmitri, message: w.phrase });
    expect((await w.decide(U.alice, pa)).code).toBe('APPROVAL_COUNTED');
    w.beforeLock(() => {
      w.cache.streamEvent(event('post_edited', { post: JSON.stringify({ id: postId('zz') }) }));
      w.cache.streamEvent(event('user_updated', { user: { id: 'other0000000000000000000000' } }));
    });
    const deciding = await w.decide(U.dmitri, pd);
    expect(deciding.code).toBe('QUORUM_MET');
    expect(w.fetched.filter((id) => id === pa)).toHaveLength(1);
  });

  it(`answers that change at every attempt: after ${DECIDE_ATTEMPTS} attempts nothing is decided`, async () => {
    const w = await world();
    const [pa, pd] = [postId('pa'), postId('pd')];
    w.posts.set(pa, { userId: U.alice, message: w.phrase });
    w.posts.set(pd, { userId: U.dmitri, message: w.phrase });
    expect((await w.decide(U.alice, pa)).code).toBe('APPROVAL_COUNTED');
    w.beforeLock(() => w.cache.streamEvent(event('user_updated', { user: { id: U.alice } })));
    await expect(w.decide(U.dmitri, pd)).rejects.toMatchObject({ code: 'ERR_DIRECTORY_UNAVAILABLE' });
    expect(await tokensOf(w)).toHaveLength(0);
    const dmitri = await w.ctx.db.selectFrom('decisions').select('id').where('post_id', '=', pd).execute();
    expect(dmitri).toHaveLength(0);
  });
});
