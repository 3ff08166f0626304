import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KyselyPlugin } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { MattermostRest } from '../../src/chat/mattermost-rest.js';
import { decideStep } from '../../src/approvals/record-decision.js';
import type { ChatPort } from '../../src/chat/chat-port.js';
import { OutboxDelivery } from '../../src/chat/outbox-delivery.js';
import {
  leaseDue,
  markStatusStale,
  releaseLeasesOfGone,
  releaseOwnLeasesExcept,
  statusPatchKey,
} from '../../src/chat/outbox.js';
import { ChatError, mayStillLand } from '../../src/ports/chat-error.js';
import { renderStatusPost } from '../../src/presenter/chat-presenter.js';
import { eventually } from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { createTestEngine, markStatusPostDelivered, opsJob, type TestEngine, U } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';

let e: TestEngine | null = null;
afterEach(async () => {
  await e?.close();
  e = null;
});

const LEASE_MS = 30_000;

/** A Mattermost whose edits fail with `failure` while it is set, and are kept in order otherwise. */
function editingChat() {
  const patches: string[] = [];
  const state: { failure: unknown; tries: number } = { failure: null, tries: 0 };
  const chat = {
    async user(id: string) {
      return { id, username: `u${id.slice(0, 4)}`, delete_at: 0, is_bot: false };
    },
    async patchPost(id: string, patch: { message?: string }) {
      state.tries++;
      if (state.failure) throw state.failure;
      patches.push(patch.message ?? '');
      return { id };
    },
  };
  return { chat: chat as unknown as ChatPort, patches, state };
}

/** A job whose status post was posted, with one approval counted: its edit is due. */
async function jobWithEditDue(t: TestEngine) {
  const { ctx, clock } = t;
  const job = await opsJob(ctx);
  await markStatusPostDelivered(ctx, job.jobId, clock());
  await decideStep(ctx, { kind: 'approve', jobId: job.jobId, step: 'post-summary', userId: U.alice });
  // Only the edit is left to deliver (replies are not what this is about).
  await ctx.db.updateTable('outbox').set({ delivered_at: clock() }).where('kind', '!=', 'patch').execute();
  return job.jobId;
}

const patchRow = (t: TestEngine, jobId: number) =>
  t.ctx.db
    .selectFrom('outbox')
    .selectAll()
    .where('dedupe_key', '=', statusPatchKey(jobId))
    .executeTakeFirstOrThrow();

/** Whether the edit would be leased now by another replica. */
const dueElsewhere = async (t: TestEngine, jobId: number) => {
  const rows = await leaseDue(t.ctx.db, t.clock(), LEASE_MS, 10, 'another-replica', []);
  return rows.some((r) => r.dedupe_key === statusPatchKey(jobId));
};

/** A job whose due edit one delivery tried once, failing with `failure`: the row as it left it. */
async function editFailedWith(t: TestEngine, failure: unknown) {
  const jobId = await jobWithEditDue(t);
  const chat = editingChat();
  chat.state.failure = failure;
  const a = delivery(t, chat.chat);
  a.start();
  await eventually(async () => (await patchRow(t, jobId)).last_error !== null, 'the edit failed');
  await a.stop();
  return { jobId, chat, row: await patchRow(t, jobId) };
}

type Renderer = ConstructorParameters<typeof OutboxDelivery>[0]['statusPost'];

function delivery(
  t: TestEngine,
  chat: ChatPort,
  statusPost?: Renderer,
  more: { db?: TestEngine['ctx']['db']; owner?: string; pollMs?: number } = {},
) {
  return new OutboxDelivery({
    db: more.db ?? t.ctx.db,
    chat,
    botUserId: 'botbotbotbotbotbotbotbotbo',
    clock: t.clock,
    log: silentLogger(),
    leaseMs: LEASE_MS,
    minBackoffMs: 10,
    maxBackoffMs: 10,
    statusPost: statusPost ?? ((db, jobId) => renderStatusPost(db, jobId, null)),
    ...(more.owner ? { owner: { id: more.owner, isGone: () => false } } : {}),
    ...(more.pollMs !== undefined ? { pollMs: more.pollMs } : {}),
  });
}

/** The engine's database, each of whose statements fails (the connection lost) while `failing()` says so. */
function failingDb(t: TestEngine, failing: () => boolean) {
  const plugin: KyselyPlugin = {
    transformQuery(args) {
      if (failing()) throw Object.assign(new Error('the database went away'), { code: '57P01' });
      return args.node;
    },
    transformResult: (args) => Promise.resolve(args.result),
  };
  return t.ctx.db.withPlugin(plugin);
}

