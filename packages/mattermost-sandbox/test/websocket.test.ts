import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { client, events, Probe } from './helpers.js';
import { world, type World } from './world.js';

let w: World;
const probes: Probe[] = [];

async function open(...args: Parameters<typeof Probe.open>): Promise<Probe> {
  const probe = await Probe.open(...args);
  probes.push(probe);
  return probe;
}

beforeEach(async () => {
  w = await world({ authTimeoutMs: 300 });
});

afterEach(async () => {
  for (const p of probes.splice(0)) p.close();
  await w.sandbox.close();
});

describe('authentication', () => {
  it('greets a header-authenticated socket with hello at seq 0', async () => {
    const alice = await open(w.sandbox, { token: w.alice.token });
    const hello = await alice.next();
    expect(hello).toEqual({
      event: 'hello',
      data: {
        connection_id: expect.stringMatching(/^[a-z0-9]{26}$/),
        server_hostname: expect.any(String),
        server_version: expect.stringMatching(/^11\.9\.0\./),
      },
      broadcast: {
        omit_users: null,
        user_id: w.alice.user.id,
        channel_id: '',
        team_id: '',
        connection_id: '',
        omit_connection_id: '',
      },
      seq: 0,
    });
    expect(w.sandbox.connectionCount(w.alice.user.id)).toBe(1);
  });

  it('sends nothing before an authentication challenge, then hello before the OK reply', async () => {
    const socket = await open(w.sandbox);
    socket.send({ seq: 1, action: 'ping' });
    socket.send({ seq: 2, action: 'authentication_challenge', data: { token: w.alice.token } });
    expect(await socket.next()).toMatchObject({ event: 'hello', seq: 0 });
    expect(await socket.next()).toEqual({ status: 'OK', seq_reply: 2 });
    socket.send({ seq: 3, action: 'authentication_challenge', data: { token: w.bob.token } });
    // The second challenge gets no answer: the next frame is the pong to seq 4.
    socket.send({ seq: 4, action: 'ping' });
    expect(await socket.next()).toMatchObject({ status: 'OK', seq_reply: 4 });
    expect(socket.frames).toHaveLength(3);
  });

  it('closes on a bad challenge token without an error frame', async () => {
    const socket = await open(w.sandbox);
    socket.send({ seq: 1, action: 'authentication_challenge', data: { token: 'wrong' } });
    expect((await socket.closed).code).toBe(1006);
    expect(socket.frames).toEqual([]);
  });

  it('treats a bad header token as unauthenticated and closes after the auth timeout', async () => {
    const socket = await open(w.sandbox, { token: 'wrong' });
    await socket.closed;
    expect(socket.frames).toEqual([]);
  });
});

