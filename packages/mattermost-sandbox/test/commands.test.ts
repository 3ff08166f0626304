import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { executeCommand } from '../src/client-calls.js';
import type { MmCommand } from '../src/types.js';
import { events, Probe, rest, startIntegration, type IntegrationReply } from './helpers.js';
import { world, type World } from './world.js';

let w: World;
let reply: IntegrationReply;
let integration: Awaited<ReturnType<typeof startIntegration>>;
const probes: Probe[] = [];

beforeEach(async () => {
  w = await world();
  reply = {};
  integration = await startIntegration(() => reply);
});

afterEach(async () => {
  for (const p of probes.splice(0)) p.close();
  await integration.close();
  await w.sandbox.close();
});

const errorId = (r: { body: unknown }): unknown => (r.body as { id?: unknown }).id;
const json = (value: unknown): IntegrationReply => ({ body: JSON.stringify(value) });

function clawCommand(extra: Partial<Parameters<World['sandbox']['createCommand']>[0]> = {}): MmCommand {
  return w.sandbox.createCommand({
    creator_id: w.admin.user.id,
    team_id: w.team.id,
    trigger: 'claw',
    url: integration.url,
    ...extra,
  });
}

describe('POST /commands', () => {
  it('lets a system admin create a command, lower-casing the trigger and generating a token', async () => {
    const r = await rest(w.sandbox, w.admin.token, 'POST', '/commands', {
      team_id: w.team.id,
      trigger: 'Claw',
      method: 'P',
      url: integration.url,
      display_name: 'Claw',
    });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      id: expect.stringMatching(/^[a-z0-9]{26}$/),
      token: expect.stringMatching(/^[a-z0-9]{26}$/),
      creator_id: w.admin.user.id,
      team_id: w.team.id,
      trigger: 'claw',
      method: 'P',
      url: integration.url,
      delete_at: 0,
    });
  });

  it('refuses non-admins, repeated or built-in triggers and invalid fields', async () => {
    const base = { team_id: w.team.id, trigger: 'claw', method: 'P', url: integration.url };
    expect((await rest(w.sandbox, w.alice.token, 'POST', '/commands', base)).status).toBe(403);
    expect((await rest(w.sandbox, w.admin.token, 'POST', '/commands', base)).status).toBe(201);
    const cases: [Record<string, unknown>, string][] = [
      [base, 'api.command.duplicate_trigger.app_error'],
      [{ ...base, trigger: 'echo' }, 'api.command.duplicate_trigger.app_error'],
      [{ ...base, trigger: '/x' }, 'model.command.is_valid.trigger.app_error'],
      [{ ...base, trigger: 'a b' }, 'model.command.is_valid.trigger.app_error'],
      [{ ...base, trigger: 'x', url: 'ftp://host/x' }, 'model.command.is_valid.url_http.app_error'],
      [{ ...base, trigger: 'x', method: 'X' }, 'model.command.is_valid.method.app_error'],
      [{ ...base, trigger: 'x', team_id: 'nope' }, 'model.command.is_valid.team_id.app_error'],
      [{ ...base, trigger: 'x', token: 'short' }, 'model.command.is_valid.token.app_error'],
      [{ ...base, trigger: 5 }, 'api.context.invalid_param.app_error'],
    ];
    for (const [body, id] of cases) {
      const r = await rest(w.sandbox, w.admin.token, 'POST', '/commands', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(errorId(r), JSON.stringify(body)).toBe(id);
    }
  });
});

