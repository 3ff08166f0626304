import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { events, Probe, rest } from './helpers.js';
import { world, type World } from './world.js';

let w: World;
const probes: Probe[] = [];

beforeEach(async () => {
  w = await world();
});

afterEach(async () => {
  for (const p of probes.splice(0)) p.close();
  await w.sandbox.close();
});

async function listen(token: string): Promise<Probe> {
  const probe = await Probe.open(w.sandbox, { token });
  probes.push(probe);
  await probe.next(); // hello
  return probe;
}

const ID = /^[ybndrfg8ejkmcpqxot1uwisza345h769]{26}$/;
const SECRET = { job: 'job:7', mac: 'c2VjcmV0LW1hYw' };

/** Two buttons, one without an id; both carry a private integration context. */
const buttons = (url = 'http://127.0.0.1:9/actions') => ({
  attachments: [
    {
      text: 'Step 1 awaits approval',
      actions: [
        { id: 'approve', name: 'Approve', type: 'button', integration: { url, context: SECRET } },
        {
          id: undefined as string | undefined,
          name: 'Deny',
          type: 'button',
          style: 'danger',
          integration: { url, context: { ...SECRET, a: 'deny' } },
        },
      ],
    },
  ],
});

type Attachment = { actions?: Record<string, unknown>[] } & Record<string, unknown>;
const attachmentsOf = (post: { props: Record<string, unknown> }): Attachment[] =>
  post.props.attachments as Attachment[];

describe('PUT /posts/{id}/patch', () => {
  it('lets the author patch, sets edit_at on a new message, keeps props it was not given', async () => {
    const post = w.sandbox.createPost(w.bot.user.id, {
      channel_id: w.town.id,
      message: 'v1',
      props: { x: 1 },
    });
    const r = await rest(w.sandbox, w.bot.token, 'PUT', `/posts/${post.id}/patch`, { message: 'v2' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: post.id, message: 'v2', props: { from_bot: 'true', x: 1 } });
    expect((r.body as { edit_at: number }).edit_at).toBeGreaterThan(0);
  });

  it('replaces props wholesale, as Post.Patch does, dropping from_bot when the patch leaves it out', async () => {
    const post = w.sandbox.createPost(w.bot.user.id, {
      channel_id: w.town.id,
      message: 'status',
      props: { a: 1 },
    });
    const r = await rest(w.sandbox, w.bot.token, 'PUT', `/posts/${post.id}/patch`, {
      props: { b: 2, add_channel_member: { user_ids: ['x'] }, force_notification: true },
    });
    // SanitizeProps still removes what a client may never set.
    expect((r.body as { props: unknown }).props).toEqual({ b: 2 });
    // Props other than attachments are not an edit.
    expect((r.body as { edit_at: number }).edit_at).toBe(0);
  });

  it('counts a change of attachments as an edit even when the message stays', async () => {
    const named = buttons();
    named.attachments[0]!.actions[1]!.id = 'deny';
    const post = w.sandbox.createPost(w.bot.user.id, {
      channel_id: w.town.id,
      message: 'status',
      props: named,
    });
    // The same attachments with only a button's style changed are equal (PostAction.Equals).
    named.attachments[0]!.actions[1]!.style = 'primary';
    const same = w.sandbox.patchPost(w.bot.user.id, post.id, { props: named });
    expect(same.edit_at).toBe(0);
    const changed = w.sandbox.patchPost(w.bot.user.id, post.id, {
      props: { attachments: [{ text: 'Step 1 approved' }] },
    });
    expect(changed.edit_at).toBeGreaterThan(0);
  });

  it('refuses another user (403) but lets a system admin patch, and emits post_edited', async () => {
    const post = w.sandbox.createPost(w.alice.user.id, { channel_id: w.town.id, message: 'mine' });
    const bob = await listen(w.bob.token);
    const refused = await rest(w.sandbox, w.bob.token, 'PUT', `/posts/${post.id}/patch`, {
      message: 'hijack',
    });
    expect(refused.status).toBe(403);
    expect((refused.body as { id: string }).id).toBe('api.context.permissions.app_error');
    const byAdmin = await rest(w.sandbox, w.admin.token, 'PUT', `/posts/${post.id}/patch`, {
      message: 'moderated',
    });
    expect(byAdmin.status).toBe(200);
    const frames = events(await bob.drain(), 'post_edited');
    expect(frames).toHaveLength(1);
    expect(JSON.parse(frames[0]!.data!.post as string)).toMatchObject({ id: post.id, message: 'moderated' });
  });

  it('answers a deleted or unknown post with a permission error, as postPatchChecks does', async () => {
    const post = w.sandbox.createPost(w.alice.user.id, { channel_id: w.town.id, message: 'gone soon' });
    w.sandbox.deletePost(w.alice.user.id, post.id);
    const deleted = await rest(w.sandbox, w.alice.token, 'PUT', `/posts/${post.id}/patch`, { message: 'x' });
    expect(deleted.status).toBe(403);
    const unknown = await rest(w.sandbox, w.alice.token, 'PUT', `/posts/${'a'.repeat(26)}/patch`, {
      message: 'x',
    });
    expect(unknown.status).toBe(403);
    const malformed = await rest(w.sandbox, w.alice.token, 'PUT', `/posts/${post.id}/patch`, '{');
    expect(malformed.status).toBe(400);
  });
});

