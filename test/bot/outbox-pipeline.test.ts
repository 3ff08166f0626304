import { afterEach, describe, expect, it } from 'vitest';
import { decideStep } from '../../src/approvals/record-decision.js';
import type { ChatPort, ChatPost } from '../../src/chat/chat-port.js';
import type { LeaseOwner } from '../../src/chat/lease-owner.js';
import { OutboxDelivery } from '../../src/chat/outbox-delivery.js';
import {
  enqueuePost,
  enqueuePostMarkingStale,
  enqueueReaction,
  statusPatchKey,
} from '../../src/chat/outbox.js';
import { mention } from '../../src/chat/mention-token.js';
import { renderStatusPost } from '../../src/presenter/chat-presenter.js';
import { eventually } from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, OPS, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';
import { counted } from '../helpers/statements.js';
import { BOT, fakeMattermost as fakeWithHooks, gate, keyOf } from './outbox-fakes.js';

let e: TestEngine | null = null;
const deliveries: OutboxDelivery[] = [];
afterEach(async () => {
  for (const d of deliveries.splice(0)) await d.stop();
  await e?.close();
  e = null;
});

const HOUR = 3_600_000;

/** The shared fake Mattermost; `onStored` holds the answer once the post exists. */
const fakeMattermost = (onStored?: (post: ChatPost) => Promise<void>) =>
  fakeWithHooks(onStored ? { onStored } : {});

function delivery(
  engine: TestEngine,
  chat: ChatPort,
  opts: { pollMs?: number; owner?: LeaseOwner; parallel?: number; dies?: boolean } = {},
): OutboxDelivery {
  const d = new OutboxDelivery({
    db: engine.ctx.db,
    chat,
    botUserId: BOT,
    clock: engine.clock,
    log: silentLogger(),
    pollMs: opts.pollMs ?? HOUR,
    statusPost: (db, jobId) => renderStatusPost(db, jobId, null),
    ...(opts.owner ? { owner: opts.owner } : {}),
    ...(opts.parallel ? { parallel: opts.parallel } : {}),
  });
  // A process that dies is never stopped: its hung request is not waited for.
  if (!opts.dies) deliveries.push(d);
  return d;
}

/**
 * Reads the replies visible in the outbox, in id order, again and again until stopped: what delivery
 * sees. Delivery keeps a thread in id order, so that order is commit order only if, in every thread,
 * each read is a prefix of the last one. A reply that became visible while one with a smaller id was
 * still uncommitted would be sent before it.
 *
 * The order in which the client hears the commits is no oracle: a backend releases its locks before
 * it answers COMMIT, so the next writer of the thread can commit and be answered first.
 */
function watchVisibleReplies(engine: TestEngine) {
  const read = async () =>
    (
      await engine.ctx.db
        .selectFrom('outbox')
        .select(['dedupe_key', 'root_id'])
        .where('root_id', 'is not', null)
        .orderBy('id')
        .execute()
    ).map((r) => ({ key: r.dedupe_key, root: r.root_id! }));
  const reads: { key: string; root: string }[][] = [];
  let watching = true;
  const loop = (async () => {
    while (watching) reads.push(await read());
  })();
  return {
    /** Stops, reads once more, and returns each thread's replies in id order. */
    async stop(): Promise<Map<string, string[]>> {
      watching = false;
      await loop;
      const last = new Map<string, string[]>();
      const byThread = (rows: { key: string; root: string }[]) => {
        const m = new Map<string, string[]>();
        for (const r of rows) m.set(r.root, [...(m.get(r.root) ?? []), r.key]);
        return m;
      };
      for (const [root, keys] of byThread(await read())) last.set(root, keys);
      for (const seen of reads) {
        for (const [root, keys] of byThread(seen)) {
          expect(keys, `a read of ${root} while writers committed`).toEqual(
            last.get(root)!.slice(0, keys.length),
          );
        }
      }
      expect(reads.length, 'reads made while the writers ran').toBeGreaterThan(1);
      return last;
    },
  };
}

/**
 * Holds the `i`th of `n` writers' transaction open for `n - i` ms: the writers that started first
 * take longest, so that, were they not kept in order, they would commit last.
 */
const dawdle = (i: number, n: number) => new Promise((r) => setTimeout(r, n - i));

