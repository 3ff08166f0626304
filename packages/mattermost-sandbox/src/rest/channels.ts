import { appError, permissionError } from '../app-error.js';
import type { SandboxApp } from '../app.js';
import { channelMemberJson } from '../serialize.js';
import type { Exchange } from './http.js';
import { requireChannelName, requireId, requireTeamName, route, type Route } from './route.js';

function getChannel(ex: Exchange, app: SandboxApp): void {
  const channel = app.channelOrNotFound(requireId(ex, 'channel_id'));
  if (!app.store.canReadChannel(ex.userId, channel)) throw permissionError();
  ex.sendJson(200, channel);
}

/** The caller needs read_channel (a channel member or an admin); a non-member target is a 404. */
function getChannelMember(ex: Exchange, app: SandboxApp): void {
  const channelId = requireId(ex, 'channel_id');
  const userId = requireId(ex, 'user_id');
  if (!app.store.hasChannelPermission(ex.userId, channelId)) throw permissionError();
  const member = app.store.members.get(channelId)?.get(userId);
  if (!member) throw appError('app.channel.get_member.missing.app_error', 404);
  ex.sendJson(200, channelMemberJson(channelId, userId, member.lastUpdateAt));
}

/**
 * api4 getChannelByNameForTeamName: an open channel needs read_public_channel on its team (any
 * team member) or read_channel; a private one the caller cannot read is reported as missing.
 */
function getChannelByNameForTeamName(ex: Exchange, app: SandboxApp): void {
  const teamName = requireTeamName(ex);
  const channelName = requireChannelName(ex);
  const team = app.store.teamByName(teamName);
  if (!team) throw appError('app.team.get_by_name.missing.app_error', 404);
  const includeDeleted = ex.query('include_deleted') === 'true';
  const channel = app.store.channelByName(team.id, channelName);
  if (!channel || (channel.delete_at !== 0 && !includeDeleted)) {
    throw appError('app.channel.get_by_name.missing.app_error', 404);
  }
  const teamOk = app.store.isTeamMember(team.id, ex.userId) || app.store.isSystemAdmin(ex.userId);
  const channelOk = app.store.hasChannelPermission(ex.userId, channel.id);
  if (channel.type === 'O') {
    if (!teamOk && !channelOk) throw permissionError();
  } else if (!channelOk) {
    throw appError('app.channel.get_by_name.missing.app_error', 404);
  }
  ex.sendJson(200, channel);
}

export const channelRoutes: Route[] = [
  route('GET', '/api/v4/teams/name/{team_name}/channels/name/{channel_name}', getChannelByNameForTeamName),
  route('GET', '/api/v4/channels/{channel_id}', getChannel),
  route('GET', '/api/v4/channels/{channel_id}/members/{user_id}', getChannelMember),
];
