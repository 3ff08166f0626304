import { appError, permissionError } from '../app-error.js';
import type { SandboxApp } from '../app.js';
import { channelMemberJson } from '../serialize.js';
import type { Exchange } from './http.js';
import { requireId, route, type Route } from './route.js';

function getTeam(ex: Exchange, app: SandboxApp): void {
  const team = app.store.teams.get(requireId(ex, 'team_id'));
  if (!team) throw appError('app.team.get.find.app_error', 404);
  const open = team.type === 'O' && team.allow_open_invite;
  if (!open && !app.store.isTeamMember(team.id, ex.userId) && !app.store.isSystemAdmin(ex.userId)) {
    throw permissionError();
  }
  ex.sendJson(200, team);
}

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

export const channelRoutes: Route[] = [
  route('GET', '/api/v4/teams/{team_id}', getTeam),
  route('GET', '/api/v4/channels/{channel_id}', getChannel),
  route('GET', '/api/v4/channels/{channel_id}/members/{user_id}', getChannelMember),
];
