import { afterEach, describe, expect, it } from 'vitest';
import { handlePost } from '../../src/bot/handle-post.js';
import type { ChatPost } from '../../src/chat/chat-port.js';
import { OUTBOX_KEY_PROP } from '../../src/chat/outbox-delivery.js';
import { startSandbox } from '@claw-approvals/mattermost-sandbox';
import {
  createWorld,
  eventually,
  ready,
  RUN,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import {
  answerTo,
  approve,
  botPosts,
  botSays,
  chatPostRow,
  countedApprovals,
  createSecurityChannel,
  decisionsOn,
  expectSilenceAbout,
  handledOf,
  reacted,
  requestJob,
  tokensOf,
} from '../helpers/bot-thread.js';
import { silentLogger } from '../helpers/log.js';

let w: World;
let b: RunningBot;

async function setUp(sandboxOptions?: { enablePostUsernameOverride: boolean }): Promise<void> {
  w = await createWorld(sandboxOptions ? { sandbox: await startSandbox(sandboxOptions) } : {});
  createSecurityChannel(w);
  b = await startBot(w, { complaintsPerMinute: 1000 });
  await ready(b);
}

afterEach(async () => {
  await b.stop();
  await w.close();
});

/** Alice's approval of `jobId` as the bot would observe it, handed to the handler directly. */
function alicesApproval(id: string, rootId: string, jobId: number, type = ''): ChatPost {
  return {
    id,
    create_at: Date.now(),
    update_at: Date.now(),
    edit_at: 0,
    delete_at: 0,
    original_id: '',
    user_id: w.ids.alice,
    channel_id: w.channel,
    root_id: rootId,
    message: approve(jobId),
    type,
    props: {},
  };
}

/** The spoof changed nothing: no decision on it, no approval counted, no token for the gated step. */
async function expectNoEffect(postId: string, jobId: number): Promise<void> {
  expect(await decisionsOn(w, postId)).toEqual([]);
  expect(await countedApprovals(w, jobId)).toEqual([]);
  expect(await tokensOf(w, jobId)).toEqual([]);
}

/**
 * A real approval after the spoofs: the bot still needs two, so the spoofs never counted. Its
 * answer also shows that everything queued before it was delivered, so silence is silence.
 */
async function realApprovalStillNeedsAnother(rootId: string, jobId: number, openGroup = 'sec-reviewers') {
  const who = openGroup === 'sec-reviewers' ? 'alice' : 'chioma';
  const real = w.post(who, approve(jobId), rootId);
  expect((await answerTo(w, real)).message).toBe(
    `Approval by @${who} counted for job:${jobId} step \`post-summary\`; still needed: 1 more approval from ${openGroup}.`,
  );
  expect(await countedApprovals(w, jobId)).toHaveLength(1);
  expect(await tokensOf(w, jobId)).toEqual([]);
}

/** A post made over REST with the user's own token, as any Mattermost client can. */
async function restPost(token: string, body: Record<string, unknown>): Promise<ChatPost> {
  const res = await fetch(`${w.sandbox.url}/api/v4/posts`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as ChatPost;
}

async function webhookPost(hookId: string, payload: Record<string, unknown>): Promise<ChatPost> {
  const before = new Set(w.sandbox.postsIn(w.channel).map((p) => p.id));
  const res = await fetch(`${w.sandbox.url}/hooks/${hookId}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(payload),
  });
  expect(res.status).toBe(200);
  expect(await res.text()).toBe('ok');
  const created = w.sandbox.postsIn(w.channel).filter((p) => !before.has(p.id));
  expect(created).toHaveLength(1);
  return created[0]!;
}

describe('webhook posts never count', () => {
  it('POST /hooks/{id} with the username of an approver and the exact phrase, from a hook an approver owns', async () => {
    await setUp();
    const { root, jobId } = await requestJob(w, 'bruno');
    // The hook belongs to dmitri (sec-reviewers): the post's user_id is his, the name shown is chioma's.
    const hook = w.sandbox.createIncomingWebhook({ channel_id: w.channel, user_id: w.ids.dmitri });
    const spoof = await webhookPost(hook.id, { text: approve(jobId), username: 'chioma' });
    expect(spoof).toMatchObject({ user_id: w.ids.dmitri, message: approve(jobId) });
    expect(spoof.props).toMatchObject({ from_webhook: 'true', override_username: 'chioma' });
    expect(await handledOf(b, spoof.id)).toEqual({ outcome: 'ignored', why: 'webhook post' });

    // Nor can a webhook request work, or revoke it.
    const run = await webhookPost(hook.id, { text: RUN, username: 'bruno' });
    expect(await handledOf(b, run.id)).toEqual({ outcome: 'ignored', why: 'webhook post' });
    const revoke = await webhookPost(hook.id, { text: `REVOKE job:${jobId} spoofed`, username: 'erin' });
    expect(await handledOf(b, revoke.id)).toEqual({ outcome: 'ignored', why: 'webhook post' });

    for (const p of [spoof, run, revoke]) {
      await expectNoEffect(p.id, jobId);
      expect(await chatPostRow(w, p.id)).toBeUndefined();
    }
    await realApprovalStillNeedsAnother(root.id, jobId);
    for (const p of [spoof, run, revoke]) await expectSilenceAbout(w, p.id);
    expect(await w.d.db.selectFrom('jobs').select('id').execute()).toHaveLength(1);
    expect((await w.d.db.selectFrom('jobs').select('status').executeTakeFirstOrThrow()).status).toBe('open');
  });

  it('on a server without username override, from_webhook alone is enough', async () => {
    await setUp({ enablePostUsernameOverride: false });
    const { root, jobId } = await requestJob(w, 'bruno');
    const hook = w.sandbox.createIncomingWebhook({ channel_id: w.channel, user_id: w.ids.chioma });
    const spoof = await webhookPost(hook.id, { text: approve(jobId), username: 'chioma' });
    expect(spoof.props.override_username).toBeUndefined();
    expect(spoof.props.from_webhook).toBe('true');
    expect(await handledOf(b, spoof.id)).toEqual({ outcome: 'ignored', why: 'webhook post' });
    await expectNoEffect(spoof.id, jobId);
    await realApprovalStillNeedsAnother(root.id, jobId);
    await expectSilenceAbout(w, spoof.id);
  });
});

describe('posts by bots, and posts that say they are', () => {
  it('a bot account posting the exact phrase in the thread', async () => {
    await setUp();
    const { root, jobId } = await requestJob(w, 'bruno');
    const other = w.sandbox.createUser({ username: 'deploybot', is_bot: true }).user;
    w.sandbox.addChannelMember(w.channel, other.id);
    const spoof = w.sandbox.createPost(other.id, {
      channel_id: w.channel,
      root_id: root.id,
      message: approve(jobId),
    });
    expect(spoof.props.from_bot).toBe('true');
    expect(await handledOf(b, spoof.id)).toEqual({ outcome: 'ignored', why: 'bot post' });
    const run = w.sandbox.createPost(other.id, { channel_id: w.channel, message: RUN });
    expect(await handledOf(b, run.id)).toEqual({ outcome: 'ignored', why: 'bot post' });
    await expectNoEffect(spoof.id, jobId);
    await realApprovalStillNeedsAnother(root.id, jobId);
    await expectSilenceAbout(w, spoof.id);
    await expectSilenceAbout(w, run.id);
  });

  it('a bot account whose post lacks from_bot is still a bot (the author is looked up)', async () => {
    await setUp();
    const { root, jobId } = await requestJob(w, 'bruno');
    const other = w.sandbox.createUser({ username: 'quietbot', is_bot: true }).user;
    const me = b.bot.user!;
    const post: ChatPost = {
      id: 'q'.repeat(26),
      create_at: Date.now(),
      update_at: Date.now(),
      edit_at: 0,
      delete_at: 0,
      original_id: '',
      user_id: other.id,
      channel_id: w.channel,
      root_id: root.id,
      message: approve(jobId),
      type: '',
      props: {},
    };
    const deps = { engine: b.engine, chat: b.rest, bot: me, log: silentLogger() };
    expect(await handlePost(deps, post)).toEqual({ outcome: 'ignored', why: 'author is a bot' });
    await expectNoEffect(post.id, jobId);
    await expectSilenceAbout(w, post.id);
  });

  it.each([
    ['alice', { from_webhook: 'true' }, 'webhook post'],
    ['chioma', { from_bot: 'true' }, 'bot post'],
    ['alice', { from_bot: 'false' }, 'bot post'],
    ['dmitri', { override_username: 'alice' }, 'overridden username'],
    ['alice', { from_plugin: 'true' }, 'plugin post'],
  ] as const)('an approver (%s) whose post carries %j: ignored', async (who, props, why) => {
    await setUp();
    const { root, jobId } = await requestJob(w, 'bruno');
    const spoof = w.sandbox.createPost(w.ids[who], {
      channel_id: w.channel,
      root_id: root.id,
      message: approve(jobId),
      props,
    });
    expect(spoof.props).toMatchObject(props);
    expect(await handledOf(b, spoof.id)).toEqual({ outcome: 'ignored', why });
    await expectNoEffect(spoof.id, jobId);
    await realApprovalStillNeedsAnother(root.id, jobId, who === 'alice' ? 'sec-reviewers' : 'ops-oncall');
    await expectSilenceAbout(w, spoof.id);
  });
});

describe('posts that are not normal user posts', () => {
  it('a /me post, a custom post type, over REST with the approver’s own token', async () => {
    await setUp();
    const { root, jobId } = await requestJob(w, 'bruno');
    const me = await restPost(w.tokens.alice, {
      channel_id: w.channel,
      root_id: root.id,
      message: approve(jobId),
      type: 'me',
    });
    expect(await handledOf(b, me.id)).toEqual({ outcome: 'ignored', why: 'post type me' });
    const custom = await restPost(w.tokens.chioma, {
      channel_id: w.channel,
      root_id: root.id,
      message: approve(jobId),
      type: 'custom_approval',
    });
    expect(await handledOf(b, custom.id)).toEqual({ outcome: 'ignored', why: 'post type custom_approval' });
    // A client cannot make a system post at all.
    const res = await fetch(`${w.sandbox.url}/api/v4/posts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${w.tokens.alice}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        channel_id: w.channel,
        root_id: root.id,
        message: approve(jobId),
        type: 'system_generic',
      }),
    });
    expect(res.status).toBe(400);
    for (const p of [me, custom]) await expectNoEffect(p.id, jobId);
    await realApprovalStillNeedsAnother(root.id, jobId);
    for (const p of [me, custom]) await expectSilenceAbout(w, p.id);
  });

  it('a system post carrying the phrase (as the server would send it) is ignored before its text is read', async () => {
    await setUp();
    const { root, jobId } = await requestJob(w, 'bruno');
    const deps = { engine: b.engine, chat: b.rest, bot: b.bot.user!, log: silentLogger() };
    for (const type of ['system_join_channel', 'system_header_change', 'system_generic']) {
      const post = alicesApproval(`${type.slice(7, 11)}${'s'.repeat(22)}`.slice(0, 26), root.id, jobId, type);
      expect(await handlePost(deps, post)).toEqual({ outcome: 'ignored', why: `post type ${type}` });
      // Its edit or delete is nothing either.
      expect(await handlePost(deps, { ...post, edit_at: Date.now() })).toEqual({
        outcome: 'ignored',
        why: `post type ${type}`,
      });
      await expectNoEffect(post.id, jobId);
      await expectSilenceAbout(w, post.id);
    }
  });
});

