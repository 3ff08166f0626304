import { describe, expect, it } from 'vitest';
import {
  CHANGES_KEPT,
  ChatCache,
  GROUP_FRESH_MS,
  HEARD_POST_MAX_CHARS,
  HEARD_POSTS_KEPT,
  POSTED_AFTER_CHANGE_MS,
  type WatchedFact,
} from '../../src/chat/chat-cache.js';
import type { ChatStreamEvent } from '../../src/ports/chat.js';

const BOT = 'bot0000000000000000000000a';
const CH = 'chan000000000000000000000a';

function setup(freshMs = 30_000, maxEntries?: number) {
  let t = 1_000_000;
  const cache = new ChatCache({ freshMs, now: () => t, ...(maxEntries ? { maxEntries } : {}) });
  cache.setBotUserId(BOT);
  cache.streamConnected();
  let calls = 0;
  /** A fetch that counts its calls and answers `value`. */
  const answer =
    <T>(value: T) =>
    async () => {
      calls++;
      return value;
    };
  return {
    cache,
    advance: (ms: number) => (t += ms),
    calls: () => calls,
    answer,
    user: (id: string, value: unknown = { id, delete_at: 0 }) =>
      cache.get(`user:${id}`, answer(value), () => ({ scope: { kind: 'account' } })),
    member: (userId: string, value = true, channelId = CH) =>
      cache.get(ChatCache.channelKey(channelId, userId), answer(value), () => ({
        scope: { kind: 'channel', channelId },
      })),
    post: (id: string, rootId = '', channelId = CH) =>
      cache.get(`post:${id}`, answer({ id, root_id: rootId }), () => ({
        scope: { kind: 'channel', channelId },
        rootId,
      })),
    group: (groupId: string, userId: string, value = true) =>
      cache.get(`group:${groupId}:${userId}`, answer(value), () => ({ scope: { kind: 'group' } })),
  };
}

const ev = (
  event: string,
  data: Record<string, unknown>,
  broadcast: Record<string, unknown> = {},
): ChatStreamEvent => ({
  event,
  data,
  broadcast: { omit_users: null, user_id: '', channel_id: '', team_id: '', ...broadcast },
});

describe('freshness', () => {
  it('answers a fresh entry without asking, and asks again once it is older than the bound', async () => {
    const s = setup(30_000);
    await s.user('u1');
    await s.user('u1');
    expect(s.calls()).toBe(1);
    s.advance(29_999);
    await s.user('u1');
    expect(s.calls()).toBe(1);
    s.advance(1);
    await s.user('u1');
    expect(s.calls()).toBe(2);
    expect(s.cache.stats).toMatchObject({ hits: 2, misses: 2, fetches: 2 });
  });

  it('a clock that went backwards makes nothing fresh', async () => {
    const s = setup();
    await s.user('u1');
    s.advance(-1);
    await s.user('u1');
    expect(s.calls()).toBe(2);
  });

  it('freshness 0 asks every time, even for concurrent questions', async () => {
    const s = setup(0);
    await Promise.all([s.user('u1'), s.user('u1')]);
    await s.user('u1');
    expect(s.calls()).toBe(3);
    expect(s.cache.size).toBe(0);
  });
});

describe('the stream', () => {
  it('trusts nothing before the WebSocket is connected, and keeps nothing fetched then', async () => {
    const cache = new ChatCache({ freshMs: 30_000, now: () => 0 });
    let calls = 0;
    const ask = () =>
      cache.get(
        'user:u1',
        async () => ++calls,
        () => ({ scope: { kind: 'account' } }),
      );
    await ask();
    cache.streamConnected();
    await ask();
    await ask();
    expect(calls).toBe(2);
  });

  it('a break drops everything; after a reconnect every answer is asked for again', async () => {
    const s = setup();
    await s.user('u1');
    await s.group('g1', 'u1');
    s.cache.streamDisconnected();
    expect(s.cache.size).toBe(0);
    await s.user('u1'); // while disconnected: asked, not kept
    s.cache.streamConnected();
    await s.user('u1');
    await s.group('g1', 'u1');
    expect(s.calls()).toBe(5);
    await s.user('u1');
    expect(s.calls()).toBe(5);
  });

  it('an answer that arrives after a break is returned but not kept', async () => {
    const s = setup();
    let release!: (v: boolean) => void;
    const pending = s.cache.get(
      'group:g1:u1',
      () => new Promise<boolean>((r) => (release = r)),
      () => ({ scope: { kind: 'group' } }),
    );
    s.cache.streamDisconnected();
    s.cache.streamConnected();
    release(true);
    expect(await pending).toBe(true);
    expect(s.cache.size).toBe(0);
  });
});

