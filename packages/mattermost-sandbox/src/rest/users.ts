import { appError, invalidParam, permissionError } from '../app-error.js';
import { requireLicense, serializeGroup } from './groups.js';
import type { Exchange } from './http.js';
import { requireId, requireUsername, route, type Route } from './route.js';
import { userJson } from '../serialize.js';
import type { SandboxApp } from '../app.js';

function getUser(ex: Exchange, app: SandboxApp): void {
  const id = requireId(ex, 'user_id');
  const user = app.store.users.get(id);
  if (!user) throw appError('app.user.missing_account.const', 404);
  ex.sendJson(200, userJson(user, id === ex.userId));
}

function getUserByUsername(ex: Exchange, app: SandboxApp): void {
  const user = app.store.userByUsername(requireUsername(ex));
  if (!user) throw appError('app.user.get_by_username.app_error', 404);
  ex.sendJson(200, userJson(user, user.id === ex.userId));
}

/**
 * api4 getUsersByNames: a JSON array of usernames (model.SortedArrayFromJSON); unknown names are
 * left out of the answer, never reported.
 */
async function getUsersByNames(ex: Exchange, app: SandboxApp): Promise<void> {
  let names: unknown;
  try {
    names = JSON.parse(await ex.rawBody());
  } catch (err) {
    throw Object.assign(appError('api.payload.parse.error', 400), { cause: err });
  }
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) {
    throw appError('api.payload.parse.error', 400);
  }
  if (names.length === 0) throw invalidParam('usernames');
  const wanted = [...new Set(names as string[])].sort();
  const users = wanted
    .map((name) => app.store.userByUsername(name))
    .filter((u) => u !== undefined)
    .map((u) => userJson(u, u.id === ex.userId));
  ex.sendJson(200, users);
}

/** GET /users: only the `in_group` filter is modelled; profiles are sorted by username. */
function getUsers(ex: Exchange, app: SandboxApp): void {
  const { page, perPage } = ex.paging();
  let users = [...app.store.users.values()];
  const inGroup = ex.query('in_group');
  if (inGroup !== '') {
    const group = app.store.groups.get(inGroup);
    users = group ? users.filter((u) => group.members.has(u.id)) : [];
  }
  users.sort((a, b) => (a.username < b.username ? -1 : a.username > b.username ? 1 : 0));
  ex.sendJson(
    200,
    users.slice(page * perPage, page * perPage + perPage).map((u) => userJson(u, u.id === ex.userId)),
  );
}

/** GET /users/{user_id}/groups: yourself, or with manage_system. */
function getGroupsForUser(ex: Exchange, app: SandboxApp): void {
  requireLicense(app);
  const id = requireId(ex, 'user_id');
  if (id !== ex.userId && !app.store.isSystemAdmin(ex.userId)) throw permissionError();
  const groups = [...app.store.groups.values()]
    .filter((g) => g.members.has(id))
    .map((g) => serializeGroup(g));
  ex.sendJson(200, groups);
}

/** PUT /users/{user_id}/active: yourself, or with manage_system (api4 updateUserActive). */
async function updateUserActive(ex: Exchange, app: SandboxApp): Promise<void> {
  const id = requireId(ex, 'user_id');
  const body = await ex.json('active');
  const active =
    typeof body === 'object' && body !== null ? (body as Record<string, unknown>).active : undefined;
  if (typeof active !== 'boolean') throw invalidParam('active');
  if (id !== ex.userId && !app.store.isSystemAdmin(ex.userId)) throw permissionError();
  if (!app.store.users.has(id)) throw appError('app.user.missing_account.const', 404);
  app.members.setUserActive(id, active);
  ex.sendJson(200, { status: 'OK' });
}

export const userRoutes: Route[] = [
  route('GET', '/api/v4/users', getUsers),
  route('GET', '/api/v4/users/username/{username}', getUserByUsername),
  route('POST', '/api/v4/users/usernames', getUsersByNames),
  route('GET', '/api/v4/users/{user_id}', getUser),
  route('GET', '/api/v4/users/{user_id}/groups', getGroupsForUser),
  route('PUT', '/api/v4/users/{user_id}/active', updateUserActive),
];
