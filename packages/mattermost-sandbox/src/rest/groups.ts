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

/** model.Group with `member_count` (a pointer, omitempty) only when it was asked for. */
const groupWithoutCount = (record: GroupRecord): Omit<MmGroup, 'member_count'> => {
  const { member_count: _count, ...rest } = record.group;
  return rest;
};

/**
 * api4 requireLicense: every groups route first needs a licence; a server without one (Team
 * Edition, or an expired licence) answers 501 before looking at anything else.
 */
export function requireLicense(app: SandboxApp): void {
  if (!app.config.licensed) throw appError('api.license_error', 501);
}

function findGroup(ex: Exchange, app: SandboxApp): GroupRecord {
  const group = app.store.groups.get(requireId(ex, 'group_id'));
  if (!group) throw appError('app.group.no_rows', 404);
  return group;
}

/** `member_count` is a pointer in model.Group, filled only for `include_member_count=true`. */
const groupJson = (ex: Exchange, record: GroupRecord): MmGroup | Omit<MmGroup, 'member_count'> =>
  ex.query('include_member_count') === 'true' ? serializeGroup(record) : groupWithoutCount(record);

function getGroup(ex: Exchange, app: SandboxApp): void {
  requireLicense(app);
  ex.sendJson(200, groupJson(ex, findGroup(ex, app)));
}

/**
 * api4 getGroups → store GetGroups: live groups whose name or display name contains `q`
 * (case-insensitive, `%` and `_` taken literally), ordered by display name, paged.
 */
function getGroups(ex: Exchange, app: SandboxApp): void {
  requireLicense(app);
  const { page, perPage } = ex.paging();
  const q = ex.query('q').toLowerCase();
  const groups = [...app.store.groups.values()]
    .filter((g) => g.group.delete_at === 0)
    .filter(
      (g) =>
        q === '' || g.group.name.toLowerCase().includes(q) || g.group.display_name.toLowerCase().includes(q),
    )
    .sort((a, b) => (a.group.display_name < b.group.display_name ? -1 : 1))
    .slice(page * perPage, page * perPage + perPage);
  ex.sendJson(
    200,
    groups.map((g) => groupJson(ex, g)),
  );
}

/** GET /groups/{group_id}/members → `{members, total_member_count}`. */
function getGroupMembers(ex: Exchange, app: SandboxApp): void {
  requireLicense(app);
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
  route('GET', '/api/v4/groups', getGroups),
  route('GET', '/api/v4/groups/{group_id}', getGroup),
  route('GET', '/api/v4/groups/{group_id}/members', getGroupMembers),
];