describe('events only ever drop answers', () => {
  it('user_updated drops that account (the user an object or a JSON string)', async () => {
    const s = setup();
    await s.user('u1');
    await s.user('u2');
    s.cache.streamEvent(ev('user_updated', { user: { id: 'u1', delete_at: 5 } }));
    s.cache.streamEvent(ev('user_updated', { user: JSON.stringify({ id: 'u2' }) }));
    await s.user('u1');
    await s.user('u2');
    expect(s.calls()).toBe(4);
  });

  it('a garbled user_updated drops every account, and never puts an answer in', async () => {
    const s = setup();
    await s.user('u1');
    s.cache.streamEvent(ev('user_updated', { user: '{not json' }));
    expect(s.cache.size).toBe(0);
    // What the event claims is never an answer: the next question still asks Mattermost.
    s.cache.streamEvent(ev('user_updated', { user: { id: 'u9', delete_at: 0 } }));
    s.cache.streamEvent(ev('user_added', { user_id: 'u9' }, { channel_id: CH }));
    expect(s.cache.size).toBe(0);
    await s.user('u9', null);
    expect(s.calls()).toBe(2);
  });

  it('a channel fact is trusted only while the bot is known to be in that channel', async () => {
    const s = setup();
    await s.member('u1');
    await s.member('u1');
    expect(s.calls()).toBe(2); // the bot's own membership is not known yet
    await s.member(BOT);
    // Neither earlier answer was kept: each was asked before the bot was known to hear the channel.
    await s.member('u1');
    await s.member('u1');
    expect(s.calls()).toBe(4);
    // The bot is not in the other channel: nothing about it is trusted.
    const other = 'chan000000000000000000000b';
    await s.member(BOT, false, other);
    await s.member('u1', true, other);
    await s.member('u1', true, other);
    expect(s.calls()).toBe(7);
  });

  it('user_removed drops that membership at once; the copy to the bot itself drops the whole channel', async () => {
    const s = setup();
    await s.member(BOT);
    await s.member('u1');
    await s.member('u2');
    s.cache.streamEvent(ev('user_removed', { user_id: 'u1', remover_id: '' }, { channel_id: CH }));
    await s.member('u1', false);
    await s.member('u2');
    expect(s.calls()).toBe(4);
    s.cache.streamEvent(ev('user_removed', { channel_id: CH, remover_id: 'x' }, { user_id: BOT }));
    expect(s.cache.size).toBe(0);
  });

  it('leave_team drops the person in every channel (the server removes them without user_removed)', async () => {
    const s = setup();
    await s.member(BOT);
    await s.member('u1');
    await s.member('u2');
    s.cache.streamEvent(ev('leave_team', { user_id: 'u1', team_id: 't' }, { team_id: 't' }));
    expect(s.cache.size).toBe(2);
    s.cache.streamEvent(ev('leave_team', { team_id: 't' }, { team_id: 't' }));
    expect(s.cache.size).toBe(0);
  });

  it('group_member_add/delete drop that membership; unreadable, every group answer', async () => {
    const s = setup();
    await s.group('g1', 'u1');
    await s.group('g1', 'u2');
    s.cache.streamEvent(
      ev('group_member_delete', { group_member: JSON.stringify({ group_id: 'g1', user_id: 'u1' }) }),
    );
    expect(s.cache.size).toBe(1);
    s.cache.streamEvent(ev('group_member_add', { group_member: 42 }));
    expect(s.cache.size).toBe(0);
  });

  it('post_edited drops the post; post_deleted of a root drops its replies too (one event for the thread)', async () => {
    const s = setup();
    await s.member(BOT);
    await s.post('root');
    await s.post('r1', 'root');
    await s.post('r2', 'root');
    await s.post('other');
    s.cache.streamEvent(ev('post_edited', { post: JSON.stringify({ id: 'r2' }) }, { channel_id: CH }));
    expect(s.cache.size).toBe(4);
    s.cache.streamEvent(ev('post_deleted', { post: JSON.stringify({ id: 'root' }) }, { channel_id: CH }));
    expect(s.cache.size).toBe(2); // the bot's membership and 'other'
    s.cache.streamEvent(ev('post_deleted', { post: 'garbage' }, { channel_id: CH }));
    expect(s.cache.size).toBe(1);
  });

  it('an event for an answer still on its way: that answer is returned, not kept, and a new question asks again', async () => {
    const s = setup();
    let release!: (v: unknown) => void;
    let calls = 0;
    const ask = () =>
      s.cache.get(
        'user:u1',
        () => {
          calls++;
          return new Promise((r) => (release = r));
        },
        () => ({ scope: { kind: 'account' } }),
      );
    const first = ask();
    const joined = ask();
    expect(calls).toBe(1);
    s.cache.streamEvent(ev('user_updated', { user: { id: 'u1' } }));
    const firstRelease = release;
    const after = ask();
    expect(calls).toBe(2);
    firstRelease({ id: 'u1', delete_at: 0 });
    release({ id: 'u1', delete_at: 7 });
    expect(await first).toEqual({ id: 'u1', delete_at: 0 });
    expect(await joined).toEqual({ id: 'u1', delete_at: 0 });
    expect(await after).toEqual({ id: 'u1', delete_at: 7 });
  });
});

