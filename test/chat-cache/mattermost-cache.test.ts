import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Sandbox, startSandbox } from '@claw-approvals/mattermost-sandbox';
import { GROUP_FRESH_MS } from '../../src/chat/chat-cache.js';
import { MattermostRest } from '../../src/chat/mattermost-rest.js';
import { MattermostSocket } from '../../src/chat/mattermost-socket.js';
import { ChatError } from '../../src/ports/chat-error.js';
import { eventually } from '../helpers/bot-world.js';
import { silentLogger } from '../helpers/log.js';

/**
 * The cache inside the real REST client, fed by the real WebSocket client, against the sandbox:
 * what is answered without a request, and what an event, a break or an outage changes.
 */
let sandbox: Sandbox;
let rest: MattermostRest;
let socket: MattermostSocket;
let t: number;
let ids: { bot: string; alice: string; bob: string; channel: string; team: string };
let connects = 0;

async function start(freshSeconds: number): Promise<void> {
  t = 1_000_000;
  rest = new MattermostRest({
    url: sandbox.url,
    token: botToken,
    log: silentLogger(),
    attempts: 1,
    freshSeconds,
    now: () => t,
  });
  await rest.me();
  socket = new MattermostSocket({
    url: sandbox.url,
    token: botToken,
    log: silentLogger(),
    listener: rest.stream,
    minBackoffMs: 10,
    maxBackoffMs: 50,
    handlers: { onEvent: () => {}, onConnected: () => connects++, onDisconnected: () => {} },
  });
  const before = connects;
  socket.start();
  await eventually(() => connects > before, 'the WebSocket connected');
}

let botToken: string;

beforeEach(async () => {
  sandbox = await startSandbox();
  const team = sandbox.createTeam({ name: 'ops' }).id;
  const channel = sandbox.createChannel({ team_id: team, name: 'approvals' }).id;
  const bot = sandbox.createUser({ username: 'clawbot', is_bot: true });
  botToken = bot.token;
  const alice = sandbox.createUser({ username: 'alice' }).user.id;
  const bob = sandbox.createUser({ username: 'bob' }).user.id;
  for (const id of [bot.user.id, alice, bob]) sandbox.addChannelMember(channel, id);
  ids = { bot: bot.user.id, alice, bob, channel, team };
});

afterEach(async () => {
  await socket?.stop();
  await sandbox.close();
});

const gets = (path: string) => sandbox.requestCount({ method: 'GET', pathPrefix: `/api/v4${path}` });
const memberPath = () => `/channels/${ids.channel}/members/${ids.alice}`;

/** Waits until the cache has heard something that dropped an answer. */
async function heard(before: number): Promise<void> {
  await eventually(() => rest.cache.stats.invalidations > before, 'the event reached the cache');
}

describe('fresh answers make no request', () => {
  it('membership, account and post are asked once, then answered from the cache', async () => {
    await start(30);
    const post = sandbox.createPost(ids.alice, { channel_id: ids.channel, message: 'APPROVE job:1 step:a' });
    for (let i = 0; i < 3; i++) {
      expect(await rest.isChannelMember(ids.alice, ids.channel)).toBe(true);
      expect(await rest.freshUser(ids.alice)).toMatchObject({ id: ids.alice, delete_at: 0 });
      expect(await rest.post(post.id)).toMatchObject({ id: post.id, edit_at: 0 });
    }
    expect(gets(memberPath())).toBe(1);
    expect(gets(`/users/${ids.alice}`)).toBe(1);
    expect(gets(`/posts/${post.id}`)).toBe(1);
    // The bot's own membership, asked once before: it is what makes the channel's facts trustworthy.
    expect(gets(`/channels/${ids.channel}/members/${ids.bot}`)).toBe(1);
  });

  it('a post heard over the WebSocket is still asked for: its posted event is not an answer', async () => {
    // Mattermost does not promise that `posted` comes before an edit or delete of the post (a
    // plugin's MessageHasBeenPosted hook, another node of a cluster): a kept copy could be stale.
    await start(30);
    await rest.isChannelMember(ids.bot, ids.channel);
    const mark = rest.cache.mark();
    const post = sandbox.createPost(ids.alice, { channel_id: ids.channel, message: 'APPROVE job:1 step:a' });
    // Another post's edit, heard after the first post's posted event (one stream, in order).
    const barrier = sandbox.createPost(ids.bob, { channel_id: ids.channel, message: 'ok' });
    sandbox.editPost(ids.bob, barrier.id, 'ok!');
    const fact = { kind: 'post' as const, postId: barrier.id, channelId: ids.channel, rootId: '' };
    await eventually(() => rest.cache.changedSince(mark, [fact]), 'the events reached the cache');
    expect(await rest.post(post.id)).toMatchObject({ id: post.id, message: 'APPROVE job:1 step:a' });
    expect(gets(`/posts/${post.id}`)).toBe(1);
  });

  it('concurrent questions share one request', async () => {
    await start(30);
    await rest.isChannelMember(ids.bot, ids.channel);
    const answers = await Promise.all([1, 2, 3].map(() => rest.freshUser(ids.bob)));
    expect(answers.map((u) => u?.id)).toEqual([ids.bob, ids.bob, ids.bob]);
    expect(gets(`/users/${ids.bob}`)).toBe(1);
  });

  it('freshness 0 asks Mattermost every time (the literal behaviour)', async () => {
    await start(0);
    const post = sandbox.createPost(ids.alice, { channel_id: ids.channel, message: 'x' });
    for (let i = 0; i < 3; i++) {
      await rest.isChannelMember(ids.alice, ids.channel);
      await rest.freshUser(ids.alice);
      await rest.post(post.id);
    }
    expect(gets(memberPath())).toBe(3);
    expect(gets(`/users/${ids.alice}`)).toBe(3);
    expect(gets(`/posts/${post.id}`)).toBe(3);
  });

  it('an answer older than the bound is asked for again', async () => {
    await start(30);
    await rest.freshUser(ids.alice);
    t += 30_000;
    await rest.freshUser(ids.alice);
    expect(gets(`/users/${ids.alice}`)).toBe(2);
  });
});

