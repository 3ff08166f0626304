import { AppError, appError, invalidParam, permissionError } from './app-error.js';
import type { SandboxApp } from './app.js';
import { isValidId, newId } from './ids.js';
import { parseSlackLinks, sendOutgoing, Unreachable } from './outgoing.js';
import type { MmCommand } from './types.js';

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

/** app.MaxIntegrationResponseSize: what is read of a slash command's answer. */
const MAX_INTEGRATION_RESPONSE_SIZE = 1024 * 1024;
/** app/command.go maxTriggerLen: a longer unknown trigger is cut in the error. */
const MAX_TRIGGER_LEN = 512;

/**
 * Triggers of Mattermost's built-in commands (app/slashcommands): a custom command may not take
 * one. The sandbox does not run them; executing one is "not found".
 */
const BUILT_IN_TRIGGERS = [
  'away',
  'code',
  'collapse',
  'dnd',
  'echo',
  'expand',
  'groupmsg',
  'header',
  'help',
  'invite',
  'invite_people',
  'join',
  'kick',
  'leave',
  'logout',
  'me',
  'msg',
  'mute',
  'offline',
  'online',
  'open',
  'purpose',
  'remove',
  'rename',
  'search',
  'settings',
  'shortcuts',
  'shrug',
  'status',
];

function field(
  raw: Record<string, unknown>,
  key: string,
  kind: 'string' | 'bool',
  param: string,
): string | boolean {
  const value = raw[key];
  if (value === undefined || value === null) return kind === 'string' ? '' : false;
  if (typeof value !== (kind === 'string' ? 'string' : 'boolean')) throw invalidParam(param);
  return value as string | boolean;
}

/** model.IsValidHTTPURL. */
function isValidHttpUrl(url: string): boolean {
  if (!url.startsWith('http://') && !url.startsWith('https://')) return false;
  try {
    return new URL(url).host !== '';
  } catch {
    return false;
  }
}

const invalidCommand = (what: string) => appError(`model.command.is_valid.${what}.app_error`, 400);

/** model.Command.IsValid (after PreSave), in its order. */
function checkCommand(cmd: MmCommand): void {
  if (cmd.token.length !== 26) throw invalidCommand('token');
  if (!isValidId(cmd.team_id)) throw invalidCommand('team_id');
  if (
    cmd.trigger.length < 1 ||
    cmd.trigger.length > 128 ||
    cmd.trigger.startsWith('/') ||
    cmd.trigger.includes(' ')
  ) {
    throw invalidCommand('trigger');
  }
  if (cmd.url === '' || cmd.url.length > 1024) throw invalidCommand('url');
  if (!isValidHttpUrl(cmd.url)) throw invalidCommand('url_http');
  if (cmd.method !== 'P' && cmd.method !== 'G') throw invalidCommand('method');
  if (cmd.display_name.length > 64) throw invalidCommand('display_name');
  if (cmd.description.length > 128) throw invalidCommand('description');
}

/**
 * api4 createCommand → App.CreateCommand → store Command.Save. The caller needs
 * manage_slash_commands on the team (system admins here: EnableOnlyAdminIntegrations' default);
 * the trigger is lower-cased and must not repeat a team command or a built-in one; a token is
 * generated unless the body brings a 26-character one (Command.PreSave keeps a given token).
 */
export function createCommand(app: SandboxApp, userId: string, body: unknown): MmCommand {
  if (!isRecord(body)) throw invalidParam('command');
  field(body, 'team_id', 'string', 'command');
  if (!app.store.isSystemAdmin(userId)) throw permissionError();
  return saveCommand(app, userId, body);
}

