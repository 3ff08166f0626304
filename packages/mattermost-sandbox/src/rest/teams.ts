import { appError, permissionError } from '../app-error.js';
import type { SandboxApp } from '../app.js';
import type { MmTeam, MmTeamMember } from '../types.js';
import type { Exchange } from './http.js';
import { requireId, requireTeamName, route, type Route } from './route.js';

/** SessionHasPermissionToTeam(view_team): team members and system admins. */
const canViewTeam = (app: SandboxApp, teamId: string, userId: string): boolean =>
  app.store.isTeamMember(teamId, userId) || app.store.isSystemAdmin(userId);

/** api4 getTeam / getTeamByName: an open, invitable team is visible to anyone signed in. */
function sendTeam(ex: Exchange, app: SandboxApp, team: MmTeam): void {
  const open = team.type === 'O' && team.allow_open_invite;
  if (!open && !canViewTeam(app, team.id, ex.userId)) throw permissionError();
  ex.sendJson(200, team);
}

function getTeam(ex: Exchange, app: SandboxApp): void {
  const team = app.store.teams.get(requireId(ex, 'team_id'));
  if (!team) throw appError('app.team.get.find.app_error', 404);
  sendTeam(ex, app, team);
}

/** api4 getTeamByName → App.GetTeamByName. */
function getTeamByName(ex: Exchange, app: SandboxApp): void {
  const team = app.store.teamByName(requireTeamName(ex));
  if (!team) throw appError('app.team.get_by_name.missing.app_error', 404);
  sendTeam(ex, app, team);
}

/** api4 getTeamsForUser: yourself, or with manage_system. */
function getTeamsForUser(ex: Exchange, app: SandboxApp): void {
  const userId = requireId(ex, 'user_id');
  if (userId !== ex.userId && !app.store.isSystemAdmin(ex.userId)) throw permissionError();
  const teams = [...app.store.teams.values()].filter(
    (t) => t.delete_at === 0 && app.store.isTeamMember(t.id, userId),
  );
  ex.sendJson(200, teams);
}

/** api4 getTeamMember: the caller needs view_team; a non-member is a 404. */
function getTeamMember(ex: Exchange, app: SandboxApp): void {
  const teamId = requireId(ex, 'team_id');
  const userId = requireId(ex, 'user_id');
  if (!canViewTeam(app, teamId, ex.userId)) throw permissionError();
  const joinedAt = app.store.teamMembers.get(teamId)?.get(userId);
  if (joinedAt === undefined) throw appError('app.team.get_member.missing.app_error', 404);
  const member: MmTeamMember = {
    team_id: teamId,
    user_id: userId,
    roles: 'team_user',
    delete_at: 0,
    scheme_guest: false,
    scheme_user: true,
    scheme_admin: false,
    explicit_roles: '',
    create_at: joinedAt,
  };
  ex.sendJson(200, member);
}

export const teamRoutes: Route[] = [
  route('GET', '/api/v4/teams/{team_id}', getTeam),
  route('GET', '/api/v4/teams/name/{team_name}', getTeamByName),
  route('GET', '/api/v4/teams/{team_id}/members/{user_id}', getTeamMember),
  route('GET', '/api/v4/users/{user_id}/teams', getTeamsForUser),
];
