import type { GroupsFile } from '../policy/types.js';

/**
 * Who belongs to which approver group, asked at the moment a decision is made. Entries in
 * `policies/groups.json` name Mattermost users directly, or delegate to the chat server
 * (a Mattermost user group, or the members of a channel) through `ChatMembership`. Names
 * there (`@alice`, `ops/security`) never reach this module: the policy service hands it the
 * file with each name replaced by the id it resolved to, and leaves out any that did not.
 */
export interface Directory {
  /** The subset of `candidates` the user belongs to now. Throws when membership cannot be established. */
  groupsOf(userId: string, candidates: readonly string[]): Promise<Set<string>>;
  /**
   * The same question, answered with how each group was found: what a proof bundle records
   * so that a reviewer can see why an approver counted (issue 10 section 3).
   */
  membershipsOf(userId: string, candidates: readonly string[]): Promise<GroupMembership[]>;
}

/** One group a person was found in, and the groups-file entry that matched them. */
export interface GroupMembership {
  group: string;
  via: 'user_id' | 'mattermost_group' | 'mattermost_channel';
  /** The id the entry lists: the person's user id, a Mattermost group id or a channel id. */
  ref: string;
}

/** Membership questions only the chat server can answer (issue 4's Mattermost adapter). */
export interface ChatMembership {
  isGroupMember(userId: string, mattermostGroupId: string): Promise<boolean>;
  isChannelMember(userId: string, channelId: string): Promise<boolean>;
}

/**
 * A directory over the groups file. Without a chat connection, entries that delegate to
 * Mattermost match nobody: membership that cannot be checked is never assumed.
 */
export function groupsDirectory(groups: () => GroupsFile | null, chat?: ChatMembership): Directory {
  async function membershipsOf(userId: string, candidates: readonly string[]): Promise<GroupMembership[]> {
    const file = groups();
    const found: GroupMembership[] = [];
    if (!file) return found;
    for (const name of new Set(candidates)) {
      if (!Object.hasOwn(file.groups, name)) continue;
      const members = file.groups[name]!.members;
      // Listed user ids first: no I/O, and a listed person never depends on the chat server.
      if (members.some((m) => m.user_id === userId)) {
        found.push({ group: name, via: 'user_id', ref: userId });
        continue;
      }
      for (const member of members) {
        if (chat === undefined) break;
        if (member.mattermost_group !== undefined) {
          if (await chat.isGroupMember(userId, member.mattermost_group)) {
            found.push({ group: name, via: 'mattermost_group', ref: member.mattermost_group });
            break;
          }
        } else if (member.mattermost_channel !== undefined) {
          if (await chat.isChannelMember(userId, member.mattermost_channel)) {
            found.push({ group: name, via: 'mattermost_channel', ref: member.mattermost_channel });
            break;
          }
        }
      }
    }
    return found;
  }
  return {
    membershipsOf,
    async groupsOf(userId, candidates) {
      return new Set((await membershipsOf(userId, candidates)).map((m) => m.group));
    },
  };
}