describe('a posted event is the answer for its post, in a channel the bot hears', () => {
  /** Mattermost's `posted`: the post as a JSON string, the channel in the broadcast. */
  const posted = (post: Record<string, unknown>, channelId: unknown = post.channel_id): ChatStreamEvent =>
    ev('posted', { post: JSON.stringify(post) }, { channel_id: channelId });
  const aPost = (id: string, over: Record<string, unknown> = {}) => ({
    id,
    user_id: 'u1',
    channel_id: CH,
    root_id: '',
    message: 'APPROVE job:1 step:a',
    create_at: 5,
    update_at: 5,
    edit_at: 0,
    delete_at: 0,
    props: {},
    ...over,
  });
  /** The cache's answer for a post, with a fetch that counts (and answers a marker). */
  const ask = (s: ReturnType<typeof setup>, id: string) =>
    s.cache.get(`post:${id}`, s.answer({ fetched: id }), () => ({
      scope: { kind: 'channel', channelId: CH },
      rootId: '',
    }));

  it('is kept as if fetched on arrival: the post as Mattermost sent it, with no request', async () => {
    const s = setup();
    await s.member(BOT);
    s.cache.streamEvent(posted(aPost('p1', { root_id: 'root', props: { a: 1 } })));
    expect(await ask(s, 'p1')).toMatchObject({
      id: 'p1',
      root_id: 'root',
      channel_id: CH,
      message: 'APPROVE job:1 step:a',
      props: { a: 1 },
    });
    expect(s.calls()).toBe(1); // the bot's membership only
    // As old as its arrival: asked again once the bound has passed.
    s.advance(30_000);
    expect(await ask(s, 'p1')).toEqual({ fetched: 'p1' });
  });

  it('is not kept where the bot is not known to hear the channel, or the stream is not whole', async () => {
    const unknown = setup();
    unknown.cache.streamEvent(posted(aPost('p1')));
    await unknown.member(BOT, false);
    unknown.cache.streamEvent(posted(aPost('p2')));
    const down = setup();
    await down.member(BOT);
    down.cache.streamDisconnected();
    down.cache.streamEvent(posted(aPost('p3')));
    down.cache.streamConnected();
    const off = setup(0);
    await off.member(BOT);
    off.cache.streamEvent(posted(aPost('p4')));
    for (const [s, id] of [
      [unknown, 'p1'],
      [unknown, 'p2'],
      [down, 'p3'],
      [off, 'p4'],
    ] as const) {
      expect(await ask(s, id)).toEqual({ fetched: id });
    }
  });

  it('is not kept when it does not read as a post, names another channel, or is deleted', async () => {
    const s = setup();
    await s.member(BOT);
    const other = 'chan000000000000000000000b';
    s.cache.streamEvent(ev('posted', { post: '{not json' }, { channel_id: CH }));
    s.cache.streamEvent(
      ev('posted', { post: JSON.stringify({ id: 'p1', channel_id: CH }) }, { channel_id: CH }),
    );
    s.cache.streamEvent(posted(aPost('p2', { channel_id: other }), CH));
    s.cache.streamEvent(posted(aPost('p3'), other));
    s.cache.streamEvent(posted(aPost('p4'), ''));
    s.cache.streamEvent(posted(aPost('p5', { delete_at: 9 })));
    s.cache.streamEvent(ev('posted', { post: aPost('p6') }, {}));
    expect(s.cache.size).toBe(1);
    for (const id of ['p1', 'p2', 'p3', 'p4', 'p5', 'p6']) expect(await ask(s, id)).toEqual({ fetched: id });
  });

  it('an edit or delete of it, or of its thread root, the bot leaving, or a break drops it', async () => {
    const s = setup();
    await s.member(BOT);
    const heard = (...ids: string[]) => {
      for (const id of ids) s.cache.streamEvent(posted(aPost(id, { root_id: id === 'root' ? '' : 'root' })));
    };
    heard('root', 'r1', 'r2');
    s.cache.streamEvent(ev('post_edited', { post: JSON.stringify({ id: 'r1' }) }, { channel_id: CH }));
    expect(await ask(s, 'r1')).toEqual({ fetched: 'r1' });
    s.cache.streamEvent(ev('post_deleted', { post: JSON.stringify({ id: 'root' }) }, { channel_id: CH }));
    expect(await ask(s, 'r2')).toEqual({ fetched: 'r2' });
    heard('r3');
    s.cache.streamEvent(ev('user_removed', { user_id: BOT }, { channel_id: CH }));
    expect(await ask(s, 'r3')).toEqual({ fetched: 'r3' });
    await s.member(BOT);
    heard('r4');
    s.cache.streamDisconnected();
    s.cache.streamConnected();
    expect(await ask(s, 'r4')).toEqual({ fetched: 'r4' });
  });

  it('is not kept when an edit or delete of it, or of its thread root, was heard before it', async () => {
    // A plugin's MessageHasBeenPosted hook, or another node of a cluster, can put the delete first.
    const s = setup();
    await s.member(BOT);
    const changed = (event: string, id: string) =>
      s.cache.streamEvent(ev(event, { post: JSON.stringify({ id }) }, { channel_id: CH }));
    changed('post_deleted', 'p1');
    changed('post_edited', 'p2');
    changed('post_deleted', 'root');
    s.cache.streamEvent(posted(aPost('p1')));
    s.cache.streamEvent(posted(aPost('p2')));
    s.cache.streamEvent(posted(aPost('r1', { root_id: 'root' })));
    s.cache.streamEvent(posted(aPost('p3')));
    expect(s.cache.size).toBe(2); // the bot's membership and p3
    for (const id of ['p1', 'p2', 'r1']) expect(await ask(s, id)).toEqual({ fetched: id });
    // A broken cluster aside, nothing arrives that late: after the window the id is forgotten.
    s.advance(POSTED_AFTER_CHANGE_MS);
    await s.member(BOT);
    s.cache.streamEvent(posted(aPost('p1')));
    expect(await ask(s, 'p1')).toMatchObject({ id: 'p1', message: 'APPROVE job:1 step:a' });
  });

  it('after an edit or delete that does not say of which post, keeps none for the window', async () => {
    const s = setup(10 * POSTED_AFTER_CHANGE_MS);
    await s.member(BOT);
    s.cache.streamEvent(ev('post_deleted', { post: '{garbled' }, { channel_id: CH }));
    await s.member(BOT);
    s.cache.streamEvent(posted(aPost('p1')));
    s.advance(POSTED_AFTER_CHANGE_MS - 1);
    s.cache.streamEvent(posted(aPost('p2')));
    s.advance(1);
    s.cache.streamEvent(posted(aPost('p3')));
    expect(await ask(s, 'p1')).toEqual({ fetched: 'p1' });
    expect(await ask(s, 'p2')).toEqual({ fetched: 'p2' });
    expect(await ask(s, 'p3')).toMatchObject({ id: 'p3' });
  });

  it(`is not kept when its message and props are longer than ${HEARD_POST_MAX_CHARS} characters`, async () => {
    const s = setup();
    await s.member(BOT);
    s.cache.streamEvent(posted(aPost('long', { message: 'x'.repeat(HEARD_POST_MAX_CHARS) })));
    s.cache.streamEvent(posted(aPost('heavy', { props: { blob: 'y'.repeat(HEARD_POST_MAX_CHARS) } })));
    s.cache.streamEvent(posted(aPost('short')));
    expect(await ask(s, 'long')).toEqual({ fetched: 'long' });
    expect(await ask(s, 'heavy')).toEqual({ fetched: 'heavy' });
    expect(await ask(s, 'short')).toMatchObject({ id: 'short' });
  });

  it('keeps at most a tenth of all answers as heard posts, so a small cache keeps its other answers', async () => {
    const s = setup(30_000, 50);
    await s.member(BOT);
    await s.user('u1');
    for (let i = 0; i < 100; i++) s.cache.streamEvent(posted(aPost(`p${i}`)));
    expect(s.cache.size).toBe(2 + 5);
    await s.member(BOT);
    await s.user('u1');
    expect(s.calls()).toBe(2);
    expect(await ask(s, 'p99')).toMatchObject({ id: 'p99' });
    expect(await ask(s, 'p94')).toEqual({ fetched: 'p94' });
    const tiny = setup(30_000, 9);
    await tiny.member(BOT);
    tiny.cache.streamEvent(posted(aPost('p1')));
    expect(await ask(tiny, 'p1')).toEqual({ fetched: 'p1' });
  });

  it('is no change: a decision that asked about the post before it was heard still stands', async () => {
    const s = setup();
    await s.member(BOT);
    const mark = s.cache.mark();
    s.cache.streamEvent(posted(aPost('p1')));
    expect(s.cache.changedSince(mark, [{ kind: 'post', postId: 'p1', channelId: CH, rootId: '' }])).toBe(
      false,
    );
  });

  it(`keeps at most ${HEARD_POSTS_KEPT} heard posts, the newest, and never pushes out other answers for them`, async () => {
    const s = setup();
    await s.member(BOT);
    await s.user('u1');
    const flood = HEARD_POSTS_KEPT + 500;
    for (let i = 0; i < flood; i++) s.cache.streamEvent(posted(aPost(`p${i}`)));
    expect(s.cache.size).toBe(HEARD_POSTS_KEPT + 2);
    await s.user('u1');
    await s.member(BOT);
    expect(s.calls()).toBe(2);
    expect(await ask(s, 'p499')).toEqual({ fetched: 'p499' });
    expect(await ask(s, 'p500')).toMatchObject({ id: 'p500' });
    expect(await ask(s, `p${flood - 1}`)).toMatchObject({ id: `p${flood - 1}` });
  });

  it('a fetched answer for a heard post no longer counts against the heard posts', async () => {
    const s = setup();
    await s.member(BOT);
    s.cache.streamEvent(posted(aPost('p0')));
    s.advance(30_000);
    await s.member(BOT);
    expect(await ask(s, 'p0')).toEqual({ fetched: 'p0' }); // kept, now as fetched
    for (let i = 1; i <= HEARD_POSTS_KEPT; i++) s.cache.streamEvent(posted(aPost(`p${i}`)));
    expect(await ask(s, 'p0')).toEqual({ fetched: 'p0' });
    expect(await ask(s, 'p1')).toMatchObject({ id: 'p1' });
    expect(s.calls()).toBe(3);
  });
});

