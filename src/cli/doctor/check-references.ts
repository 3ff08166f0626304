import { type NameRef, parseRef, type RefKind } from '../../policy/mattermost-refs.js';
import type { NameStatus, NameTable } from '../../policy/resolve-names.js';
import type { GroupsFile } from '../../policy/types.js';
import { pointerToPath } from '../../policy/validate-policy.js';
import { channelMembership, type MattermostSession } from './check-mattermost.js';
import { type Finding, note, ok, problem } from './findings.js';

/** What to do about a name, by what it names and what went wrong. */
function nameFix(kind: RefKind, status: NameStatus): string {
  if (status === 'refused') return 'name an active person, team or channel instead, or remove it';
  if (status === 'ambiguous') return 'write the group by its 26-character id';
  switch (kind) {
    case 'user':
      return 'check the @username (Mattermost: Profile → Username), or write the user id';
    case 'group':
      return 'check the @group-name (Mattermost: User groups), or write the group id';
    case 'team':
      return 'check the team name (the first part of a team URL: https://chat.example.com/<team>/…), and that the bot is in the team';
    case 'channel':
      return 'check team-name/channel-name (as in https://chat.example.com/<team>/channels/<channel>), and add the bot to the channel';
  }
}

/** Every Mattermost name the policies and groups.json use, as Mattermost resolved it. */
export function checkNames(table: NameTable): Finding[] {
  return table.entries().map(({ ref, resolution: r }) => {
    const what = `${ref.kind} ${ref.written}`;
    if (r.ok) return ok('names', `${what} is ${r.id}`);
    // Mattermost could not be asked: that problem is reported once, where it happened.
    if (r.status === 'unchecked') return note('names', `${what} was not checked: ${r.reason}`);
    return problem('names', `${what}: ${r.reason}`, nameFix(ref.kind, r.status));
  });
}

type Member = { path: string; kind: RefKind; id: string; shown: string };

/** Each groups.json member as an id (a name by the id it resolved to; one that did not is left to checkNames). */
function membersOf(groups: GroupsFile, table: NameTable): Member[] {
  const fields: [string, RefKind][] = [
    ['user_id', 'user'],
    ['mattermost_group', 'group'],
    ['mattermost_channel', 'channel'],
  ];
  return Object.entries(groups.groups).flatMap(([group, def]) =>
    def.members.flatMap((m, i) =>
      fields.flatMap(([field, kind]) => {
        const parsed = parseRef(kind, (m as Record<string, unknown>)[field]);
        const path = `groups.json ${pointerToPath('/groups', group)}.members[${i}].${field}`;
        if ('id' in parsed) return [{ path, kind, id: parsed.id, shown: parsed.id }];
        if (!('name' in parsed)) return [];
        const r = table.get(parsed.name as NameRef);
        return r.ok ? [{ path, kind, id: r.id, shown: parsed.name.written }] : [];
      }),
    ),
  );
}

/**
 * Every groups.json member, asked about by id: a user must exist and be an active person, a
 * Mattermost group must exist (and the server be licensed for groups), and the bot must be in
 * every channel whose members it is told to count.
 */
export async function checkGroupMembers(
  session: MattermostSession,
  groups: GroupsFile,
  table: NameTable,
): Promise<Finding[]> {
  const findings: Finding[] = [];
  const asked = new Map<string, Finding | null>();
  for (const m of membersOf(groups, table)) {
    const key = `${m.kind}:${m.id}`;
    if (!asked.has(key)) asked.set(key, await checkMember(session, m));
    const found = asked.get(key);
    if (found) findings.push({ ...found, message: `${m.path}: ${found.message}` });
  }
  return findings;
}

/** Mattermost stopped answering mid-way: not a verdict on the member. */
const unanswered = (what: string): Finding =>
  problem('groups', `${what}: Mattermost did not answer`, 'run doctor again once Mattermost answers');

async function checkMember(session: MattermostSession, m: Member): Promise<Finding | null> {
  if (m.kind === 'channel') {
    const f = await channelMembership(
      session,
      { id: m.id, shown: m.shown },
      'groups',
      'groups.json counts the members of',
    );
    return f.status === 'ok' ? null : f;
  }
  if (m.kind === 'user') {
    const a = await session.get(`/users/${m.id}`);
    if (!a.ok) return unanswered(`user ${m.shown}`);
    if (a.status === 404)
      return problem('groups', `no Mattermost user is ${m.shown}`, 'check the user id, or write @username');
    const u = a.body as { is_bot?: unknown; delete_at?: unknown; username?: unknown };
    if (a.status !== 200)
      return problem(
        'groups',
        `user ${m.shown}: Mattermost answered ${a.status}`,
        'check the bot’s permissions',
      );
    if (u.is_bot === true)
      return problem(
        'groups',
        `${m.shown} (@${String(u.username)}) is a bot account`,
        'list people only: bots never approve',
      );
    if (typeof u.delete_at === 'number' && u.delete_at > 0)
      return problem(
        'groups',
        `${m.shown} (@${String(u.username)}) is deactivated`,
        'remove them from groups.json',
      );
    return null;
  }
  const a = await session.get(`/groups/${m.id}`);
  if (!a.ok) return unanswered(`Mattermost group ${m.shown}`);
  if (a.status === 200) return null;
  if (a.status === 501)
    return problem(
      'groups',
      `Mattermost group ${m.shown}: this server has no licence for user groups (501)`,
      'list the people by @username or id instead',
    );
  return problem(
    'groups',
    `no Mattermost group ${m.shown} is visible to the bot (${a.status})`,
    'check the group id, or write @group-name',
  );
}