describe('events', () => {
  it('sends posted to every member connection with the Mattermost data keys and per-user mentions', async () => {
    const [alice, bob, bot] = await Promise.all([
      open(w.sandbox, { token: w.alice.token }),
      open(w.sandbox, { token: w.bob.token }),
      open(w.sandbox, { token: w.bot.token }),
    ]);
    for (const p of [alice, bob, bot]) await p.until((f) => f.event === 'hello');
    const created = await client(w.sandbox, w.alice.token).createPost({
      channel_id: w.town.id,
      message: 'hey @bob and @nobody',
    } as never);

    const toBob = await bob.until((f) => f.event === 'posted');
    expect(Object.keys(toBob.data!)).toEqual([
      'channel_display_name',
      'channel_name',
      'channel_type',
      'mentions',
      'post',
      'sender_name',
      'set_online',
      'team_id',
    ]);
    expect(toBob).toMatchObject({
      event: 'posted',
      seq: 1,
      data: {
        channel_display_name: 'Town Square',
        channel_name: 'town-square',
        channel_type: 'O',
        mentions: JSON.stringify([w.bob.user.id]),
        sender_name: '@alice',
        set_online: true,
        team_id: w.team.id,
      },
      broadcast: { channel_id: w.town.id, user_id: '', omit_users: null },
    });
    expect(typeof toBob.data!.post).toBe('string');
    expect(JSON.parse(toBob.data!.post as string)).toEqual(created);

    const toBot = await bot.until((f) => f.event === 'posted');
    expect(toBot.data).not.toHaveProperty('mentions');
    const toAlice = await alice.until((f) => f.event === 'posted');
    expect(toAlice.data).not.toHaveProperty('mentions');
  });

  it('numbers events per connection from 0 upwards', async () => {
    const bob = await open(w.sandbox, { token: w.bob.token });
    for (let i = 0; i < 3; i++)
      w.sandbox.createPost(w.alice.user.id, { channel_id: w.town.id, message: `m${i}` });
    const got = events(await bob.drain());
    expect(got.map((f) => [f.event, f.seq])).toEqual([
      ['hello', 0],
      ['posted', 1],
      ['posted', 2],
      ['posted', 3],
    ]);
  });

  it('keeps events of a channel from users who are not in it', async () => {
    const outsider = await open(w.sandbox, { token: w.outsider.token });
    const bob = await open(w.sandbox, { token: w.bob.token });
    w.sandbox.createPost(w.alice.user.id, { channel_id: w.town.id, message: 'members only' });
    w.sandbox.createPost(w.alice.user.id, { channel_id: w.secret.id, message: 'alice only' });
    expect(events(await outsider.drain()).map((f) => f.event)).toEqual(['hello']);
    expect(events(await bob.drain()).map((f) => f.event)).toEqual(['hello', 'posted']);
  });

  it('sends a DM to its two members only, mentioning the receiver', async () => {
    const dm = w.sandbox.createDirectChannel(w.bot.user.id, w.alice.user.id);
    expect(dm).toMatchObject({ type: 'D', team_id: '' });
    expect(dm.name).toBe([w.bot.user.id, w.alice.user.id].sort().join('__'));
    const [alice, bob] = await Promise.all([
      open(w.sandbox, { token: w.alice.token }),
      open(w.sandbox, { token: w.bob.token }),
    ]);
    w.sandbox.createPost(w.bot.user.id, { channel_id: dm.id, message: 'psst' });
    const posted = await alice.until((f) => f.event === 'posted');
    expect(posted.data).toMatchObject({
      channel_type: 'D',
      channel_display_name: '@clawbot',
      team_id: '',
      mentions: JSON.stringify([w.alice.user.id]),
    });
    expect(events(await bob.drain(), 'posted')).toEqual([]);
  });

  it('sends post_edited, post_deleted (with delete_by for admins only) and reaction_added', async () => {
    const [bob, admin] = await Promise.all([
      open(w.sandbox, { token: w.bob.token }),
      open(w.sandbox, { token: w.admin.token }),
    ]);
    w.sandbox.addChannelMember(w.town.id, w.admin.user.id);
    const post = w.sandbox.createPost(w.alice.user.id, { channel_id: w.town.id, message: 'v1' });
    w.sandbox.editPost(w.alice.user.id, post.id, 'v2');
    await client(w.sandbox, w.bob.token).addReaction(w.bob.user.id, post.id, 'white_check_mark');
    w.sandbox.deletePost(w.alice.user.id, post.id);

    const got = events(await bob.drain());
    // The admin joining the channel is itself an event to its members.
    expect(got.map((f) => f.event)).toEqual([
      'hello',
      'user_added',
      'posted',
      'post_edited',
      'reaction_added',
      'post_deleted',
    ]);
    const edited = JSON.parse(got[3]!.data!.post as string) as { message: string; edit_at: number };
    expect(edited.message).toBe('v2');
    expect(edited.edit_at).toBeGreaterThan(0);
    expect(JSON.parse(got[4]!.data!.reaction as string)).toMatchObject({
      user_id: w.bob.user.id,
      post_id: post.id,
      emoji_name: 'white_check_mark',
    });
    const deleted = got[5]!;
    expect(Object.keys(deleted.data!)).toEqual(['post']);
    expect(deleted.broadcast).toMatchObject({ channel_id: w.town.id, contains_sanitized_data: true });
    // App.DeletePost marshals the post it read before deleting it.
    expect(JSON.parse(deleted.data!.post as string)).toMatchObject({ id: post.id, delete_at: 0 });

    const toAdmin = events(await admin.drain(), 'post_deleted');
    expect(toAdmin).toHaveLength(1);
    expect(toAdmin[0]!.data).toMatchObject({ delete_by: w.alice.user.id });
    expect(toAdmin[0]!.broadcast).toMatchObject({ contains_sensitive_data: true });
  });

  it('answers an application ping with pong and a protocol ping with a pong frame', async () => {
    const bob = await open(w.sandbox, { token: w.bob.token });
    await bob.next();
    const reply = await bob.ping();
    expect(reply).toEqual({
      status: 'OK',
      seq_reply: reply.seq_reply,
      data: { node_id: '', server_time: expect.any(Number), text: 'pong', version: '11.9.0' },
    });
    const pong = new Promise<string>((resolve) => bob.socket.once('pong', (data) => resolve(String(data))));
    bob.socket.ping('are you there');
    expect(await pong).toBe('are you there');
  });

  it('answers an unknown action with a FAIL reply and a bad seq with bad_seq', async () => {
    const bob = await open(w.sandbox, { token: w.bob.token });
    await bob.next();
    bob.send({ seq: 7, action: 'no_such_action' });
    expect(await bob.next()).toMatchObject({
      status: 'FAIL',
      seq_reply: 7,
      error: { id: 'api.web_socket_router.bad_action.app_error', status_code: 500 },
    });
    bob.send({ seq: 0, action: 'ping' });
    expect(await bob.next()).toMatchObject({
      status: 'FAIL',
      error: { id: 'api.web_socket_router.bad_seq.app_error' },
    });
  });
});