/** App.createCommand and store Command.Save (PreSave, IsValid): the part after the permission check. */
export function saveCommand(app: SandboxApp, creatorId: string, body: Record<string, unknown>): MmCommand {
  const s = (key: string) => field(body, key, 'string', 'command') as string;
  const teamId = s('team_id');
  if (s('id') !== '') throw appError('app.command.createcommand.internal_error', 500);
  const now = app.store.now();
  const cmd: MmCommand = {
    id: newId(),
    token: s('token') || newId(),
    create_at: now,
    update_at: now,
    delete_at: 0,
    creator_id: creatorId,
    team_id: teamId,
    trigger: s('trigger').toLowerCase(),
    method: s('method'),
    username: s('username'),
    icon_url: s('icon_url'),
    auto_complete: field(body, 'auto_complete', 'bool', 'command') as boolean,
    auto_complete_desc: s('auto_complete_desc'),
    auto_complete_hint: s('auto_complete_hint'),
    display_name: s('display_name'),
    description: s('description'),
    url: s('url'),
    plugin_id: '',
  };
  const taken = [...app.store.commands.values()].some(
    (c) => c.team_id === cmd.team_id && c.delete_at === 0 && c.trigger === cmd.trigger,
  );
  if (taken || BUILT_IN_TRIGGERS.includes(cmd.trigger))
    throw appError('api.command.duplicate_trigger.app_error', 400);
  checkCommand(cmd);
  app.store.commands.set(cmd.id, cmd);
  return { ...cmd };
}

/** model.CommandResponse as decoded from the integration (the fields the server acts on). */
interface CommandResponse {
  response_type: string;
  text: string;
  username: string;
  channel_id: string;
  icon_url: string;
  type: string;
  props: Record<string, unknown> | null;
  goto_location: string;
  trigger_id: string;
  skip_slack_parsing: boolean;
  attachments: unknown[] | null;
  extra_responses: CommandResponse[] | null;
}

const emptyResponse = (text = ''): CommandResponse => ({
  response_type: '',
  text,
  username: '',
  channel_id: '',
  icon_url: '',
  type: '',
  props: null,
  goto_location: '',
  trigger_id: '',
  skip_slack_parsing: false,
  attachments: null,
  extra_responses: null,
});

class ResponseDecodeError extends Error {}