describe('a delete heard before the post', () => {
  it('an approval whose delete is handled before its post never counts', async () => {
    // A plugin's MessageHasBeenPosted hook, or another node of a cluster, can put the delete first.
    await setUp();
    const { root, jobId } = await requestJob(w, 'bruno');
    const deps = { engine: b.engine, chat: b.rest, bot: b.bot.user!, log: silentLogger() };
    const post = alicesApproval('deletedfirst00000000000000', root.id, jobId);
    expect(await handlePost(deps, { ...post, delete_at: Date.now() })).toEqual({
      outcome: 'handled',
      action: 'deleted_before_seen',
      jobId: null,
    });
    expect(await handlePost(deps, post)).toEqual({ outcome: 'duplicate' });
    await expectNoEffect(post.id, jobId);
    expect(await chatPostRow(w, post.id)).toMatchObject({ action: 'deleted_before_seen', job_id: null });
    await realApprovalStillNeedsAnother(root.id, jobId);
  });
});

describe('edits: a post edited into an approval never counts', () => {
  it('chatter edited into the exact phrase', async () => {
    await setUp();
    const { root, jobId } = await requestJob(w, 'bruno');
    const chatter = w.post('alice', 'looks fine to me, one sec', root.id);
    expect(await handledOf(b, chatter.id)).toEqual({ outcome: 'ignored', why: 'not for the bot' });
    w.sandbox.editPost(w.ids.alice, chatter.id, approve(jobId));
    expect(await handledOf(b, chatter.id, 2)).toMatchObject({
      outcome: 'handled',
      action: 'edited_before_seen',
    });
    expect((await answerTo(w, chatter)).message).toBe(
      `@alice not counted: an edited message never counts; post the phrase again as a new reply. Reply with exactly: \`${approve(jobId)}\``,
    );
    await eventually(() => reacted(w, chatter.id, 'x'), 'x reaction');
    await expectNoEffect(chatter.id, jobId);
    expect(await chatPostRow(w, chatter.id)).toMatchObject({ action: 'edited_before_seen', job_id: null });
    await realApprovalStillNeedsAnother(root.id, jobId);
  });

  it('a near miss, then a status request, each edited into the exact phrase', async () => {
    await setUp();
    const { root, jobId } = await requestJob(w, 'bruno');
    const near = w.post('chioma', approve(jobId).toLowerCase(), root.id);
    expect((await answerTo(w, near)).message).toContain('the phrase is case-sensitive');
    const status = w.post('dmitri', `@clawbot status job:${jobId}`, root.id);
    expect((await answerTo(w, status)).message).toContain(`**job:${jobId}** is open`);

    for (const p of [near, status]) {
      const who = p.user_id === w.ids.chioma ? 'chioma' : 'dmitri';
      const edited = w.sandbox.editPost(p.user_id, p.id, approve(jobId));
      expect(await handledOf(b, p.id, 2)).toMatchObject({ outcome: 'handled', action: 'edited_noted' });
      const answer = await eventually(
        () => botPosts(w).find((r) => r.props[OUTBOX_KEY_PROP] === `edit:${p.id}:${edited.edit_at}`),
        'the answer to the edit',
      );
      expect(answer.message).toBe(
        `@${who} not counted: an edited message never counts; post the phrase again as a new reply. Reply with exactly: \`${approve(jobId)}\``,
      );
      await expectNoEffect(p.id, jobId);
    }
    await realApprovalStillNeedsAnother(root.id, jobId);
  });
});

