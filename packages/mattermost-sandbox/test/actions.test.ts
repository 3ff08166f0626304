import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clickAction } from '../src/client-calls.js';
import type { MmPost } from '../src/types.js';
import { events, Probe, rest, startIntegration, type IntegrationReply } from './helpers.js';
import { world, type World } from './world.js';

let w: World;
let clock: number;
let reply: IntegrationReply;
let integration: Awaited<ReturnType<typeof startIntegration>>;
const probes: Probe[] = [];

beforeEach(async () => {
  clock = Date.UTC(2026, 0, 1);
  // A clock that ticks on every read, and that a test can move forward.
  w = await world({ now: () => clock++ });
  reply = {};
  integration = await startIntegration(() => reply);
});

afterEach(async () => {
  for (const p of probes.splice(0)) p.close();
  await integration.close();
  await w.sandbox.close();
});

async function listen(token: string): Promise<Probe> {
  const probe = await Probe.open(w.sandbox, { token });
  probes.push(probe);
  await probe.next(); // hello
  return probe;
}

const CONTEXT = { job: 'job:7', step: 'deploy', mac: 'c2VjcmV0LW1hYw' };
const errorId = (r: { body: unknown }): unknown => (r.body as { id?: unknown }).id;

/** A bot post in town-square with an Approve button wired to the test integration. */
function planPost(extra: Record<string, unknown> = {}): MmPost {
  return w.sandbox.createPost(w.bot.user.id, {
    channel_id: w.town.id,
    message: 'Plan for job:7',
    props: {
      attachments: [
        {
          text: 'deploy awaits approval',
          actions: [
            {
              id: 'approve',
              name: 'Approve',
              type: 'button',
              integration: { url: integration.url, context: CONTEXT },
            },
            { id: 'nolink', name: 'No integration', type: 'button' },
          ],
        },
      ],
      ...extra,
    },
  });
}

