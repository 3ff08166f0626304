import { appError } from '../app-error.js';
import type { SandboxApp } from '../app.js';
import { userJson } from '../serialize.js';
import type { GroupRecord } from '../store.js';
import type { MmGroup } from '../types.js';
import type { Exchange } from './http.js';
import { requireId, route, type Route } from './route.js';

export const serializeGroup = (record: GroupRecord): MmGroup => ({
  ...record.group,
  member_count: record.members.size,
});

function findGroup(ex: Exchange, app: SandboxApp): GroupRecord {
  const group = app.store.groups.get(requireId(ex, 'group_id'));
  if (!group) throw appError('app.group.no_rows', 404);
  return group;
}

function getGroup(ex: Exchange, app: SandboxApp): void {
  ex.sendJson(200, serializeGroup(findGroup(ex, app)));
}

/** GET /groups/{group_id}/members → `{members, total_member_count}`. */
function getGroupMembers(ex: Exchange, app: SandboxApp): void {
  const group = findGroup(ex, app);
  const { page, perPage } = ex.paging();
  const users = [...group.members]
    .map((id) => app.store.users.get(id))
    .filter((u) => u !== undefined)
    .sort((a, b) => (a.username < b.username ? -1 : 1));
  ex.sendJson(200, {
    members: users
      .slice(page * perPage, page * perPage + perPage)
      .map((u) => userJson(u, u.id === ex.userId)),
    total_member_count: users.length,
  });
}

export const groupRoutes: Route[] = [
  route('GET', '/api/v4/groups/{group_id}', getGroup),
  route('GET', '/api/v4/groups/{group_id}/members', getGroupMembers),
];