describe('failures and bounds', () => {
  it('a failed fetch throws to every asker and keeps nothing; a stale entry is never used instead', async () => {
    const s = setup();
    await s.user('u1');
    s.advance(30_000);
    const boom = new Error('Mattermost is down');
    const failing = () =>
      s.cache.get(
        'user:u1',
        async () => {
          throw boom;
        },
        () => ({ scope: { kind: 'account' } }),
      );
    await expect(Promise.all([failing(), failing()])).rejects.toBe(boom);
    await expect(failing()).rejects.toBe(boom);
  });

  it('keeps at most maxEntries, dropping the least recently used', async () => {
    const s = setup(30_000, 2);
    await s.user('a');
    await s.user('b');
    await s.user('a'); // a is now the most recently used
    await s.user('c');
    expect(s.cache.size).toBe(2);
    await s.user('a');
    expect(s.calls()).toBe(3);
    await s.user('b');
    expect(s.calls()).toBe(4);
  });
});

describe('when an answer was given', () => {
  it('an answer is as old as the request that asked for it, not as its arrival', async () => {
    const s = setup(30_000);
    const slow = () =>
      s.cache.get(
        'user:u1',
        async () => {
          s.advance(10_000); // Mattermost took 10 s to answer
          return { id: 'u1', delete_at: 0 };
        },
        () => ({ scope: { kind: 'account' } }),
      );
    await slow();
    s.advance(19_999); // 29.999 s after the request started
    await s.user('u1');
    expect(s.calls()).toBe(0);
    s.advance(1);
    await s.user('u1');
    expect(s.calls()).toBe(1);
  });

  it(`a user group answer (no event the bot hears) is kept at most ${GROUP_FRESH_MS} ms, or the bound if lower`, async () => {
    const s = setup(30_000);
    await s.group('g1', 'u1');
    s.advance(GROUP_FRESH_MS - 1);
    await s.group('g1', 'u1');
    expect(s.calls()).toBe(1);
    s.advance(1);
    await s.group('g1', 'u1');
    expect(s.calls()).toBe(2);
    const low = setup(1_000);
    await low.group('g1', 'u1');
    low.advance(1_000);
    await low.group('g1', 'u1');
    expect(low.calls()).toBe(2);
  });
});