describe('interactive actions in posts', () => {
  it('gives an id to every action without one, keeping given ids (Post.GenerateActionIds)', () => {
    const post = w.sandbox.createPost(w.bot.user.id, {
      channel_id: w.town.id,
      message: 'plan',
      props: buttons(),
    });
    const [approve, deny] = attachmentsOf(post)[0]!.actions!;
    expect(approve!.id).toBe('approve');
    expect(deny!.id).toMatch(ID);
    const patched = w.sandbox.patchPost(w.bot.user.id, post.id, {
      props: {
        attachments: [{ actions: [{ name: 'Retry', type: 'button', integration: { url: 'http://x/' } }] }],
      },
    });
    expect(attachmentsOf(patched)[0]!.actions![0]!.id).toMatch(ID);
  });

  it('stores attachments as model.MessageAttachment: unknown keys dropped, undecodable ones left out', () => {
    const post = w.sandbox.createPost(w.bot.user.id, {
      channel_id: w.town.id,
      message: 'plan',
      props: {
        attachments: [
          { text: 'kept', bogus: true, actions: [null, { name: 'Go', type: 'button' }] },
          { text: 5 },
          'x',
        ],
      },
    });
    const attachments = attachmentsOf(post);
    expect(attachments).toHaveLength(1);
    expect(attachments[0]).toEqual({
      id: 0,
      fallback: '',
      color: '',
      pretext: '',
      author_name: '',
      author_link: '',
      author_icon: '',
      title: '',
      title_link: '',
      text: 'kept',
      fields: null,
      image_url: '',
      thumb_url: '',
      footer: '',
      footer_icon: '',
      ts: null,
      actions: [{ id: expect.stringMatching(ID), name: 'Go', type: 'button' }],
    });
    const none = w.sandbox.createPost(w.bot.user.id, {
      channel_id: w.town.id,
      message: 'plan',
      props: { attachments: { not: 'a list' } },
    });
    expect(none.props.attachments).toBeNull();
  });

  it('strips every integration from what clients get: REST answers, lists, thread, since and events', async () => {
    const alice = await listen(w.alice.token);
    const created = await rest(w.sandbox, w.bot.token, 'POST', '/posts', {
      channel_id: w.town.id,
      message: 'plan',
      props: buttons(),
    });
    expect(created.status).toBe(201);
    const id = (created.body as { id: string }).id;
    const patched = await rest(w.sandbox, w.bot.token, 'PUT', `/posts/${id}/patch`, { props: buttons() });
    const served = [
      created.body,
      patched.body,
      (await rest(w.sandbox, w.alice.token, 'GET', `/posts/${id}`)).body,
      (await rest(w.sandbox, w.alice.token, 'GET', `/posts/${id}/thread`)).body,
      (await rest(w.sandbox, w.alice.token, 'GET', `/channels/${w.town.id}/posts`)).body,
      (await rest(w.sandbox, w.alice.token, 'GET', `/channels/${w.town.id}/posts?since=1`)).body,
      w.sandbox.thread(id),
      ...events(await alice.drain()).map((f) => f.data),
    ];
    expect(served.length).toBeGreaterThanOrEqual(9);
    for (const answer of served) {
      const text = JSON.stringify(answer);
      expect(text).toContain('approve');
      expect(text).not.toContain('integration');
      expect(text).not.toContain('c2VjcmV0LW1hYw');
    }
  });
});