describe('quoted approvals never count', () => {
  it('> APPROVE…, “someone said APPROVE…”, and a quote above the phrase', async () => {
    await setUp();
    const { root, jobId } = await requestJob(w, 'bruno');
    const quoted = w.post('chioma', `> ${approve(jobId)}`, root.id);
    expect((await answerTo(w, quoted)).message).toBe(
      `@chioma not counted: quoted text never counts. Reply with exactly: \`${approve(jobId)}\``,
    );
    await expectNoEffect(quoted.id, jobId);
    expect(await chatPostRow(w, quoted.id)).toMatchObject({ action: 'near_miss' });

    // The phrase under a quote is not the whole message: answered, never counted.
    const quoteAbove = w.post('chioma', `> alice: can someone approve?\n${approve(jobId)}`, root.id);
    expect((await answerTo(w, quoteAbove)).message).toBe(
      `@chioma not counted: nothing else may be in the message. Reply with exactly: \`${approve(jobId)}\``,
    );
    await expectNoEffect(quoteAbove.id, jobId);

    for (const message of [
      `someone said ${approve(jobId)}`,
      `alice wrote:\n> ${approve(jobId)}`,
      `I would type "${approve(jobId)}" if I agreed`,
    ]) {
      const p = w.post('chioma', message, root.id);
      expect(await handledOf(b, p.id), message).toEqual({ outcome: 'ignored', why: 'not for the bot' });
      await expectNoEffect(p.id, jobId);
      await expectSilenceAbout(w, p.id);
    }
    await realApprovalStillNeedsAnother(root.id, jobId);
  });
});

