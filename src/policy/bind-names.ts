import { type NameRef, parseRef, type RefKind } from './mattermost-refs.js';
import type { NameTable } from './resolve-names.js';
import type { GroupMember, GroupsFile, MattermostNames, Wpc } from './types.js';
import { type Checked, type PolicyProblem, pointerToPath } from './validate-policy.js';

const RECORD_KEY: Readonly<Record<RefKind, keyof MattermostNames>> = {
  user: 'users',
  group: 'groups',
  team: 'teams',
  channel: 'channels',
};

const MEMBER_KINDS: readonly [keyof GroupMember & string, RefKind][] = [
  ['user_id', 'user'],
  ['mattermost_group', 'group'],
  ['mattermost_channel', 'channel'],
];

/** Names and the ids they stood for, as a signed version records them (sorted, empty kinds left out). */
class NameRecord {
  private readonly ids = new Map<RefKind, Map<string, string>>();

  add(ref: NameRef, id: string): void {
    const kind = this.ids.get(ref.kind) ?? new Map<string, string>();
    kind.set(ref.written, id);
    this.ids.set(ref.kind, kind);
  }

  merge(other: NameRecord): void {
    for (const [kind, names] of other.ids) for (const [written, id] of names) this.add({ kind, written }, id);
  }

  get size(): number {
    return [...this.ids.values()].reduce((n, m) => n + m.size, 0);
  }

  toJson(): MattermostNames {
    const out: MattermostNames = {};
    for (const kind of ['user', 'group', 'team', 'channel'] as const) {
      const names = this.ids.get(kind);
      if (names?.size)
        out[RECORD_KEY[kind]] = Object.fromEntries([...names].sort(([a], [b]) => (a < b ? -1 : 1)));
    }
    return out;
  }
}

/** A name that did not resolve, where it was written, and why. */
export interface NameProblem extends PolicyProblem {
  ref: NameRef;
}

/** `groups.json` with its names resolved. */
export interface BoundGroups {
  /**
   * The file with every name replaced by its id. A member whose name did not resolve is left
   * out: it matches nobody, and every policy naming its group stays closed (`bindPolicyNames`).
   */
  file: GroupsFile;
  /** group -> the names its members rely on. */
  names: Map<string, NameRecord>;
  /** group -> its names that did not resolve (paths into groups.json). */
  problems: Map<string, NameProblem[]>;
}

/** Every name `groups.json` uses. */
export function namesOfGroups(groups: GroupsFile): NameRef[] {
  return Object.values(groups.groups).flatMap((g) =>
    g.members.flatMap((m) =>
      MEMBER_KINDS.flatMap(([field, kind]) => {
        const parsed = parseRef(kind, m[field]);
        return 'name' in parsed ? [parsed.name] : [];
      }),
    ),
  );
}

/** Every name a policy's own text uses (its teams and channels). */
export function namesOfPolicy(policy: Wpc): NameRef[] {
  const cc = policy.channel_context;
  return [
    ...cc.allowed_team_ids.map((v) => parseRef('team', v)),
    ...cc.allowed_channel_ids.map((v) => parseRef('channel', v)),
  ].flatMap((p) => ('name' in p ? [p.name] : []));
}

/** Replaces each name in `groups.json` by its id (pure). */
export function bindGroups(groups: GroupsFile, table: NameTable): BoundGroups {
  const bound: BoundGroups = {
    file: { groups_version: groups.groups_version, groups: {} },
    names: new Map(),
    problems: new Map(),
  };
  for (const [group, def] of Object.entries(groups.groups)) {
    const record = new NameRecord();
    const problems: NameProblem[] = [];
    const members: GroupMember[] = [];
    for (const [i, member] of def.members.entries()) {
      let kept: GroupMember | null = member;
      for (const [field, kind] of MEMBER_KINDS) {
        const parsed = parseRef(kind, member[field]);
        if (!('name' in parsed)) continue;
        const path = `${pointerToPath('/groups', group)}.members[${i}].${field}`;
        const r = table.get(parsed.name);
        if (r.ok) {
          record.add(parsed.name, r.id);
          kept = { ...member, [field]: r.id };
        } else {
          problems.push({ ref: parsed.name, path, rule: `names:${r.status}`, message: r.reason });
          kept = null;
        }
      }
      if (kept) members.push(kept);
    }
    bound.file.groups[group] = { ...def, members };
    bound.names.set(group, record);
    if (problems.length) bound.problems.set(group, problems);
  }
  return bound;
}