describe('a channel answer is kept only if the bot heard the channel when it was asked', () => {
  it('an answer asked before the bot was known to hear the channel is returned, not kept', async () => {
    const s = setup();
    let release!: (v: boolean) => void;
    const pending = s.cache.get(
      ChatCache.channelKey(CH, 'u1'),
      () => new Promise<boolean>((r) => (release = r)),
      () => ({ scope: { kind: 'channel', channelId: CH } }),
    );
    await s.member(BOT); // learnt while the question about u1 was on its way
    release(true);
    expect(await pending).toBe(true);
    await s.member('u1');
    expect(s.calls()).toBe(2);
    await s.member('u1'); // asked with the bot heard throughout: kept
    expect(s.calls()).toBe(2);
  });

  it('the same for a post', async () => {
    const s = setup();
    let release!: (v: unknown) => void;
    const pending = s.cache.get(
      'post:p1',
      () => new Promise((r) => (release = r)),
      () => ({ scope: { kind: 'channel', channelId: CH }, rootId: '' }),
    );
    await s.member(BOT);
    release({ id: 'p1' });
    await pending;
    await s.post('p1');
    await s.post('p1');
    expect(s.calls()).toBe(2);
  });

  it("the bot's own membership is kept without it (it is what says the channel is heard)", async () => {
    const s = setup();
    await s.member(BOT);
    await s.member(BOT);
    expect(s.calls()).toBe(1);
  });
});

