import mm from '@mattermost/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { client } from './helpers.js';
import { world, type World } from './world.js';

let w: World;

beforeEach(async () => {
  w = await world();
});

afterEach(async () => {
  await w.sandbox.close();
});

const ID = /^[ybndrfg8ejkmcpqxot1uwisza345h769]{26}$/;

describe('authentication', () => {
  it('answers ping without a token', async () => {
    const res = await fetch(`${w.sandbox.url}/api/v4/system/ping`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'OK' });
  });

  it('accepts a bearer token and returns the caller', async () => {
    const me = await client(w.sandbox, w.alice.token).getMe();
    expect(me).toMatchObject({ id: w.alice.user.id, username: 'alice', is_bot: false, roles: 'system_user' });
    expect(me.id).toMatch(ID);
  });

  it('rejects a bad token with the session-expired error, shaped like Mattermost', async () => {
    const res = await fetch(`${w.sandbox.url}/api/v4/users/me`, {
      headers: { Authorization: 'Bearer nope' },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toBe('application/json');
    const body = (await res.json()) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(['id', 'message', 'detailed_error', 'request_id', 'status_code']);
    expect(body).toEqual({
      id: 'api.context.session_expired.app_error',
      message: 'Invalid or expired session, please login again.',
      detailed_error: '',
      request_id: res.headers.get('x-request-id'),
      status_code: 401,
    });
  });

  it('rejects a missing token the same way, and Client4 surfaces the id and status', async () => {
    const anonymous = client(w.sandbox, '');
    await expect(anonymous.getMe()).rejects.toMatchObject({
      server_error_id: 'api.context.session_expired.app_error',
      status_code: 401,
    });
  });
});

describe('posts', () => {
  it('creates a post with the full Mattermost field set', async () => {
    const post = await client(w.sandbox, w.alice.token).createPost({
      channel_id: w.town.id,
      message: 'hello #world',
    } as never);
    expect(Object.keys(post)).toEqual([
      'id',
      'create_at',
      'update_at',
      'edit_at',
      'delete_at',
      'is_pinned',
      'user_id',
      'channel_id',
      'root_id',
      'original_id',
      'message',
      'type',
      'props',
      'hashtags',
      'file_ids',
      'pending_post_id',
      'reply_count',
      'last_reply_at',
      'participants',
      'metadata',
    ]);
    expect(post).toMatchObject({
      user_id: w.alice.user.id,
      channel_id: w.town.id,
      root_id: '',
      message: 'hello #world',
      type: '',
      props: {},
      hashtags: '#world',
      file_ids: [],
      edit_at: 0,
      delete_at: 0,
      metadata: {},
    });
    expect(post.create_at).toBe(post.update_at);
  });

  it('marks bot posts with props.from_bot and leaves human posts alone', async () => {
    const bot = await client(w.sandbox, w.bot.token).createPost({
      channel_id: w.town.id,
      message: 'beep',
    } as never);
    const human = await client(w.sandbox, w.alice.token).createPost({
      channel_id: w.town.id,
      message: 'hi',
    } as never);
    expect(bot.props).toEqual({ from_bot: 'true' });
    expect(human.props).toEqual({});
  });

  it('forbids posting, reading private channels and membership look-ups to non-members', async () => {
    const outsider = client(w.sandbox, w.outsider.token);
    await expect(outsider.createPost({ channel_id: w.town.id, message: 'x' } as never)).rejects.toMatchObject(
      {
        status_code: 403,
        server_error_id: 'api.context.permissions.app_error',
      },
    );
    const bob = client(w.sandbox, w.bob.token);
    await expect(bob.getChannel(w.secret.id)).rejects.toMatchObject({ status_code: 403 });
    await expect(bob.getChannelMember(w.secret.id, w.alice.user.id)).rejects.toMatchObject({
      status_code: 403,
    });
    await expect(bob.getChannelMember(w.town.id, w.outsider.user.id)).rejects.toMatchObject({
      status_code: 404,
      server_error_id: 'app.channel.get_member.missing.app_error',
    });
    expect(await bob.getChannelMember(w.town.id, w.alice.user.id)).toMatchObject({
      channel_id: w.town.id,
      user_id: w.alice.user.id,
      roles: 'channel_user',
    });
    expect(await bob.getChannel(w.town.id)).toMatchObject({ id: w.town.id, type: 'O', name: 'town-square' });
  });

  it('validates root_id and the 16383-rune message limit', async () => {
    const alice = client(w.sandbox, w.alice.token);
    const root = await alice.createPost({ channel_id: w.town.id, message: 'root' } as never);
    const reply = await alice.createPost({
      channel_id: w.town.id,
      message: 'reply',
      root_id: root.id,
    } as never);
    expect(reply.root_id).toBe(root.id);
    await expect(
      alice.createPost({ channel_id: w.town.id, message: 'x', root_id: reply.id } as never),
    ).rejects.toMatchObject({ status_code: 400, server_error_id: 'api.post.create_post.root_id.app_error' });
    await expect(
      alice.createPost({ channel_id: w.secret.id, message: 'x', root_id: root.id } as never),
    ).rejects.toMatchObject({
      status_code: 400,
      server_error_id: 'api.post.create_post.channel_root_id.app_error',
    });
    const max = '€'.repeat(16383);
    expect((await alice.createPost({ channel_id: w.town.id, message: max } as never)).message).toBe(max);
    await expect(
      alice.createPost({ channel_id: w.town.id, message: `${max}x` } as never),
    ).rejects.toMatchObject({
      status_code: 400,
      server_error_id: 'model.post.is_valid.message_length.app_error',
    });
  });

  it('deduplicates a repeated pending_post_id like App.deduplicateCreatePost', async () => {
    const alice = client(w.sandbox, w.alice.token);
    const first = await alice.createPost({
      channel_id: w.town.id,
      message: 'once',
      pending_post_id: 'p-1',
    } as never);
    const again = await alice.createPost({
      channel_id: w.town.id,
      message: 'once',
      pending_post_id: 'p-1',
    } as never);
    expect(first.pending_post_id).toBe('p-1');
    expect(again.id).toBe(first.id);
    expect(w.sandbox.postsIn(w.town.id)).toHaveLength(1);
  });

  it('lets only the author patch a post; an edit sets edit_at and moves update_at', async () => {
    const alice = client(w.sandbox, w.alice.token);
    const post = await alice.createPost({ channel_id: w.town.id, message: 'v1' } as never);
    await expect(
      client(w.sandbox, w.bob.token).patchPost({ id: post.id, message: 'hijack' }),
    ).rejects.toMatchObject({
      status_code: 403,
    });
    const edited = await alice.patchPost({ id: post.id, message: 'v2' });
    expect(edited).toMatchObject({ id: post.id, message: 'v2' });
    expect(edited.edit_at).toBeGreaterThan(0);
    expect(edited.update_at).toBeGreaterThan(post.update_at);
    const twice = await alice.patchPost({ id: post.id, message: 'v3' });
    expect(twice.update_at).toBeGreaterThan(edited.update_at);
  });

  it('deletes a post and its replies; others need to be admins', async () => {
    const alice = client(w.sandbox, w.alice.token);
    const root = await alice.createPost({ channel_id: w.town.id, message: 'root' } as never);
    const reply = await client(w.sandbox, w.bob.token).createPost({
      channel_id: w.town.id,
      message: 'reply',
      root_id: root.id,
    } as never);
    await expect(client(w.sandbox, w.bob.token).deletePost(root.id)).rejects.toMatchObject({
      status_code: 403,
    });
    expect(await client(w.sandbox, w.admin.token).deletePost(root.id)).toEqual({ status: 'OK' });
    const all = w.sandbox.postsIn(w.town.id, { includeDeleted: true });
    for (const p of all.filter((p) => p.id === root.id || p.id === reply.id)) {
      expect(p.delete_at).toBeGreaterThan(0);
      expect(p.props.deleteBy).toBe(w.admin.user.id);
    }
    expect(w.sandbox.postsIn(w.town.id)).toEqual([]);
    await expect(alice.getPost(root.id)).rejects.toMatchObject({
      status_code: 404,
      server_error_id: 'app.post.get.app_error',
    });
  });

  it('refuses ephemeral posts to a non-admin (create_post_ephemeral)', async () => {
    await expect(
      client(w.sandbox, w.bot.token).createPostEphemeral(w.alice.user.id, {
        channel_id: w.town.id,
        message: 'psst',
      } as never),
    ).rejects.toMatchObject({ status_code: 403, server_error_id: 'api.context.permissions.app_error' });
  });
});

describe('since-queries and paging', () => {
  it('returns every post modified after `since`: created, edited (plus the old version) and deleted', async () => {
    const alice = client(w.sandbox, w.alice.token);
    const a = await alice.createPost({ channel_id: w.town.id, message: 'a' } as never);
    const b = await alice.createPost({ channel_id: w.town.id, message: 'b' } as never);
    const since = Math.max(a.update_at, b.update_at);
    await alice.patchPost({ id: a.id, message: 'a2' });
    await alice.deletePost(b.id);
    const c = await alice.createPost({ channel_id: w.town.id, message: 'c' } as never);

    const list = await client(w.sandbox, w.bob.token).getPostsSince(w.town.id, since);
    expect(list.next_post_id).toBe('');
    expect(list.prev_post_id).toBe('');
    const posts = list.order.map((id) => list.posts[id]!);
    expect(posts.find((p) => p.id === a.id)).toMatchObject({ message: 'a2', delete_at: 0 });
    expect(posts.find((p) => p.id === a.id)!.edit_at).toBeGreaterThan(0);
    expect(posts.find((p) => p.id === b.id)!.delete_at).toBeGreaterThan(0);
    expect(posts.find((p) => p.id === c.id)).toMatchObject({ message: 'c' });
    const history = posts.find((p) => p.original_id === a.id)!;
    expect(history).toMatchObject({ message: 'a', original_id: a.id });
    expect(history.delete_at).toBeGreaterThan(0);
    expect(posts).toHaveLength(4);
    const creates = posts.map((p) => p.create_at);
    expect(creates).toEqual([...creates].sort((x, y) => y - x));
  });

  it('tolerates the query parameters Client4 sends and rejects a malformed since', async () => {
    const url = `${w.sandbox.url}/api/v4/channels/${w.town.id}/posts?since=1&skipFetchThreads=false&collapsedThreads=false&collapsedThreadsExtended=false`;
    expect((await fetch(url, { headers: { Authorization: `Bearer ${w.alice.token}` } })).status).toBe(200);
    const bad = await fetch(`${w.sandbox.url}/api/v4/channels/${w.town.id}/posts?since=yesterday`, {
      headers: { Authorization: `Bearer ${w.alice.token}` },
    });
    expect(bad.status).toBe(400);
  });

  it('pages newest first with cursors', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push(w.sandbox.createPost(w.alice.user.id, { channel_id: w.town.id, message: `m${i}` }).id);
    const alice = client(w.sandbox, w.alice.token);
    const first = await alice.getPosts(w.town.id, 0, 2);
    expect(first.order).toEqual([ids[4], ids[3]]);
    expect(first.next_post_id).toBe('');
    const second = await alice.getPosts(w.town.id, 1, 2);
    expect(second.order).toEqual([ids[2], ids[1]]);
  });

  it('returns a thread root first, paged the way Client4 asks for it', async () => {
    const root = w.sandbox.createPost(w.alice.user.id, { channel_id: w.town.id, message: 'root' });
    const replies = [1, 2, 3].map((i) =>
      w.sandbox.createPost(w.bob.user.id, { channel_id: w.town.id, message: `r${i}`, root_id: root.id }),
    );
    const alice = client(w.sandbox, w.alice.token);
    const all = await alice.getPostThread(root.id);
    expect(all.order).toEqual([root.id, ...replies.map((r) => r.id)]);
    expect(all.posts[root.id]!.reply_count).toBe(3);
    const page = await alice.getPaginatedPostThread(root.id, { perPage: 2, direction: 'down' });
    expect(page.order).toEqual([root.id, replies[0]!.id]);
    expect(page.has_next).toBe(true);
  });
});