const undelivered = async (engine: TestEngine) =>
  (
    await engine.ctx.db
      .selectFrom('outbox')
      .select('id')
      .where('delivered_at', 'is', null)
      .where('failed_at', 'is', null)
      .execute()
  ).length;

describe(`outbox delivery starts at commit (${dialectName})`, () => {
  it('delivers the minted reply of a decision made through the engine with the next poll an hour away', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const mm = fakeMattermost();
    delivery(e, mm.chat).start();
    // The plan post goes out at start; then the delivery has nothing to do until an hour passes.
    await eventually(async () => (await undelivered(e!)) === 0, 'the plan post and its edit delivered');
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice });
    await eventually(async () => (await undelivered(e!)) === 0, 'the edit after the first approval');
    expect(mm.posts.map(keyOf)).not.toContain(`job:${job.jobId}:minted:post-summary`);

    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.chioma });
    const minted = await eventually(
      () => mm.posts.find((p) => keyOf(p) === `job:${job.jobId}:minted:post-summary`),
      'the minted reply',
    );
    expect(minted.message).toContain('approved by');
  });

  it('wakes for nothing a rolled-back transaction wrote', async () => {
    e = await createTestEngine();
    const mm = fakeMattermost();
    delivery(e, mm.chat).start();
    await expect(
      e.ctx.db.transaction().execute(async (trx) => {
        await enqueuePost(
          trx,
          { key: 'rolled-back', jobId: null, channelId: OPS.channel, rootId: null, message: 'never' },
          e!.clock(),
        );
        throw new Error('abandoned');
      }),
    ).rejects.toThrow('abandoned');
    // A later commit is delivered; the rolled-back row never existed.
    await e.ctx.db
      .transaction()
      .execute((trx) =>
        enqueuePost(
          trx,
          { key: 'committed', jobId: null, channelId: OPS.channel, rootId: null, message: 'yes' },
          e!.clock(),
        ),
      );
    await eventually(() => mm.posts.length === 1, 'the committed post');
    expect(mm.posts.map(keyOf)).toEqual(['committed']);
  });
});

describe(`outbox delivery order and concurrency (${dialectName})`, () => {
  it('delivers threads at the same time and each thread in commit order, with transactions committing concurrently', async () => {
    e = await createTestEngine();
    const threads = [
      'threadaaaaaaaaaaaaaaaaaaaa',
      'threadbbbbbbbbbbbbbbbbbbbb',
      'threadcccccccccccccccccccc',
    ];
    // The first post of every thread is answered only once all three are in flight: a delivery
    // that sent one thread at a time would never get past the first.
    const started = new Set<string>();
    let allStarted: () => void = () => {};
    const all = new Promise<void>((r) => (allStarted = r));
    const mm = fakeMattermost(async (post) => {
      started.add(post.root_id);
      if (started.size === threads.length) allStarted();
      await all;
      // Answers come back in a shuffled order.
      for (let i = Math.floor(Math.random() * 5); i > 0; i--) await new Promise((r) => setImmediate(r));
    });
    delivery(e, mm.chat, { parallel: 8 }).start();

    const watch = watchVisibleReplies(e);
    const write = (thread: string, i: number, writer: number) =>
      e!.ctx.db.transaction().execute(async (trx) => {
        await enqueuePost(
          trx,
          {
            key: `${thread}:${i}`,
            jobId: null,
            channelId: OPS.channel,
            rootId: thread,
            message: `message ${i}`,
          },
          e!.clock(),
        );
        await dawdle(writer, 18);
      });
    await Promise.all(threads.flatMap((t, k) => Array.from({ length: 6 }, (_, i) => write(t, i, k * 6 + i))));
    const committed = await watch.stop();

    await eventually(() => mm.posts.length === threads.length * 6, 'every post delivered');
    for (const t of threads) {
      const sent = mm.posts.filter((p) => p.root_id === t).map(keyOf);
      expect(sent, t).toEqual(committed.get(t));
    }
  });
});

