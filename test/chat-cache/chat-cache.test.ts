import { describe, expect, it } from 'vitest';
import { CHANGES_KEPT, ChatCache, GROUP_FRESH_MS, type WatchedFact } from '../../src/chat/chat-cache.js';
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