describe('POST /posts/{post_id}/actions/{action_id}', () => {
  it('POSTs the PostActionIntegrationRequest with the private context and a signed trigger id', async () => {
    const post = planPost();
    const r = await clickAction(w.sandbox, w.alice.token, post.id, 'approve');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ status: 'OK', trigger_id: expect.stringMatching(/^[a-z0-9]{26}$/) });
    expect(integration.calls).toHaveLength(1);
    const call = integration.calls[0]!;
    expect(call.method).toBe('POST');
    expect(call.headers['content-type']).toBe('application/json');
    const sent = JSON.parse(call.body) as Record<string, unknown>;
    expect(Object.keys(sent)).toEqual([
      'user_id',
      'user_name',
      'channel_id',
      'channel_name',
      'team_id',
      'team_domain',
      'post_id',
      'trigger_id',
      'type',
      'data_source',
      'context',
    ]);
    expect(sent).toMatchObject({
      user_id: w.alice.user.id,
      user_name: 'alice',
      channel_id: w.town.id,
      channel_name: 'town-square',
      team_id: w.team.id,
      team_domain: 'ops',
      post_id: post.id,
      type: 'button',
      data_source: '',
      context: CONTEXT,
    });
    // user id + time, signed: `<client id>:<user id>:<millis>:<signature>`, base64.
    const trigger = Buffer.from(sent.trigger_id as string, 'base64')
      .toString('utf8')
      .split(':');
    expect(trigger.slice(0, 2)).toEqual([(r.body as { trigger_id: string }).trigger_id, w.alice.user.id]);
    expect(Number(trigger[2])).toBeGreaterThan(Date.UTC(2026, 0, 1));
  });

  it('shows ephemeral_text to the clicker only, in the thread, with Slack links made Markdown', async () => {
    const post = planPost();
    const alice = await listen(w.alice.token);
    const bob = await listen(w.bob.token);
    reply = { body: JSON.stringify({ ephemeral_text: 'Counted, see <http://x.test/j/7|job 7>' }) };
    expect((await clickAction(w.sandbox, w.alice.token, post.id, 'approve')).status).toBe(200);
    const [frame] = events(await alice.drain(), 'ephemeral_message');
    expect(frame!.broadcast).toMatchObject({ user_id: w.alice.user.id, channel_id: w.town.id });
    expect(JSON.parse(frame!.data!.post as string)).toMatchObject({
      type: 'system_ephemeral',
      user_id: w.alice.user.id,
      channel_id: w.town.id,
      root_id: post.id,
      message: 'Counted, see [job 7](http://x.test/j/7)',
    });
    expect(events(await bob.drain(), 'ephemeral_message')).toEqual([]);
    expect(w.sandbox.ephemeralPostsFor(w.alice.user.id).map((p) => p.message)).toEqual([
      'Counted, see [job 7](http://x.test/j/7)',
    ]);
    expect(w.sandbox.postsIn(w.town.id).map((p) => p.id)).toEqual([post.id]);
  });

  it('applies an update as UpdatePost does: new message and props, retained keys, pin kept', async () => {
    const post = planPost({ override_username: 'claw' });
    w.sandbox.patchPost(w.bot.user.id, post.id, { is_pinned: true });
    const bob = await listen(w.bob.token);
    reply = { body: JSON.stringify({ update: { message: 'deploy approved', props: { status: 'done' } } }) };
    expect((await clickAction(w.sandbox, w.alice.token, post.id, 'approve')).status).toBe(200);
    const [updated] = w.sandbox.thread(post.id);
    expect(updated).toMatchObject({ message: 'deploy approved', is_pinned: true });
    // from_bot is not a retained key: an update with props drops it; override_username stays.
    expect(updated!.props).toEqual({ status: 'done', override_username: 'claw' });
    expect(events(await bob.drain(), 'post_edited')).toHaveLength(1);
  });

  it('keeps the original props when the update has none, so the button still works', async () => {
    const post = planPost();
    reply = { body: JSON.stringify({ update: { message: 'still pending' } }) };
    await clickAction(w.sandbox, w.alice.token, post.id, 'approve');
    expect(w.sandbox.thread(post.id)[0]!.message).toBe('still pending');
    reply = {};
    expect((await clickAction(w.sandbox, w.bob.token, post.id, 'approve')).status).toBe(200);
    expect(JSON.parse(integration.calls[1]!.body)).toMatchObject({
      user_id: w.bob.user.id,
      context: CONTEXT,
    });
  });

  it('refuses a user who cannot read the channel, without calling the integration', async () => {
    const post = planPost();
    const r = await clickAction(w.sandbox, w.outsider.token, post.id, 'approve');
    expect(r.status).toBe(403);
    expect(errorId(r)).toBe('api.context.permissions.app_error');
    expect((await rest(w.sandbox, '', 'POST', `/posts/${post.id}/actions/approve`, {})).status).toBe(401);
    expect(integration.calls).toEqual([]);
  });

  it('answers unknown actions, actions without an integration and unroutable ids with 404s', async () => {
    const post = planPost();
    for (const id of ['missing', 'nolink']) {
      const r = await clickAction(w.sandbox, w.alice.token, post.id, id);
      expect(r.status, id).toBe(404);
      expect(errorId(r), id).toBe('api.post.do_action.action_id.app_error');
    }
    // The route only matches [A-Za-z0-9]+ ids: anything else never reaches the handler.
    const unroutable = await clickAction(w.sandbox, w.alice.token, post.id, 'app_rove');
    expect(errorId(unroutable)).toBe('api.context.404.app_error');
    expect(integration.calls).toEqual([]);
  });

  it('answers a deleted post 404 to a member, an unknown one 403, and refuses any cookie', async () => {
    const post = planPost();
    const cookie = await rest(w.sandbox, w.alice.token, 'POST', `/posts/${post.id}/actions/approve`, {
      cookie: 'forged',
    });
    expect(cookie.status).toBe(400);
    expect(errorId(cookie)).toBe('api.post.do_action.action_integration.app_error');
    w.sandbox.deletePost(w.bot.user.id, post.id);
    const deleted = await clickAction(w.sandbox, w.alice.token, post.id, 'approve');
    expect(deleted.status).toBe(404);
    expect(errorId(deleted)).toBe('app.post.get.app_error');
    expect((await clickAction(w.sandbox, w.alice.token, 'a'.repeat(26), 'approve')).status).toBe(403);
    expect(integration.calls).toEqual([]);
  });

  it('fails with 400 action_integration when the integration answers non-200, garbage, or not at all', async () => {
    const post = planPost();
    for (const answer of [
      { status: 500 },
      { status: 201 },
      { body: '{not json' },
      { body: '{"update": 5}' },
    ]) {
      reply = answer;
      const r = await clickAction(w.sandbox, w.alice.token, post.id, 'approve');
      expect(r.status, JSON.stringify(answer)).toBe(400);
      expect(errorId(r)).toBe('api.post.do_action.action_integration.app_error');
    }
    await integration.close();
    const unreachable = await clickAction(w.sandbox, w.alice.token, post.id, 'approve');
    expect(errorId(unreachable)).toBe('api.post.do_action.action_integration.app_error');
    // Nothing changed and nobody was told anything.
    expect(w.sandbox.thread(post.id)[0]!.edit_at).toBe(0);
    expect(w.sandbox.ephemeralPostsFor(w.alice.user.id)).toEqual([]);
    integration = await startIntegration(() => reply);
  });
});