/** The failures after which a sent edit may still land. */
const inDoubt = (): [string, unknown][] => [
  [
    'a timeout',
    new ChatError('network', 'cannot reach Mattermost: timed out', null, null, null, {
      cause: new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
    }),
  ],
  [
    'a proxy that gave up waiting',
    new ChatError('unavailable', 'Mattermost error 504: Gateway Timeout', 504),
  ],
  [
    "an ingress's 503, not Mattermost's",
    new ChatError('unavailable', 'Mattermost error 503: upstream reset', 503),
  ],
];

describe(`a status edit sent without an answer (${dialectName})`, () => {
  it.each(inDoubt())(
    'after %s, keeps its lease until it runs out: no newer edit lands before the late one',
    async (_, failure) => {
      e = await createTestEngine();
      const t = e;
      const { jobId, chat, row: held } = await editFailedWith(t, failure);
      expect(held.lease_owner).toBeNull();
      expect(held.lease_until!.getTime()).toBe(t.clock().getTime() + LEASE_MS);
      expect(held.delivered_at).toBeNull();
      // What the post says is no longer known.
      expect([held.message, held.props]).toEqual([null, null]);

      // The job moves on; the backoff is long over, but the lease is not.
      await decideStep(t.ctx, { kind: 'approve', jobId, step: 'post-summary', userId: U.chioma });
      await t.ctx.db
        .updateTable('outbox')
        .set({ delivered_at: t.clock() })
        .where('kind', '!=', 'patch')
        .execute();
      t.clock.advance(LEASE_MS / 1000 - 1);
      expect(await dueElsewhere(t, jobId)).toBe(false);
      t.clock.advance(1);
      expect(await dueElsewhere(t, jobId)).toBe(false); // at the end of the lease, not yet
      t.clock.advance(1);

      // Once it has run out, the newest state is sent.
      chat.state.failure = null;
      const b = delivery(t, chat.chat);
      b.start();
      await eventually(() => chat.patches.length === 1, 'the newer edit');
      await b.stop();
      expect(chat.patches[0]).toContain('approved');
      expect((await patchRow(t, jobId)).delivered_at).not.toBeNull();
    },
  );

  it('is retried after the backoff alone when Mattermost answered, or the request never left', async () => {
    for (const failure of [
      new ChatError('unavailable', 'Mattermost error 503: busy', 503, null, 'api.server.busy.app_error'),
      new ChatError('rate_limited', 'rate limited by Mattermost', 429, 10),
      new ChatError('network', 'cannot reach Mattermost: fetch failed', null, null, null, {
        cause: Object.assign(new TypeError('fetch failed'), {
          cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
        }),
      }),
    ]) {
      e = await createTestEngine();
      const t = e;
      const { jobId, row } = await editFailedWith(t, failure);
      expect([failure.message, row.lease_until, row.lease_owner]).toEqual([failure.message, null, null]);
      t.clock.advance(1);
      expect(await dueElsewhere(t, jobId)).toBe(true);
      await e.close();
      e = null;
    }
  });
});