function decodeResponse(raw: unknown): CommandResponse {
  if (raw === null) return emptyResponse();
  if (!isRecord(raw)) throw new ResponseDecodeError();
  const out = emptyResponse();
  for (const key of [
    'response_type',
    'text',
    'username',
    'channel_id',
    'icon_url',
    'type',
    'goto_location',
    'trigger_id',
  ] as const) {
    const value = raw[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string') throw new ResponseDecodeError();
    out[key] = value;
  }
  if (raw.skip_slack_parsing !== undefined && raw.skip_slack_parsing !== null) {
    if (typeof raw.skip_slack_parsing !== 'boolean') throw new ResponseDecodeError();
    out.skip_slack_parsing = raw.skip_slack_parsing;
  }
  if (raw.props !== undefined && raw.props !== null) {
    if (!isRecord(raw.props)) throw new ResponseDecodeError();
    out.props = raw.props;
  }
  if (raw.attachments !== undefined && raw.attachments !== null) {
    if (!Array.isArray(raw.attachments)) throw new ResponseDecodeError();
    out.attachments = raw.attachments;
  }
  if (raw.extra_responses !== undefined && raw.extra_responses !== null) {
    if (!Array.isArray(raw.extra_responses)) throw new ResponseDecodeError();
    out.extra_responses = raw.extra_responses.map(decodeResponse);
  }
  return out;
}

/** model.CommandResponseFromHTTPBody: JSON when the Content-Type says so, else the body is the text. */
function responseFromBody(contentType: string, body: string): CommandResponse {
  if ((contentType.split(';')[0] ?? '').trim() !== 'application/json') return emptyResponse(body);
  return decodeResponse(JSON.parse(body) as unknown);
}

export interface CommandArgs {
  channel_id: string;
  team_id: string;
  root_id: string;
  command: string;
}

/** `\B@…` at-mentions (app/command.go possibleAtMentions), lower-cased and unique. */
function possibleAtMentions(message: string): string[] {
  const names = new Set<string>();
  for (const match of message.matchAll(/(?<![\p{L}\p{N}_])@([\p{L}\p{N}][\p{L}\p{N}.\-_:]*)/gu)) {
    names.add(match[1]!.toLowerCase());
  }
  return [...names];
}

/**
 * App.MentionsToTeamMembers / MentionsToPublicChannels as url.Values: `user_mentions` with
 * `user_mentions_ids`, `channel_mentions` with `channel_mentions_ids`, only when there are any.
 */
function mentionParams(app: SandboxApp, message: string, teamId: string, params: URLSearchParams): void {
  const users: [string, string][] = [];
  for (const mention of possibleAtMentions(message)) {
    // A name ending in `.`, `-` or `_` is tried again without it (trimUsernameSpecialChar).
    for (let name = mention; name !== ''; name = /[.\-_]$/.test(name) ? name.slice(0, -1) : '') {
      const user = app.store.userByUsername(name);
      if (user) {
        if (app.store.isTeamMember(teamId, user.id)) users.push([name, user.id]);
        break;
      }
    }
  }
  const channels: [string, string][] = [];
  for (const match of new Set(
    [...message.matchAll(/(?<![\p{L}\p{N}_])~([a-zA-Z0-9\-_]+)/gu)].map((m) => m[1]!),
  )) {
    const channel = app.store.channelByName(teamId, match);
    if (channel && channel.type === 'O') channels.push([match, channel.id]);
  }
  for (const [key, list] of [
    ['user_mentions', users],
    ['channel_mentions', channels],
  ] as const) {
    for (const [name] of list) params.append(key, name);
    for (const [, id] of list) params.append(`${key}_ids`, id);
  }
}

/**
 * api4 executeCommand → App.ExecuteCommand → tryExecuteCustomCommand → DoCommandRequest →
 * HandleCommandResponse. The command must start with `/` and name a valid channel id (else 400
 * `execute_command.start`); the caller needs use_slash_commands in that channel (a member, or a
 * system admin). For a team channel the team is the channel's, whatever the body says. An unknown
 * trigger is 404 `execute_command.not_found`. The server sends what tryExecuteCustomCommand sets
 * (token, team_id, team_domain, channel_id, channel_name, user_id, user_name, command, text,
 * trigger_id, response_url, mention lists) form-encoded for POST or as the query for GET, with
 * `Authorization: Token <token>`; anything but 200 is a 500 `failed_resp`, no answer at all a 500
 * `failed`. The answer (JSON or plain text) becomes an ephemeral post to the caller
 * (`ephemeral` or no type, when there is text or attachments) or a post in the channel by the
 * caller marked `from_webhook` (`in_channel`), then is returned with the client trigger id.
 * `response_url` is sent but the sandbox does not serve `/hooks/commands/…`.
 */
export async function executeCommand(
  app: SandboxApp,
  userId: string,
  body: unknown,
): Promise<CommandResponse> {
  const { store } = app;
  if (!isRecord(body)) throw invalidParam('command_args');
  const args: CommandArgs = {
    channel_id: field(body, 'channel_id', 'string', 'command_args') as string,
    team_id: field(body, 'team_id', 'string', 'command_args') as string,
    root_id: field(body, 'root_id', 'string', 'command_args') as string,
    command: field(body, 'command', 'string', 'command_args') as string,
  };
  if ([...args.command].length <= 1 || !args.command.startsWith('/') || !isValidId(args.channel_id)) {
    throw appError('api.command.execute_command.start.app_error', 400);
  }
  if (!store.hasChannelPermission(userId, args.channel_id)) throw permissionError();
  const channel = app.channelOrNotFound(args.channel_id);
  if (channel.type !== 'D' && channel.type !== 'G') args.team_id = channel.team_id;
  else if (!store.isTeamMember(args.team_id, userId) && !store.isSystemAdmin(userId)) throw permissionError();

  const space = args.command.search(/\s/u);
  let trigger = (space === -1 ? args.command : args.command.slice(0, space)).toLowerCase().slice(1);
  const message = space === -1 ? '' : args.command.slice(space + 1);
  const { clientTriggerId, triggerId } = app.triggers.generate(userId);

  const cmd = [...store.commands.values()].find(
    (c) => c.team_id === args.team_id && c.delete_at === 0 && c.trigger === trigger,
  );
  if (!cmd) {
    if (trigger.length > MAX_TRIGGER_LEN) trigger = `${trigger.slice(0, MAX_TRIGGER_LEN)}...`;
    throw appError('api.command.execute_command.not_found.app_error', 404, { Trigger: trigger });
  }
  const team = store.teams.get(args.team_id);
  if (!team) throw appError('app.team.get.find.app_error', 404);
  const user = store.users.get(userId);
  if (!user) throw appError('app.user.missing_account.const', 404);

  const params = new URLSearchParams();
  params.set('token', cmd.token);
  params.set('team_id', cmd.team_id);
  params.set('team_domain', team.name);
  params.set('channel_id', args.channel_id);
  params.set('channel_name', channel.name);
  params.set('user_id', userId);
  params.set('user_name', user.username);
  params.set('command', `/${trigger}`);
  params.set('text', message);
  params.set('trigger_id', triggerId);
  mentionParams(app, message, team.id, params);
  params.set('response_url', `${app.config.siteUrl()}/hooks/commands/${newId()}`);
  // url.Values.Encode sorts by key.
  params.sort();

  const failed = () =>
    appError('api.command.execute_command.failed.app_error', 500, { Trigger: cmd.trigger });
  let answer;
  try {
    answer = await sendOutgoing(
      cmd.method === 'G'
        ? {
            method: 'GET',
            url: `${cmd.url}${cmd.url.includes('?') ? '&' : '?'}${params.toString()}`,
            headers: { Accept: 'application/json', Authorization: `Token ${cmd.token}` },
          }
        : {
            method: 'POST',
            url: cmd.url,
            headers: {
              Accept: 'application/json',
              Authorization: `Token ${cmd.token}`,
              'Content-Type': 'application/x-www-form-urlencoded',
            },
            body: params.toString(),
          },
      app.config.outgoingTimeoutMs,
    );
  } catch (err) {
    if (err instanceof Unreachable) throw Object.assign(failed(), { cause: err });
    throw err;
  }
  if (answer.status !== 200) {
    throw appError('api.command.execute_command.failed_resp.app_error', 500, {
      Trigger: cmd.trigger,
      Status: `${answer.status}`,
    });
  }
  let response: CommandResponse;
  try {
    response = responseFromBody(answer.contentType, answer.body.slice(0, MAX_INTEGRATION_RESPONSE_SIZE));
  } catch (err) {
    throw Object.assign(failed(), { cause: err });
  }
  response.trigger_id = clientTriggerId;
  handleCommandResponse(app, cmd, args, userId, trigger, response);
  return response;
}

/** App.HandleCommandResponse: the response and its extra responses, the last failure reported. */
function handleCommandResponse(
  app: SandboxApp,
  cmd: MmCommand,
  args: CommandArgs,
  userId: string,
  trigger: string,
  response: CommandResponse,
): void {
  let failed = false;
  for (const each of [response, ...(response.extra_responses ?? [])]) {
    try {
      handleCommandResponsePost(app, cmd, args, userId, each);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      failed = true;
    }
  }
  if (failed)
    throw appError('api.command.execute_command.create_post_failed.app_error', 500, { Trigger: trigger });
}

/** App.HandleCommandResponsePost → App.CreateCommandPost, for a custom command (a "bot post"). */
function handleCommandResponsePost(
  app: SandboxApp,
  cmd: MmCommand,
  args: CommandArgs,
  userId: string,
  response: CommandResponse,
): void {
  let channelId = args.channel_id;
  if (response.channel_id !== '') {
    if (!app.store.isMember(response.channel_id, userId)) {
      throw appError('api.command.command_post.forbidden.app_error', 403);
    }
    channelId = response.channel_id;
  }
  const props: Record<string, unknown> = { ...(response.props ?? {}) };
  if (app.config.enablePostUsernameOverride) {
    if (cmd.username !== '') props.override_username = cmd.username;
    else if (response.username !== '') props.override_username = response.username;
  }
  if (app.config.enablePostIconOverride) {
    props.override_icon_url = cmd.icon_url !== '' ? cmd.icon_url : response.icon_url;
  }
  props.from_webhook = 'true';
  const message = response.skip_slack_parsing ? response.text : parseSlackLinks(response.text);
  let type = response.type;
  if (type.startsWith('system_')) throw invalidParam('post.type');
  if (response.attachments !== null) {
    // model.ParseSlackAttachment: the post becomes a slack_attachment post carrying them.
    if (type === '') type = 'slack_attachment';
    props.attachments = response.attachments;
  }
  if (response.response_type === 'in_channel') {
    const channel = app.channelOrNotFound(channelId);
    app.createPost(
      userId,
      channel,
      { channel_id: channelId, message, ...(args.root_id ? { root_id: args.root_id } : {}), props, type },
      { setOnline: true },
    );
    return;
  }
  if (
    (response.response_type === '' || response.response_type === 'ephemeral') &&
    (response.text !== '' || response.attachments !== null)
  ) {
    app.sendEphemeralPost(userId, { userId, channelId, rootId: args.root_id, message, props });
  }
}