describe('reactions', () => {
  it('adds a reaction for the caller only, idempotently', async () => {
    const post = w.sandbox.createPost(w.alice.user.id, { channel_id: w.town.id, message: 'approve?' });
    const bob = client(w.sandbox, w.bob.token);
    await expect(bob.addReaction(w.alice.user.id, post.id, '+1')).rejects.toMatchObject({
      status_code: 403,
      server_error_id: 'api.reaction.save_reaction.user_id.app_error',
    });
    const reaction = await bob.addReaction(w.bob.user.id, post.id, '+1');
    expect(reaction).toMatchObject({
      user_id: w.bob.user.id,
      post_id: post.id,
      emoji_name: '+1',
      channel_id: w.town.id,
    });
    await bob.addReaction(w.bob.user.id, post.id, '+1');
    expect(await bob.getReactionsForPost(post.id)).toHaveLength(1);
    expect(w.sandbox.reactionsOn(post.id)).toHaveLength(1);
    expect(await bob.getPost(post.id)).toMatchObject({
      has_reactions: true,
      metadata: { reactions: [{ emoji_name: '+1' }] },
    });
  });
});

describe('users and groups', () => {
  it('looks users up by id and username, and lists group members', async () => {
    const bob = client(w.sandbox, w.bob.token);
    expect(await bob.getUser(w.alice.user.id)).toMatchObject({ username: 'alice' });
    expect(await bob.getUserByUsername('clawbot')).toMatchObject({ id: w.bot.user.id, is_bot: true });
    await expect(bob.getUserByUsername('nobody')).rejects.toMatchObject({ status_code: 404 });
    const group = w.sandbox.createGroup({ name: 'ops-oncall' });
    w.sandbox.addGroupMembers(group.id, [w.bob.user.id, w.alice.user.id]);
    const members = await bob.getProfilesInGroup(group.id);
    expect(members.map((u) => u.username)).toEqual(['alice', 'bob']);
    w.sandbox.removeGroupMember(group.id, w.alice.user.id);
    expect((await bob.getProfilesInGroup(group.id)).map((u) => u.username)).toEqual(['bob']);
    const res = await fetch(`${w.sandbox.url}/api/v4/groups/${group.id}/members`, {
      headers: { Authorization: `Bearer ${w.bob.token}` },
    });
    expect(await res.json()).toMatchObject({ total_member_count: 1, members: [{ username: 'bob' }] });
  });

  it('serves the team to its members only', async () => {
    expect(await client(w.sandbox, w.alice.token).getTeam(w.team.id)).toMatchObject({
      id: w.team.id,
      name: 'ops',
    });
    await expect(client(w.sandbox, w.outsider.token).getTeam(w.team.id)).rejects.toMatchObject({
      status_code: 403,
    });
  });
});