describe('POST /commands/execute', () => {
  it('POSTs the form Mattermost sends, with the command token, and shows an ephemeral answer', async () => {
    const cmd = clawCommand();
    const alice = await Probe.open(w.sandbox, { token: w.alice.token });
    probes.push(alice);
    await alice.next();
    reply = json({ response_type: 'ephemeral', text: 'job:7 is <http://x.test/7|pending>' });
    const r = await executeCommand(w.sandbox, w.alice.token, {
      channel_id: w.town.id,
      command: '/CLAW status  job:7',
      team_id: 'ignored for a team channel',
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      response_type: 'ephemeral',
      text: 'job:7 is <http://x.test/7|pending>',
      trigger_id: expect.stringMatching(/^[a-z0-9]{26}$/),
    });
    const call = integration.calls[0]!;
    expect(call.method).toBe('POST');
    expect(call.headers.authorization).toBe(`Token ${cmd.token}`);
    expect(call.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(call.headers.accept).toBe('application/json');
    const form = new URLSearchParams(call.body);
    expect([...form.keys()]).toEqual([
      'channel_id',
      'channel_name',
      'command',
      'response_url',
      'team_domain',
      'team_id',
      'text',
      'token',
      'trigger_id',
      'user_id',
      'user_name',
    ]);
    expect(Object.fromEntries(form)).toMatchObject({
      channel_id: w.town.id,
      channel_name: 'town-square',
      command: '/claw',
      team_domain: 'ops',
      team_id: w.team.id,
      text: 'status  job:7',
      token: cmd.token,
      user_id: w.alice.user.id,
      user_name: 'alice',
    });
    expect(form.get('response_url')).toMatch(new RegExp(`^${w.sandbox.url}/hooks/commands/[a-z0-9]{26}$`));
    const [frame] = events(await alice.drain(), 'ephemeral_message');
    expect(JSON.parse(frame!.data!.post as string)).toMatchObject({
      user_id: w.alice.user.id,
      channel_id: w.town.id,
      message: 'job:7 is [pending](http://x.test/7)',
      props: { from_webhook: 'true' },
    });
    expect(w.sandbox.postsIn(w.town.id)).toEqual([]);
  });

  it('posts an in_channel answer as the caller, marked from_webhook, in the thread asked for', async () => {
    clawCommand({ username: 'claw' });
    const root = w.sandbox.createPost(w.alice.user.id, { channel_id: w.town.id, message: 'thread' });
    reply = json({ response_type: 'in_channel', text: 'Started job:8' });
    const r = await executeCommand(w.sandbox, w.alice.token, {
      channel_id: w.town.id,
      command: '/claw run deploy',
      root_id: root.id,
    });
    expect(r.status).toBe(200);
    const [, answer] = w.sandbox.thread(root.id);
    expect(answer).toMatchObject({
      user_id: w.alice.user.id,
      root_id: root.id,
      message: 'Started job:8',
      props: { from_webhook: 'true', override_username: 'claw' },
    });
  });

  it('treats a non-JSON answer as plain text, sends GET commands as a query, and lists mentions', async () => {
    clawCommand({ method: 'G', url: `${integration.url}?fixed=1` });
    reply = { body: 'plain answer', contentType: 'text/plain' };
    const r = await executeCommand(w.sandbox, w.alice.token, {
      channel_id: w.town.id,
      command: '/claw ping @Bob. @nobody ~town-square',
    });
    expect(r.body).toMatchObject({ text: 'plain answer' });
    const call = integration.calls[0]!;
    expect(call.method).toBe('GET');
    expect(call.body).toBe('');
    const query = new URL(call.url, 'http://x').searchParams;
    expect(query.get('fixed')).toBe('1');
    expect(query.getAll('user_mentions')).toEqual(['bob']);
    expect(query.getAll('user_mentions_ids')).toEqual([w.bob.user.id]);
    expect(query.getAll('channel_mentions')).toEqual(['town-square']);
    expect(query.getAll('channel_mentions_ids')).toEqual([w.town.id]);
    expect(w.sandbox.ephemeralPostsFor(w.alice.user.id).map((p) => p.message)).toEqual(['plain answer']);
  });

  it('sends a trigger id that opens a dialog for the caller (GenerateTriggerId)', async () => {
    clawCommand();
    await executeCommand(w.sandbox, w.alice.token, { channel_id: w.town.id, command: '/claw deny job:7' });
    const triggerId = new URLSearchParams(integration.calls[0]!.body).get('trigger_id');
    const opened = await rest(w.sandbox, '', 'POST', '/actions/dialogs/open', {
      trigger_id: triggerId,
      url: integration.url,
      dialog: { callback_id: 'deny', title: 'Deny', state: 's' },
    });
    expect(opened.status).toBe(200);
    expect(w.sandbox.openedDialogs(w.alice.user.id)).toHaveLength(1);
  });

  it('answers an unknown trigger with not_found, and malformed commands with start', async () => {
    clawCommand();
    const unknown = await executeCommand(w.sandbox, w.alice.token, {
      channel_id: w.town.id,
      command: '/nope x',
    });
    expect(unknown.status).toBe(404);
    expect(errorId(unknown)).toBe('api.command.execute_command.not_found.app_error');
    for (const args of [
      { channel_id: w.town.id, command: '/' },
      { channel_id: w.town.id, command: 'claw status' },
      { channel_id: 'town', command: '/claw status' },
    ]) {
      const r = await executeCommand(w.sandbox, w.alice.token, args);
      expect(r.status, JSON.stringify(args)).toBe(400);
      expect(errorId(r)).toBe('api.command.execute_command.start.app_error');
    }
    expect(integration.calls).toEqual([]);
  });

  it('refuses a caller outside the channel, and a command of another team', async () => {
    clawCommand();
    const outsider = await executeCommand(w.sandbox, w.outsider.token, {
      channel_id: w.town.id,
      command: '/claw x',
    });
    expect(outsider.status).toBe(403);
    const other = w.sandbox.createTeam({ name: 'other' });
    w.sandbox.createCommand({
      creator_id: w.admin.user.id,
      team_id: other.id,
      trigger: 'elsewhere',
      url: integration.url,
    });
    const cross = await executeCommand(w.sandbox, w.alice.token, {
      channel_id: w.town.id,
      command: '/elsewhere x',
      team_id: other.id,
    });
    expect(cross.status).toBe(404);
    expect(integration.calls).toEqual([]);
  });

  it('fails with Mattermost’s 500s when the integration errs, is unreachable or answers bad JSON', async () => {
    clawCommand();
    const run = () => executeCommand(w.sandbox, w.alice.token, { channel_id: w.town.id, command: '/claw x' });
    reply = { status: 401, body: 'wrong token' };
    const refused = await run();
    expect(refused.status).toBe(500);
    expect(errorId(refused)).toBe('api.command.execute_command.failed_resp.app_error');
    reply = { body: '{broken' };
    expect(errorId(await run())).toBe('api.command.execute_command.failed.app_error');
    reply = json({ text: 'x', channel_id: w.secret.id });
    const forbidden = await executeCommand(w.sandbox, w.bob.token, {
      channel_id: w.town.id,
      command: '/claw x',
    });
    expect(forbidden.status).toBe(500);
    expect(errorId(forbidden)).toBe('api.command.execute_command.create_post_failed.app_error');
    await integration.close();
    expect(errorId(await run())).toBe('api.command.execute_command.failed.app_error');
    integration = await startIntegration(() => reply);
    expect(w.sandbox.ephemeralPostsFor(w.alice.user.id)).toEqual([]);
    expect(w.sandbox.ephemeralPostsFor(w.bob.user.id)).toEqual([]);
  });
});