describe(`rows leased together (${dialectName})`, () => {
  it('sends the reply before the reaction and the status edit written ahead of it', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    const base = fakeMattermost();
    const calls: string[] = [];
    const chat = {
      ...base.chat,
      user: base.chat.user.bind(base.chat),
      postsSince: base.chat.postsSince.bind(base.chat),
      createPost: (p: Parameters<ChatPort['createPost']>[0]) => {
        calls.push(`post ${String(p.props?.claw_outbox_key)}`);
        return base.chat.createPost(p);
      },
      addReaction: (...args: Parameters<ChatPort['addReaction']>) => {
        calls.push(`reaction ${args[2]}`);
        return base.chat.addReaction(...args);
      },
      patchPost: (...args: Parameters<ChatPort['patchPost']>) => {
        calls.push('edit');
        return base.chat.patchPost(...args);
      },
    } as ChatPort;
    const d = delivery(e, chat);
    // The plan post and its status first, so that the edit below has a post to edit.
    d.start();
    await eventually(async () => (await undelivered(e!)) === 0, 'the plan post delivered');
    await d.stop();
    calls.length = 0;

    const thread = 'threadaaaaaaaaaaaaaaaaaaaa';
    await ctx.db.transaction().execute(async (trx) => {
      await enqueueReaction(
        trx,
        {
          key: 'react:one',
          jobId: job.jobId,
          channelId: OPS.channel,
          postId: thread,
          emoji: 'white_check_mark',
        },
        e!.clock(),
      );
      // An approval: the job's status post is to be edited.
      await decideStep(
        ctx,
        { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice },
        trx,
      );
      // Names someone, as a minted reply does: the post's request waits for that lookup.
      await enqueuePost(
        trx,
        {
          key: 'reply:one',
          jobId: job.jobId,
          channelId: OPS.channel,
          rootId: thread,
          message: `approved by ${mention(U.alice)}`,
        },
        e!.clock(),
      );
    });
    delivery(e, chat).start();
    await eventually(async () => (await undelivered(e!)) === 0, 'the three rows delivered');
    expect(calls[0]).toBe('post reply:one');
    expect(calls.slice(1).sort()).toEqual(['edit', 'reaction white_check_mark']);
  });
});

describe(`a delivered post and what waits behind it (${dialectName})`, () => {
  const thread = 'threadbbbbbbbbbbbbbbbbbbbb';
  const reply = (key: string) => ({
    key,
    jobId: null,
    channelId: OPS.channel,
    rootId: thread,
    message: `message ${key}`,
  });

  it('a later post of its thread, written before it was sent, is sent at once after it (no poll)', async () => {
    e = await createTestEngine();
    await e.ctx.db.transaction().execute(async (trx) => {
      await enqueuePost(trx, reply('one'), e!.clock());
      await enqueuePost(trx, reply('two'), e!.clock());
    });
    const mm = fakeMattermost();
    delivery(e, mm.chat).start();
    await eventually(() => mm.posts.length === 2, 'both posts, the next poll an hour away');
    expect(mm.posts.map(keyOf)).toEqual(['one', 'two']);
  });

  it('a status edit that waited for its status post is sent at once after it (no poll)', async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const job = await opsJob(ctx);
    // The job moves before its plan (the status post) is posted: its edit waits for the post.
    await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice });
    const held = gate();
    const mm = fakeWithHooks({ onCreate: () => held.pass() });
    delivery(e, mm.chat).start();
    await held.reached;
    await eventually(
      async () =>
        (
          await ctx.db
            .selectFrom('outbox')
            .select('last_error')
            .where('dedupe_key', '=', statusPatchKey(job.jobId))
            .executeTakeFirstOrThrow()
        ).last_error === 'waiting for the status post',
      'the edit waiting for its post',
    );
    held.open();
    await eventually(() => mm.patches.length === 1, 'the edit, the next poll an hour away');
  });

  it('with nothing behind it, leases nothing more: 3 statements for one post', async () => {
    e = await createTestEngine();
    await e.ctx.db.transaction().execute((trx) => enqueuePost(trx, reply('alone'), e!.clock()));
    const c = counted(e.ctx);
    const mm = fakeMattermost();
    const d = new OutboxDelivery({
      db: c.ctx.db,
      chat: mm.chat,
      botUserId: BOT,
      clock: e.clock,
      log: silentLogger(),
      pollMs: HOUR,
    });
    d.start();
    await eventually(() => mm.posts.length === 1, 'the post');
    await d.stop();
    // The start (leases of processes gone), the lease, the post recorded delivered.
    expect(c.statements()).toBe(3);
  });
});