describe('what changed since a mark (the deciding snapshot asks after it locks)', () => {
  const account = (userId: string): WatchedFact => ({ kind: 'account', userId });
  const memberships = (userId: string): WatchedFact => ({ kind: 'memberships', userId });
  const post = (postId: string, rootId: string | null = '', channelId: string | null = CH): WatchedFact => ({
    kind: 'post',
    postId,
    channelId,
    rootId,
  });

  it('nothing changed: false, at the cost of no request', async () => {
    const s = setup();
    const m = s.cache.mark();
    s.cache.streamEvent(ev('posted', { post: JSON.stringify({ id: 'p9' }) }, { channel_id: CH }));
    expect(s.cache.changedSince(m, [account('u1'), memberships('u1'), post('p1')])).toBe(false);
  });

  it('an account: its user_updated, or a garbled one', () => {
    const s = setup();
    const m = s.cache.mark();
    s.cache.streamEvent(ev('user_updated', { user: { id: 'u1' } }));
    expect(s.cache.changedSince(m, [account('u1')])).toBe(true);
    expect(s.cache.changedSince(m, [account('u2'), memberships('u1'), post('p1')])).toBe(false);
    s.cache.streamEvent(ev('user_updated', { user: 'garbage' }));
    expect(s.cache.changedSince(m, [account('u2')])).toBe(true);
  });

  it("a post: its edit or delete, its thread root's delete, its channel's events about the bot", () => {
    const s = setup();
    const m1 = s.cache.mark();
    s.cache.streamEvent(ev('post_edited', { post: JSON.stringify({ id: 'p1' }) }, { channel_id: CH }));
    expect(s.cache.changedSince(m1, [post('p1')])).toBe(true);
    expect(s.cache.changedSince(m1, [post('p2'), account('u1'), memberships('u1')])).toBe(false);
    const m2 = s.cache.mark();
    s.cache.streamEvent(ev('post_deleted', { post: JSON.stringify({ id: 'root' }) }, { channel_id: CH }));
    expect(s.cache.changedSince(m2, [post('r1', 'root')])).toBe(true);
    expect(s.cache.changedSince(m2, [post('r2', 'other')])).toBe(false);
    const m3 = s.cache.mark();
    s.cache.streamEvent(ev('user_removed', { channel_id: CH, remover_id: 'x' }, { user_id: BOT }));
    expect(s.cache.changedSince(m3, [post('r2', 'other')])).toBe(true);
    expect(s.cache.changedSince(m3, [post('r3', '', 'chan000000000000000000000b')])).toBe(false);
    // A post whose channel is unknown (deleted, or the question failed) is in every channel.
    expect(s.cache.changedSince(m3, [post('gone', null, null)])).toBe(true);
  });

  it('memberships: the person added or removed anywhere, leaving a team, a group change', () => {
    const s = setup();
    const m1 = s.cache.mark();
    s.cache.streamEvent(ev('user_removed', { user_id: 'u1', remover_id: '' }, { channel_id: CH }));
    expect(s.cache.changedSince(m1, [memberships('u1')])).toBe(true);
    expect(s.cache.changedSince(m1, [memberships('u2'), account('u1'), post('p1')])).toBe(false);
    const m2 = s.cache.mark();
    s.cache.streamEvent(ev('leave_team', { user_id: 'u2', team_id: 't' }, { team_id: 't' }));
    expect(s.cache.changedSince(m2, [memberships('u2')])).toBe(true);
    expect(s.cache.changedSince(m2, [memberships('u1')])).toBe(false);
    const m3 = s.cache.mark();
    s.cache.streamEvent(
      ev('group_member_delete', { group_member: JSON.stringify({ group_id: 'g1', user_id: 'u3' }) }),
    );
    expect(s.cache.changedSince(m3, [memberships('u3')])).toBe(true);
    expect(s.cache.changedSince(m3, [memberships('u1')])).toBe(false);
  });

  it('a break, a reconnect or a new bot identity: everything changed', () => {
    const s = setup();
    const m1 = s.cache.mark();
    s.cache.streamDisconnected();
    expect(s.cache.changedSince(m1, [account('u1')])).toBe(true);
    s.cache.streamConnected();
    expect(s.cache.changedSince(m1, [account('u1')])).toBe(true);
    const m2 = s.cache.mark();
    s.cache.streamConnected(); // resumed: what was missed in between is unknown
    expect(s.cache.changedSince(m2, [account('u1')])).toBe(true);
    const m3 = s.cache.mark();
    s.cache.setBotUserId('bot0000000000000000000000b');
    expect(s.cache.changedSince(m3, [account('u1')])).toBe(true);
  });

  it('a mark taken with the stream down has no events to miss: only events heard since count', () => {
    const cache = new ChatCache({ freshMs: 30_000 });
    cache.setBotUserId(BOT);
    const m = cache.mark();
    cache.streamConnected();
    expect(cache.changedSince(m, [account('u1')])).toBe(false);
    cache.streamEvent(ev('user_updated', { user: { id: 'u1' } }));
    expect(cache.changedSince(m, [account('u1')])).toBe(true);
  });

  it('with freshness 0 (nothing kept) events still count', () => {
    const s = setup(0);
    const m = s.cache.mark();
    s.cache.streamEvent(ev('post_edited', { post: JSON.stringify({ id: 'p1' }) }, { channel_id: CH }));
    expect(s.cache.changedSince(m, [post('p1')])).toBe(true);
  });

  it('a mark older than the changes remembered counts as changed', () => {
    const s = setup();
    const m = s.cache.mark();
    for (let i = 0; i <= CHANGES_KEPT; i++)
      s.cache.streamEvent(ev('post_edited', { post: JSON.stringify({ id: `x${i}` }) }, { channel_id: CH }));
    expect(s.cache.changedSince(m, [post('p1')])).toBe(true);
    const recent = s.cache.mark();
    s.cache.streamEvent(ev('post_edited', { post: JSON.stringify({ id: 'x' }) }, { channel_id: CH }));
    expect(s.cache.changedSince(recent, [post('p1')])).toBe(false);
  });
});