/** The groups of `groups.json` a policy names: requesters, approvers, step overrides. */
function groupsNamedBy(policy: Wpc): { group: string; path: string }[] {
  const rule = policy.execution.approval_rule;
  return [
    ...policy.channel_context.requester_groups.map((group, i) => ({
      group,
      path: `$.channel_context.requester_groups[${i}]`,
    })),
    ...rule.allowed_approver_groups.map((group, i) => ({
      group,
      path: `$.execution.approval_rule.allowed_approver_groups[${i}]`,
    })),
    ...Object.entries(policy.execution.step_overrides ?? {}).flatMap(([key, o]) =>
      (o.allowed_approver_groups ?? []).map((group, i) => ({
        group,
        path: `${pointerToPath('/execution/step_overrides', key)}.allowed_approver_groups[${i}]`,
      })),
    ),
  ];
}

/** Problems of the groups a policy names, reported at the policy's own paths, and their names. */
function groupNames(policy: Wpc, groups: BoundGroups): { record: NameRecord; problems: NameProblem[] } {
  const record = new NameRecord();
  const problems: NameProblem[] = [];
  const seen = new Set<string>();
  for (const { group, path } of groupsNamedBy(policy)) {
    const names = groups.names.get(group);
    if (names) record.merge(names);
    if (seen.has(group)) continue;
    seen.add(group);
    for (const p of groups.problems.get(group) ?? [])
      problems.push({ ...p, path, message: `group "${group}" (groups.json ${p.path}): ${p.message}` });
  }
  return { record, problems };
}

/**
 * The version of a policy that is hashed and signed: each team and channel name replaced by
 * its id, and `mattermost_names` recording every name it relies on (its own and those of
 * the groups it names) with the id each stood for. A policy that relies on no name is
 * returned as it is, so its hash does not change. Any name that did not resolve refuses the
 * policy, naming the name (pure).
 */
export function bindPolicyNames(policy: Wpc, groups: BoundGroups, table: NameTable): Checked<Wpc> {
  const own = new NameRecord();
  const problems: PolicyProblem[] = [];
  const bind = (path: string, kind: RefKind, values: readonly string[]) => {
    const ids = values.map((v, i) => {
      const parsed = parseRef(kind, v);
      if (!('name' in parsed)) return v;
      const r = table.get(parsed.name);
      if (!r.ok) {
        problems.push({ path: `${path}[${i}]`, rule: `names:${r.status}`, message: r.reason });
        return v;
      }
      own.add(parsed.name, r.id);
      return r.id;
    });
    // A name and an id (or two names) for one thing would claim it twice.
    for (const [i, id] of ids.entries()) {
      const first = ids.indexOf(id);
      if (first !== i)
        problems.push({
          path: `${path}[${i}]`,
          rule: 'names:duplicate',
          message: `"${values[i]}" and "${values[first]}" are the same ${kind}: list it once`,
        });
    }
    return ids;
  };
  const cc = policy.channel_context;
  const teams = bind('$.channel_context.allowed_team_ids', 'team', cc.allowed_team_ids);
  const channels = bind('$.channel_context.allowed_channel_ids', 'channel', cc.allowed_channel_ids);
  const fromGroups = groupNames(policy, groups);
  problems.push(...fromGroups.problems.map(({ ref: _ref, ...p }) => p));
  if (problems.length) return { ok: false, problems };
  own.merge(fromGroups.record);
  if (own.size === 0) return { ok: true, value: policy };
  return {
    ok: true,
    value: {
      ...policy,
      channel_context: { ...cc, allowed_team_ids: teams, allowed_channel_ids: channels },
      mattermost_names: own.toJson(),
    },
  };
}

/**
 * Why a signed version (a pinned rollback) may not govern with today's `groups.json`: a group
 * it names has a name that does not resolve, or a name it recorded now stands for another id
 * (renamed, or a username taken by someone else). Names it never saw resolve as today's;
 * its teams and channels are ids in its signed text. Null when it may.
 */
export function signedNamesDisagree(policy: Wpc, groups: BoundGroups): string | null {
  const today = groupNames(policy, groups);
  if (today.problems.length) return today.problems.map((p) => p.message).join('; ');
  const signed = policy.mattermost_names ?? {};
  const now = today.record.toJson();
  const changed: string[] = [];
  for (const key of Object.keys(now) as (keyof MattermostNames)[]) {
    for (const [written, id] of Object.entries(now[key] ?? {})) {
      const recorded = signed[key] ?? {};
      const then = Object.hasOwn(recorded, written) ? recorded[written] : undefined;
      if (then !== undefined && then !== id)
        changed.push(`${written} stood for ${then} when signed and now for ${id}`);
    }
  }
  return changed.length ? `names changed since it was signed: ${changed.join('; ')}` : null;
}