describe(`a reply written with its job's status post re-armed (${dialectName})`, () => {
  it("takes its thread's place in commit order, with transactions committing concurrently", async () => {
    e = await createTestEngine();
    const { ctx } = e;
    const jobs = await Promise.all([opsJob(ctx), opsJob(ctx), opsJob(ctx)]);
    const rows = await ctx.db
      .selectFrom('jobs')
      .selectAll()
      .where(
        'id',
        'in',
        jobs.map((j) => j.jobId),
      )
      .execute();
    const thread = 'threadaaaaaaaaaaaaaaaaaaaa';
    const version = async (jobId: number) =>
      (
        await ctx.db
          .selectFrom('outbox')
          .select('version')
          .where('dedupe_key', '=', statusPatchKey(jobId))
          .executeTakeFirstOrThrow()
      ).version;
    const before = await Promise.all(rows.map((r) => version(r.id)));
    const watch = watchVisibleReplies(e);
    const write = (i: number) =>
      ctx.db.transaction().execute(async (trx) => {
        const job = rows[i % rows.length]!;
        const key = `reply-${i}`;
        await enqueuePostMarkingStale(
          trx,
          { key, jobId: job.id, channelId: OPS.channel, rootId: thread, message: `message ${i}` },
          { ...job, channel_id: job.channel_id! },
          e!.clock(),
        );
        await dawdle(i, 18);
      });
    await Promise.all(Array.from({ length: 18 }, (_, i) => write(i)));

    const committed = await watch.stop();
    expect(committed.get(thread)).toHaveLength(18);
    expect(await Promise.all(rows.map((r) => version(r.id)))).toEqual(before.map((v) => v + 6));
  });
});

describe(`a process that dies between commit and send (${dialectName})`, () => {
  /** A lease holder whose process the next one knows to be gone. */
  const owner = (id: string, gone: string[] = []): LeaseOwner => ({ id, isGone: (o) => gone.includes(o) });

  it('leaves its posts to the next process, which sends each once: before Mattermost got it, and after', async () => {
    e = await createTestEngine();
    const job = await opsJob(e.ctx);
    // The first process sends the plan post, then hangs (dies) before it hears Mattermost's answer.
    const hung = new Promise<void>(() => {});
    const first = fakeMattermost(() => hung);
    const a = delivery(e, first.chat, { owner: owner('first 1'), dies: true });
    a.start();
    await eventually(() => first.posts.length === 1, 'the plan post reaching Mattermost');
    // Dead: it hears of no more commits (stopping waits for the hung request forever).
    void a.stop();
    // A second reply, committed while the first process is gone, was never sent at all.
    await e.ctx.db
      .transaction()
      .execute((trx) =>
        enqueuePost(
          trx,
          { key: 'after-the-crash', jobId: null, channelId: OPS.channel, rootId: null, message: 'late' },
          e!.clock(),
        ),
      );

    // The next process shares the server's posts (it reads them back to find earlier successes).
    const server = first.posts;
    const second = fakeMattermost(async (post) => {
      server.push(post);
    });
    second.chat.postsSince = async (channelId: string) => server.filter((p) => p.channel_id === channelId);
    delivery(e, second.chat, { owner: owner('second 2', ['first 1']) }).start();
    await eventually(async () => (await undelivered(e!)) === 0, 'everything delivered');

    const keys = server.map(keyOf);
    expect(keys.filter((k) => k === keyOf(first.posts[0]!))).toHaveLength(1);
    expect(keys.filter((k) => k === 'after-the-crash')).toHaveLength(1);
    const plan = await e.ctx.db
      .selectFrom('outbox')
      .select(['delivered_post_id', 'attempts'])
      .where('job_id', '=', job.jobId)
      .where('kind', '=', 'post')
      .executeTakeFirstOrThrow();
    // Found, not sent again: the post the first process made.
    expect(plan.delivered_post_id).toBe(first.posts[0]!.id);
    expect(plan.attempts).toBe(2);
    expect(new Set(keys).size).toBe(keys.length);
  });
});
