import type { GroupsFile } from '../policy/types.js';

/**
 * Who belongs to which approver group, asked at the moment a decision is made. Entries in
 * `policies/groups.json` name Mattermost user ids directly, or delegate to the chat server
 * (a Mattermost user group, or the members of a channel) through `ChatMembership`.
 */
export interface Directory {
  /** The subset of `candidates` the user belongs to now. Throws when membership cannot be established. */
  groupsOf(userId: string, candidates: readonly string[]): Promise<Set<string>>;
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
  return {
    async groupsOf(userId, candidates) {
      const file = groups();
      const result = new Set<string>();
      if (!file) return result;
      for (const name of candidates) {
        if (!Object.hasOwn(file.groups, name)) continue;
        const members = file.groups[name]!.members;
        // Listed user ids first: no I/O, and a listed person never depends on the chat server.
        if (members.some((m) => m.user_id === userId)) {
          result.add(name);
          continue;
        }
        for (const member of members) {
          const matched =
            member.mattermost_group !== undefined
              ? chat !== undefined && (await chat.isGroupMember(userId, member.mattermost_group))
              : member.mattermost_channel !== undefined
                ? chat !== undefined && (await chat.isChannelMember(userId, member.mattermost_channel))
                : false;
          if (matched) {
            result.add(name);
            break;
          }
        }
      }
      return result;
    },
  };
}