describe("Mattermost's events change the answer at once", () => {
  it('a removed channel member is not a member as soon as user_removed arrives', async () => {
    await start(30);
    expect(await rest.isChannelMember(ids.alice, ids.channel)).toBe(true);
    const before = rest.cache.stats.invalidations;
    sandbox.removeChannelMember(ids.channel, ids.alice);
    await heard(before);
    expect(await rest.isChannelMember(ids.alice, ids.channel)).toBe(false);
    expect(gets(memberPath())).toBe(2);
  });

  it('a deactivated account reads as deactivated as soon as user_updated arrives', async () => {
    await start(30);
    expect((await rest.freshUser(ids.alice))?.delete_at).toBe(0);
    const before = rest.cache.stats.invalidations;
    sandbox.setUserActive(ids.alice, false);
    await heard(before);
    expect((await rest.freshUser(ids.alice))?.delete_at).toBeGreaterThan(0);
  });

  it('an edited post reads as edited, and deleting its thread root makes it read as deleted', async () => {
    await start(30);
    const root = sandbox.createPost(ids.bob, { channel_id: ids.channel, message: 'run' });
    const reply = sandbox.createPost(ids.alice, {
      channel_id: ids.channel,
      root_id: root.id,
      message: 'APPROVE job:1 step:a',
    });
    // A post is kept only if the bot already heard its channel when it was asked.
    await rest.isChannelMember(ids.bot, ids.channel);
    expect((await rest.post(reply.id))?.edit_at).toBe(0);
    expect(rest.cache.size).toBe(2);
    let before = rest.cache.stats.invalidations;
    sandbox.editPost(ids.alice, reply.id, 'APPROVE job:1 step:b');
    await heard(before);
    expect(await rest.post(reply.id)).toMatchObject({ message: 'APPROVE job:1 step:b' });
    before = rest.cache.stats.invalidations;
    sandbox.deletePost(ids.bob, root.id); // one post_deleted event, for the root only
    await heard(before);
    expect(await rest.post(reply.id)).toBeNull();
  });

  it('a group membership (no event reaches the bot) holds until the shorter group bound, then is asked again', async () => {
    await start(30);
    const group = sandbox.createGroup({ name: 'oncall' }).id;
    sandbox.addGroupMembers(group, [ids.alice]);
    expect(await rest.isGroupMember(ids.alice, group)).toBe(true);
    sandbox.removeGroupMember(group, ids.alice);
    t += GROUP_FRESH_MS - 1;
    expect(await rest.isGroupMember(ids.alice, group)).toBe(true);
    t += 1;
    expect(await rest.isGroupMember(ids.alice, group)).toBe(false);
  });
});

describe('breaks and outages', () => {
  it('after the WebSocket breaks, nothing cached is trusted: every answer is asked for again', async () => {
    await start(30);
    await rest.isChannelMember(ids.alice, ids.channel);
    await rest.freshUser(ids.alice);
    const before = connects;
    sandbox.dropConnections({ userId: ids.bot });
    await eventually(() => connects > before, 'the WebSocket reconnected');
    await rest.isChannelMember(ids.alice, ids.channel);
    await rest.freshUser(ids.alice);
    expect(gets(memberPath())).toBe(2);
    expect(gets(`/users/${ids.alice}`)).toBe(2);
  });

  it('with Mattermost refusing, a stale answer fails closed with the error a direct call gives', async () => {
    await start(30);
    await rest.isChannelMember(ids.alice, ids.channel);
    await rest.freshUser(ids.alice);
    t += 30_000;
    sandbox.injectFault({ status: 503, forMs: 600_000, method: 'GET', pathPrefix: '/api/v4/users' });
    sandbox.injectFault({ status: 503, forMs: 600_000, method: 'GET', pathPrefix: '/api/v4/channels' });
    const account = await rest.freshUser(ids.alice).catch((e: unknown) => e);
    expect(account).toBeInstanceOf(ChatError);
    expect(account).toMatchObject({ kind: 'unavailable', status: 503 });
    await expect(rest.isChannelMember(ids.alice, ids.channel)).rejects.toMatchObject({ status: 503 });
  });

  it('with the sandbox gone, a stale answer fails closed as a network error', async () => {
    await start(30);
    await rest.freshUser(ids.alice);
    t += 30_000;
    await sandbox.close();
    await expect(rest.freshUser(ids.alice)).rejects.toMatchObject({ kind: 'network' });
  });
});

describe('a channel the bot was not known to hear', () => {
  it('a post asked before the bot knew it heard its channel is asked again once, then kept', async () => {
    await start(30);
    const post = sandbox.createPost(ids.alice, { channel_id: ids.channel, message: 'APPROVE job:1 step:a' });
    for (let i = 0; i < 3; i++) await rest.post(post.id);
    expect(gets(`/posts/${post.id}`)).toBe(2);
    expect(gets(`/channels/${ids.channel}/members/${ids.bot}`)).toBe(1);
  });
});