describe(`what a status edit in doubt leaves behind (${dialectName})`, () => {
  /** A job whose post reads `said`; a renderer that answers `render.now`. */
  async function postSaying(t: TestEngine, said: string) {
    const jobId = await jobWithEditDue(t);
    const render = { now: said };
    const renderer: Renderer = async () => ({ message: render.now, props: {} });
    const chat = editingChat();
    const first = delivery(t, chat.chat, renderer);
    first.start();
    await eventually(() => chat.patches.length === 1, 'the first edit');
    await first.stop();
    const job = await t.ctx.db
      .selectFrom('jobs')
      .selectAll()
      .where('id', '=', jobId)
      .executeTakeFirstOrThrow();
    const moved = () => markStatusStale(t.ctx.db, { ...job, channel_id: job.channel_id! }, t.clock());
    return { jobId, render, renderer, chat, moved };
  }

  it('an edit back to what the post said before the edit in doubt is still sent', async () => {
    // E.g. an approval withdrawn right after it was shown: the board reads as it did before.
    e = await createTestEngine();
    const t = e;
    const s = await postSaying(t, 'A: waiting for approvals');
    s.render.now = 'B: 1 of 2 approvals';
    await s.moved();
    s.chat.state.failure = inDoubt()[0]![1];
    const a = delivery(t, s.chat.chat, s.renderer);
    a.start();
    await eventually(async () => (await patchRow(t, s.jobId)).last_error !== null, 'the edit failed');
    await a.stop();
    s.render.now = 'A: waiting for approvals';
    await s.moved();
    t.clock.advance(LEASE_MS / 1000 + 1);
    s.chat.state.failure = null;
    const b = delivery(t, s.chat.chat, s.renderer);
    b.start();
    await eventually(() => s.chat.patches.length === 2, 'the edit back');
    await b.stop();
    expect(s.chat.patches).toEqual(['A: waiting for approvals', 'A: waiting for approvals']);
  });

  it('an edit that landed but could not be recorded (or came back unreadable) is followed by any edit', async () => {
    for (const after of ['record refused', 'answer unreadable'] as const) {
      e = await createTestEngine();
      const t = e;
      const s = await postSaying(t, 'A: waiting for approvals');
      s.render.now = 'B: 1 of 2 approvals';
      await s.moved();
      // B lands; then one statement fails (recording it), or Mattermost's answer cannot be read.
      const failNext = { n: 0 };
      const db = failingDb(t, () => failNext.n-- > 0);
      const patchPost = s.chat.chat.patchPost.bind(s.chat.chat);
      (s.chat.chat as { patchPost: ChatPort['patchPost'] }).patchPost = async (id, patch) => {
        const answer = await patchPost(id, patch);
        if (after === 'answer unreadable')
          throw new ChatError('rejected', 'Mattermost returned an unexpected post');
        failNext.n = 1;
        return answer;
      };
      const a = delivery(t, s.chat.chat, s.renderer, { db });
      a.start();
      await eventually(async () => (await patchRow(t, s.jobId)).last_error !== null, 'the failure recorded');
      await a.stop();
      expect(s.chat.patches).toEqual(['A: waiting for approvals', 'B: 1 of 2 approvals']);
      expect((await patchRow(t, s.jobId)).message).toBeNull();
      // The job reads as before B: the post, which says B, is edited back.
      (s.chat.chat as { patchPost: ChatPort['patchPost'] }).patchPost = patchPost;
      s.render.now = 'A: waiting for approvals';
      await s.moved();
      t.clock.advance(1);
      const b = delivery(t, s.chat.chat, s.renderer);
      b.start();
      await eventually(() => s.chat.patches.length === 3, 'the edit back');
      await b.stop();
      expect(s.chat.patches[2]).toBe('A: waiting for approvals');
      await e.close();
      e = null;
    }
  });

  it('a lease released unrecorded is resent whatever the row said; held first if its edit may still land', async () => {
    // The holder could not record its outcome (the database went away): an edit answered, one in
    // doubt; or it crashed and its successor releases its lease.
    for (const release of ['answered', 'in doubt', 'crashed'] as const) {
      e = await createTestEngine();
      const t = e;
      const s = await postSaying(t, 'A: waiting for approvals');
      s.render.now = 'B: 1 of 2 approvals';
      await s.moved();
      // A holder leased the edit, sent it, and could not record how it went (or crashed).
      const [row] = (await leaseDue(t.ctx.db, t.clock(), LEASE_MS, 10, 'holder-1', [])).filter(
        (r) => r.dedupe_key === statusPatchKey(s.jobId),
      );
      expect(row).toBeDefined();
      if (release === 'answered') await releaseOwnLeasesExcept(t.ctx.db, 'holder-1', []);
      else if (release === 'in doubt') await releaseOwnLeasesExcept(t.ctx.db, 'holder-1', [], [row!.id]);
      else await releaseLeasesOfGone(t.ctx.db, t.clock(), (o) => o === 'holder-1');
      const released = await patchRow(t, s.jobId);
      expect([released.lease_owner, released.message, released.props]).toEqual([null, null, null]);
      if (release === 'answered') {
        expect(released.lease_until).toBeNull();
      } else {
        expect(released.lease_until!.getTime()).toBe(t.clock().getTime() + LEASE_MS);
        expect(await dueElsewhere(t, s.jobId)).toBe(false);
        t.clock.advance(LEASE_MS / 1000 + 1);
      }
      s.render.now = 'A: waiting for approvals';
      const b = delivery(t, s.chat.chat, s.renderer);
      b.start();
      await eventually(() => s.chat.patches.length === 2, 'the edit after the lease');
      await b.stop();
      expect(s.chat.patches).toEqual(['A: waiting for approvals', 'A: waiting for approvals']);
      await e.close();
      e = null;
    }
  });

  it('an edit in doubt whose hold could not be recorded (the database went away) is released held', async () => {
    e = await createTestEngine();
    const t = e;
    const jobId = await jobWithEditDue(t);
    const outage = { down: false, refused: 0 };
    const db = failingDb(t, () => outage.down && ++outage.refused > 0);
    const chat = editingChat();
    // The edit times out, and the database goes away with it: the hold cannot be written.
    const failure = inDoubt()[0]![1];
    (chat.chat as unknown as { patchPost: () => Promise<never> }).patchPost = async () => {
      outage.down = true;
      throw failure;
    };
    const a = delivery(t, chat.chat, undefined, { db, owner: 'holder-1', pollMs: 20 });
    a.start();
    await eventually(() => outage.refused > 0, 'the hold refused by the database');
    const leased = await patchRow(t, jobId);
    expect(leased.lease_owner).toBe('holder-1');
    outage.down = false;
    t.clock.advance(1); // past the delivery's pause
    await eventually(async () => (await patchRow(t, jobId)).lease_owner === null, 'the orphan released');
    await a.stop();
    const released = await patchRow(t, jobId);
    expect(released.lease_until!.getTime()).toBe(leased.lease_until!.getTime());
    expect([released.message, released.props, released.delivered_at]).toEqual([null, null, null]);
    expect(await dueElsewhere(t, jobId)).toBe(false);
  });

  it('a post released the same way is delivered again at once', async () => {
    e = await createTestEngine();
    const t = e;
    await opsJob(t.ctx);
    const [row] = await leaseDue(t.ctx.db, t.clock(), LEASE_MS, 1, 'holder-1', []);
    expect(row!.kind).toBe('post');
    await releaseOwnLeasesExcept(t.ctx.db, 'holder-1', []);
    const released = await t.ctx.db
      .selectFrom('outbox')
      .selectAll()
      .where('id', '=', row!.id)
      .executeTakeFirstOrThrow();
    expect([released.lease_until, released.lease_owner, released.message]).toEqual([
      null,
      null,
      row!.message,
    ]);
  });
});

