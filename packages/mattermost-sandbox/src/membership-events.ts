import { broadcast, type Hub } from './hub.js';
import { userJson } from './serialize.js';
import type { SandboxStore, UserRecord } from './store.js';

/**
 * Membership and account changes with the events a real server publishes for them (same names,
 * broadcast targets and data shapes), for every way the sandbox makes them: the test API, the
 * control API and REST.
 */
export class MembershipEvents {
  constructor(
    private readonly store: SandboxStore,
    private readonly hub: Hub,
  ) {}

  /**
   * App.AddUserToChannel: after the member is saved, `user_added` to the channel (the new member
   * included), with `user_id` and `team_id`. Adding someone already there publishes nothing
   * (AddChannelMember returns the existing member first).
   */
  addChannelMember(channelId: string, userId: string): void {
    const already = this.store.isMember(channelId, userId);
    this.store.addChannelMember(channelId, userId);
    if (already) return;
    const channel = this.store.channels.get(channelId);
    this.hub.publish({
      event: 'user_added',
      data: { user_id: userId, team_id: channel?.team_id ?? '' },
      broadcast: broadcast({ channel_id: channelId }),
    });
  }

  /**
   * App.removeUserFromChannel: after the member is removed, `user_removed` to the channel's
   * remaining members (`user_id`, `remover_id`), then to the removed person alone (`channel_id`,
   * `remover_id`), who is no longer in the channel to hear the first. `removerId` '' is the system.
   */
  removeChannelMember(channelId: string, userId: string, removerId = ''): void {
    if (!this.store.isMember(channelId, userId)) return;
    this.store.removeChannelMember(channelId, userId);
    this.hub.publish({
      event: 'user_removed',
      data: { user_id: userId, remover_id: removerId },
      broadcast: broadcast({ channel_id: channelId }),
    });
    this.hub.publish({
      event: 'user_removed',
      data: { channel_id: channelId, remover_id: removerId },
      broadcast: broadcast({ user_id: userId }),
    });
  }

  /**
   * App.UpsertGroupMembers → publishGroupMemberEvent: `group_member_add` to each member alone,
   * `group_member` a JSON string of model.GroupMember. Nobody else hears of it.
   */
  addGroupMembers(groupId: string, userIds: string[]): void {
    this.store.addGroupMembers(groupId, userIds);
    const at = this.store.now();
    for (const userId of userIds) this.publishGroupMember('group_member_add', groupId, userId, at, 0);
  }

  /** App.DeleteGroupMembers: `group_member_delete` to the removed member alone, if they were one. */
  removeGroupMember(groupId: string, userId: string): void {
    const was = this.store.groups.get(groupId)?.members.has(userId) ?? false;
    this.store.removeGroupMember(groupId, userId);
    if (!was) return;
    const at = this.store.now();
    this.publishGroupMember('group_member_delete', groupId, userId, at, at);
  }

  /**
   * App.UpdateActive → sendUpdatedUserEvent: `user_updated` with the account (`user`, an object,
   * not a JSON string) to every connection but the account's own: one copy for system admins
   * (contains_sensitive_data), one sanitized for everyone else (contains_sanitized_data); then an
   * unsanitized copy to the account itself.
   */
  setUserActive(userId: string, active: boolean): UserRecord {
    const user = this.store.setUserActive(userId, active);
    const omit = { [userId]: true };
    this.hub.publish({
      event: 'user_updated',
      data: { user: userJson(user, false) },
      broadcast: broadcast({ omit_users: omit, contains_sensitive_data: true }),
    });
    this.hub.publish({
      event: 'user_updated',
      data: { user: userJson(user, false) },
      broadcast: broadcast({ omit_users: omit, contains_sanitized_data: true }),
    });
    this.hub.publish({
      event: 'user_updated',
      data: { user: userJson(user, true) },
      broadcast: broadcast({ user_id: userId }),
    });
    return user;
  }

  private publishGroupMember(
    event: string,
    groupId: string,
    userId: string,
    createAt: number,
    deleteAt: number,
  ): void {
    this.hub.publish({
      event,
      data: {
        group_member: JSON.stringify({
          group_id: groupId,
          user_id: userId,
          create_at: createAt,
          delete_at: deleteAt,
        }),
      },
      broadcast: broadcast({ user_id: userId }),
    });
  }
}