describe('an approval edited or deleted', () => {
  it('before quorum: withdrawn, so the next approver does not reach quorum', async () => {
    await setUp();
    const { root, jobId } = await requestJob(w, 'bruno');
    const alice = w.post('alice', approve(jobId), root.id);
    await answerTo(w, alice);
    expect(await countedApprovals(w, jobId)).toHaveLength(1);

    w.sandbox.editPost(w.ids.alice, alice.id, `${approve(jobId)} (after reading the runbook)`);
    expect(await handledOf(b, alice.id, 2)).toMatchObject({ action: 'approval_withdrawn_edited' });
    await botSays(
      w,
      root.id,
      `Approval by @alice for job:${jobId} step \`post-summary\` withdrawn: the post was edited.`,
    );
    expect(await decisionsOn(w, alice.id)).toMatchObject([
      { outcome: 'accepted', withdrawn_reason: 'post edited', withdrawn_at: expect.any(Date) },
    ]);
    expect(await countedApprovals(w, jobId)).toEqual([]);

    // chioma's approval would have been the second: it is the first now.
    const chioma = w.post('chioma', approve(jobId), root.id);
    expect((await answerTo(w, chioma)).message).toContain('still needed: 1 more approval from ops-oncall');
    expect(await tokensOf(w, jobId)).toEqual([]);

    // Deleted, likewise.
    w.sandbox.deletePost(w.ids.chioma, chioma.id);
    expect(await handledOf(b, chioma.id, 2)).toMatchObject({ action: 'approval_withdrawn_deleted' });
    await botSays(
      w,
      root.id,
      `Approval by @chioma for job:${jobId} step \`post-summary\` withdrawn: the post was deleted.`,
    );
    expect(await countedApprovals(w, jobId)).toEqual([]);
    const again = w.post('alice', approve(jobId), root.id);
    expect((await answerTo(w, again)).message).toContain('still needed: 1 more approval from sec-reviewers');
    expect(await tokensOf(w, jobId)).toEqual([]);

    // Posted afresh, approvals count again and mint.
    w.post('dmitri', approve(jobId), root.id);
    await botSays(w, root.id, 'approved by @alice (ops-oncall), @dmitri (sec-reviewers)');
    expect(await tokensOf(w, jobId)).toHaveLength(1);
    // Withdrawals are part of the job's record.
    const withdrawn = await w.d.db
      .selectFrom('job_events')
      .select('event_type')
      .where('job_id', '=', jobId)
      .where('event_type', '=', 'approval_withdrawn')
      .execute();
    expect(withdrawn).toHaveLength(2);
  });

  it('after minting: nothing changes, and the bot says nothing', async () => {
    await setUp();
    const { root, jobId } = await requestJob(w, 'bruno');
    const alice = w.post('alice', approve(jobId), root.id);
    await answerTo(w, alice);
    const chioma = w.post('chioma', approve(jobId), root.id);
    await botSays(w, root.id, 'approved by');
    const [token] = await tokensOf(w, jobId);
    expect(token).toBeDefined();

    const edited = w.sandbox.editPost(w.ids.alice, alice.id, `${approve(jobId)}!`);
    expect(edited.edit_at).toBeGreaterThan(0);
    expect(await handledOf(b, alice.id, 2)).toMatchObject({ outcome: 'handled', action: 'edited_noted' });
    w.sandbox.deletePost(w.ids.chioma, chioma.id);
    expect(await handledOf(b, chioma.id, 2)).toMatchObject({ outcome: 'handled', action: 'deleted_noted' });

    expect(await countedApprovals(w, jobId)).toHaveLength(2);
    expect(await tokensOf(w, jobId)).toEqual([{ ...token, revoked_at: null }]);
    // No withdrawal and no complaint was queued for either post.
    const keys = (await w.d.db.selectFrom('outbox').select('dedupe_key').execute()).map((r) => r.dedupe_key);
    expect(keys.filter((k) => /^(edit|edited|deleted):/.test(k))).toEqual([]);
    // A later answer in the thread shows everything queued before it is out: no withdrawal said.
    const status = w.post('grace', `@clawbot status job:${jobId}`, root.id);
    expect((await answerTo(w, status)).message).toContain('| `post-summary` | gated | approved | 2/2 |');
    expect(w.botReplies(root.id).filter((p) => p.message.includes('withdrawn'))).toEqual([]);
  });
});