describe('mayStillLand', () => {
  it('says which failures leave a sent request in doubt', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const cases: [unknown, boolean][] = [
      [new ChatError('network', 'timed out', null), true],
      [new ChatError('network', 'socket hang up', null, null, null, { cause: { code: 'ECONNRESET' } }), true],
      [new ChatError('network', 'refused', null, null, null, { cause: { cause: refused } }), false],
      [new ChatError('network', 'no such host', null, null, null, { cause: { code: 'ENOTFOUND' } }), false],
      [new ChatError('unavailable', 'bad gateway', 502), true],
      [new ChatError('unavailable', 'gateway timeout', 504), true],
      [new ChatError('unavailable', "Mattermost's own 503", 503, null, 'api.server.busy.app_error'), false],
      [new ChatError('unavailable', "an ingress's 503", 503), true],
      [new ChatError('unavailable', "Mattermost's own 500", 500, null, 'app.post.save.app_error'), false],
      [new ChatError('rate_limited', 'slow down', 429), false],
      [new ChatError('rejected', 'bad request', 400), false],
      [new Error('something else'), true],
    ];
    expect(cases.map(([err]) => mayStillLand(err))).toEqual(cases.map(([, doubt]) => doubt));
  });

  it("reads the real client's failures: refused, cut after sending, a proxy's 503, Mattermost's own", async () => {
    const servers: http.Server[] = [];
    const serve = async (handler: http.RequestListener) => {
      const server = http.createServer(handler);
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    };
    const failureAt = async (url: string) => {
      const rest = new MattermostRest({ url, token: 'token', log: silentLogger(), attempts: 1 });
      return rest.patchPost('post0000000000000000000000', { message: 'x', props: {} }).then(
        () => null,
        (err: unknown) => err,
      );
    };
    try {
      const closed = await serve(() => undefined);
      await new Promise<void>((r) => servers.pop()!.close(() => r()));
      const cut = await serve((req) => req.socket.destroy());
      const proxy = await serve((_, res) =>
        res.writeHead(503, { 'content-type': 'text/plain' }).end('no upstream'),
      );
      const mattermost = await serve((_, res) =>
        res
          .writeHead(503, { 'content-type': 'application/json' })
          .end(JSON.stringify({ id: 'api.server.busy.app_error', message: 'busy', status_code: 503 })),
      );
      const answers = [];
      for (const url of [closed, cut, proxy, mattermost]) answers.push(mayStillLand(await failureAt(url)));
      expect(answers).toEqual([false, true, true, false]);
    } finally {
      for (const server of servers) server.close();
    }
  });
});