describe('interactive dialogs', () => {
  const dialog = {
    callback_id: 'deny',
    title: 'Deny deploy',
    elements: [{ display_name: 'Reason', name: 'reason', type: 'textarea' }],
    state: 'job:7|deploy|mac',
  };

  /** A click's signed trigger id, as the integration received it. */
  async function triggerFor(token: string): Promise<{ triggerId: string; clientTriggerId: string }> {
    const post = planPost();
    const r = await clickAction(w.sandbox, token, post.id, 'approve');
    const sent = JSON.parse(integration.calls.at(-1)!.body) as { trigger_id: string };
    return { triggerId: sent.trigger_id, clientTriggerId: (r.body as { trigger_id: string }).trigger_id };
  }

  it('opens a dialog for the trigger’s user only, with the client trigger id, no session needed', async () => {
    const { triggerId, clientTriggerId } = await triggerFor(w.alice.token);
    const alice = await listen(w.alice.token);
    const bob = await listen(w.bob.token);
    const r = await rest(w.sandbox, '', 'POST', '/actions/dialogs/open', {
      trigger_id: triggerId,
      url: integration.url,
      dialog,
    });
    expect(r).toEqual({ status: 200, body: { status: 'OK' } });
    const [frame] = events(await alice.drain(), 'open_dialog');
    expect(frame!.broadcast).toMatchObject({ user_id: w.alice.user.id, channel_id: '' });
    const shown = JSON.parse(frame!.data!.dialog as string) as Record<string, unknown>;
    expect(shown).toMatchObject({
      trigger_id: clientTriggerId,
      url: integration.url,
      dialog: { title: 'Deny deploy' },
    });
    expect(events(await bob.drain(), 'open_dialog')).toEqual([]);
    expect(w.sandbox.openedDialogs(w.alice.user.id)).toEqual([shown]);
    expect(w.sandbox.openedDialogs(w.bob.user.id)).toEqual([]);
  });

  it('refuses malformed, forged and expired trigger ids with Mattermost’s 400s', async () => {
    const { triggerId } = await triggerFor(w.alice.token);
    const [clientId, , millis, signature] = Buffer.from(triggerId, 'base64').toString('utf8').split(':');
    const forged = Buffer.from(`${clientId}:${w.bob.user.id}:${millis}:${signature}`).toString('base64');
    const cases: [string, string][] = [
      ['not base64!', 'interactive_message.decode_trigger_id.base64_decode_failed'],
      [Buffer.from('a:b:c').toString('base64'), 'interactive_message.decode_trigger_id.missing_data'],
      [forged, 'interactive_message.decode_trigger_id.verify_signature_failed'],
      [
        Buffer.from(`${clientId}:${w.alice.user.id}:${millis}:???`).toString('base64'),
        'interactive_message.decode_trigger_id.base64_decode_failed_signature',
      ],
    ];
    for (const [trigger, id] of cases) {
      const r = await rest(w.sandbox, '', 'POST', '/actions/dialogs/open', {
        trigger_id: trigger,
        url: integration.url,
        dialog,
      });
      expect(r.status, id).toBe(400);
      expect(errorId(r)).toBe(id);
    }
    clock += 30_001;
    const expired = await rest(w.sandbox, '', 'POST', '/actions/dialogs/open', {
      trigger_id: triggerId,
      url: integration.url,
      dialog,
    });
    expect(errorId(expired)).toBe('interactive_message.decode_trigger_id.expired');
    expect(w.sandbox.openedDialogs(w.alice.user.id)).toEqual([]);
    expect(w.sandbox.openedDialogs(w.bob.user.id)).toEqual([]);
  });

  it('needs a url and a dialog that decodes', async () => {
    const { triggerId } = await triggerFor(w.alice.token);
    const noUrl = await rest(w.sandbox, '', 'POST', '/actions/dialogs/open', {
      trigger_id: triggerId,
      dialog,
    });
    expect(noUrl.status).toBe(400);
    expect((noUrl.body as { message: string }).message).toBe('Invalid url parameter.');
    const badDialog = await rest(w.sandbox, '', 'POST', '/actions/dialogs/open', {
      trigger_id: triggerId,
      url: integration.url,
      dialog: { title: 5 },
    });
    expect((badDialog.body as { message: string }).message).toBe('Invalid dialog parameter.');
  });

  it('submits with the session’s user id, never the body’s, and returns the integration’s errors', async () => {
    reply = { body: JSON.stringify({ errors: { reason: 'Too short' } }) };
    const r = await rest(w.sandbox, w.alice.token, 'POST', '/actions/dialogs/submit', {
      url: integration.url,
      callback_id: 'deny',
      state: 'job:7|deploy|mac',
      user_id: w.bob.user.id,
      channel_id: w.town.id,
      team_id: w.team.id,
      submission: { reason: 'no' },
    });
    expect(r).toEqual({ status: 200, body: { errors: { reason: 'Too short' } } });
    const sent = JSON.parse(integration.calls[0]!.body) as Record<string, unknown>;
    expect(sent).toEqual({
      type: 'dialog_submission',
      callback_id: 'deny',
      state: 'job:7|deploy|mac',
      user_id: w.alice.user.id,
      channel_id: w.town.id,
      team_id: w.team.id,
      submission: { reason: 'no' },
      cancelled: false,
    });
  });

  it('refuses a submission for a channel or team the user cannot see, or without a url', async () => {
    const submit = (token: string, extra: Record<string, unknown>) =>
      rest(w.sandbox, token, 'POST', '/actions/dialogs/submit', {
        url: integration.url,
        channel_id: w.town.id,
        team_id: w.team.id,
        ...extra,
      });
    expect((await submit(w.outsider.token, {})).status).toBe(403);
    expect((await submit(w.bob.token, { channel_id: w.secret.id })).status).toBe(403);
    expect((await submit(w.alice.token, { team_id: '' })).status).toBe(403);
    const unknown = await submit(w.alice.token, { channel_id: 'a'.repeat(26) });
    expect(unknown.status).toBe(404);
    expect(errorId(unknown)).toBe('app.channel.get.existing.app_error');
    expect((await submit(w.alice.token, { url: '' })).status).toBe(400);
    expect((await submit(w.alice.token, { submission: ['x'] })).status).toBe(400);
    expect((await submit('', {})).status).toBe(401);
    expect(integration.calls).toEqual([]);
  });

  it('fails a submission the integration refuses; a body it cannot decode is an empty answer', async () => {
    const submit = () =>
      rest(w.sandbox, w.alice.token, 'POST', '/actions/dialogs/submit', {
        url: integration.url,
        channel_id: w.town.id,
        team_id: w.team.id,
      });
    reply = { status: 500 };
    const refused = await submit();
    expect(refused.status).toBe(400);
    expect(errorId(refused)).toBe('api.post.do_action.action_integration.app_error');
    reply = { body: 'not json' };
    expect(await submit()).toEqual({ status: 200, body: {} });
  });
});