describe('incoming webhooks', () => {
  it('posts as the hook owner with from_webhook and override_username, answering plain ok', async () => {
    const hook = w.sandbox.createIncomingWebhook({ channel_id: w.town.id, user_id: w.bot.user.id });
    const res = await fetch(`${w.sandbox.url}/hooks/${hook.id}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ text: 'deploy <https://x.test|done>', username: 'ci' }),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');
    const form = await fetch(`${w.sandbox.url}/hooks/${hook.id}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ payload: JSON.stringify({ text: 'from a form' }) }).toString(),
    });
    expect(await form.text()).toBe('ok');
    const [first, second] = w.sandbox.postsIn(w.town.id);
    expect(first).toMatchObject({
      user_id: w.bot.user.id,
      message: 'deploy [done](https://x.test)',
      props: { from_bot: 'true', from_webhook: 'true', override_username: 'ci' },
    });
    expect(second!.props).toMatchObject({ from_webhook: 'true', override_username: 'webhook' });
  });

  it('rejects an unknown hook and an empty text with JSON errors', async () => {
    const unknown = await fetch(`${w.sandbox.url}/hooks/${'a'.repeat(26)}`, {
      method: 'POST',
      body: '{"text":"x"}',
    });
    expect(unknown.status).toBe(400);
    const hook = w.sandbox.createIncomingWebhook({ channel_id: w.town.id, user_id: w.alice.user.id });
    const empty = await fetch(`${w.sandbox.url}/hooks/${hook.id}`, { method: 'POST', body: '{}' });
    expect(empty.status).toBe(400);
    expect(await empty.json()).toMatchObject({ id: 'web.incoming_webhook.text.app_error' });
  });
});

it('exports Client4 from the CommonJS package as a default import', () => {
  expect(typeof mm.Client4).toBe('function');
});
