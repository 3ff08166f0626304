import { isValidId, newId } from './ids.js';
import type {
  MmChannel,
  MmChannelType,
  MmCommand,
  MmGroup,
  MmIncomingWebhook,
  MmReaction,
  MmTeam,
} from './types.js';

export interface UserRecord {
  id: string;
  username: string;
  isBot: boolean;
  roles: string;
  createAt: number;
  updateAt: number;
  /** Set when the account is deactivated (0 while active). */
  deleteAt: number;
  /** model.Bot.OwnerId: who created the bot account ('' for people and ownerless bots). */
  botOwnerId: string;
}

export interface MemberRecord {
  roles: string;
  lastUpdateAt: number;
}

export interface PostRecord {
  id: string;
  createAt: number;
  updateAt: number;
  editAt: number;
  deleteAt: number;
  isPinned: boolean;
  userId: string;
  channelId: string;
  rootId: string;
  /** Set on the copies an edit leaves behind (sqlstore Post.Update keeps the old version). */
  originalId: string;
  message: string;
  type: string;
  props: Record<string, unknown>;
  hashtags: string;
  fileIds: string[];
  hasReactions: boolean;
}

export interface GroupRecord {
  group: MmGroup;
  members: Set<string>;
}

export type Now = () => number;

/**
 * All sandbox data. It survives `restart()`, `close()` and `listen()`; only WebSocket connection
 * state is forgotten by a restart.
 */
export class SandboxStore {
  readonly users = new Map<string, UserRecord>();
  readonly tokens = new Map<string, string>();
  readonly teams = new Map<string, MmTeam>();
  /** Team id → member user id → when they joined (TeamMember.CreateAt). */
  readonly teamMembers = new Map<string, Map<string, number>>();
  readonly channels = new Map<string, MmChannel>();
  readonly members = new Map<string, Map<string, MemberRecord>>();
  readonly posts = new Map<string, PostRecord>();
  /** Posts per channel in insertion order (edit-history copies included). */
  readonly channelPosts = new Map<string, PostRecord[]>();
  readonly reactions = new Map<string, MmReaction[]>();
  readonly groups = new Map<string, GroupRecord>();
  readonly webhooks = new Map<string, MmIncomingWebhook>();
  /** Custom slash commands by id. */
  readonly commands = new Map<string, MmCommand>();
  /** app.seenPendingPostIdsCache: pending_post_id → post id, kept 30 s (app/post.go). */
  readonly pendingPostIds = new Map<string, { postId: string; at: number }>();

  constructor(readonly now: Now) {}

  /** A timestamp strictly after `previous`, so a post's update_at always moves forward. */
  after(previous: number): number {
    return Math.max(this.now(), previous + 1);
  }

  userByUsername(username: string): UserRecord | undefined {
    const wanted = username.toLowerCase();
    for (const user of this.users.values()) if (user.username === wanted) return user;
    return undefined;
  }

  /** Store Team().GetByName: live teams only. */
  teamByName(name: string): MmTeam | undefined {
    for (const team of this.teams.values()) if (team.name === name && team.delete_at === 0) return team;
    return undefined;
  }

  /** Store Channel().GetByName(teamId, name, allowFromCache). */
  channelByName(teamId: string, name: string): MmChannel | undefined {
    for (const channel of this.channels.values()) {
      if (channel.team_id === teamId && channel.name === name) return channel;
    }
    return undefined;
  }

  isSystemAdmin(userId: string): boolean {
    return (this.users.get(userId)?.roles.split(' ') ?? []).includes('system_admin');
  }

  isMember(channelId: string, userId: string): boolean {
    return this.members.get(channelId)?.has(userId) ?? false;
  }

  isTeamMember(teamId: string, userId: string): boolean {
    return this.teamMembers.get(teamId)?.has(userId) ?? false;
  }

  channelMemberIds(channelId: string): string[] {
    return [...(this.members.get(channelId)?.keys() ?? [])];
  }

  /** SessionHasPermissionToReadChannel: members, admins, and team members for open channels. */
  canReadChannel(userId: string, channel: MmChannel): boolean {
    if (this.isSystemAdmin(userId) || this.isMember(channel.id, userId)) return true;
    return channel.type === 'O' && this.isTeamMember(channel.team_id, userId);
  }

  /** SessionHasPermissionToChannel for channel-scoped permissions (create_post, read_channel, …). */
  hasChannelPermission(userId: string, channelId: string): boolean {
    return this.isSystemAdmin(userId) || this.isMember(channelId, userId);
  }

  /** A caller-chosen id must be a valid, unused Mattermost id. */
  private chooseId(id: string | undefined, taken: (id: string) => boolean): string {
    if (id === undefined) return newId();
    if (!isValidId(id) || taken(id)) throw new Error(`id ${id} is not a valid unused id`);
    return id;
  }

  createTeam(input: { id?: string; name: string; display_name?: string }): MmTeam {
    const at = this.now();
    const team: MmTeam = {
      id: this.chooseId(input.id, (id) => this.teams.has(id)),
      create_at: at,
      update_at: at,
      delete_at: 0,
      display_name: input.display_name ?? input.name,
      name: input.name,
      description: '',
      email: '',
      type: 'O',
      company_name: '',
      allowed_domains: '',
      invite_id: newId(),
      allow_open_invite: false,
      scheme_id: null,
      group_constrained: null,
      policy_id: null,
      cloud_limits_archived: false,
    };
    this.teams.set(team.id, team);
    this.teamMembers.set(team.id, new Map());
    return team;
  }

  createUser(input: { id?: string; username: string; is_bot?: boolean; roles?: string; owner_id?: string }): {
    user: UserRecord;
    token: string;
  } {
    const username = input.username.toLowerCase();
    if (this.userByUsername(username)) throw new Error(`username ${username} is taken`);
    const at = this.now();
    const user: UserRecord = {
      id: this.chooseId(input.id, (id) => this.users.has(id)),
      username,
      isBot: input.is_bot ?? false,
      roles: input.roles ?? 'system_user',
      createAt: at,
      updateAt: at,
      deleteAt: 0,
      botOwnerId: input.is_bot ? (input.owner_id ?? '') : '',
    };
    this.users.set(user.id, user);
    const token = newId();
    this.tokens.set(token, user.id);
    return { user, token };
  }

  /**
   * UpdateActive: deactivating sets `delete_at` and revokes every session of the account (its
   * tokens stop working); reactivating clears `delete_at`.
   */
  setUserActive(userId: string, active: boolean): UserRecord {
    const user = this.users.get(userId);
    if (!user) throw new Error(`no user ${userId}`);
    const at = this.now();
    user.deleteAt = active ? 0 : at;
    user.updateAt = at;
    if (!active) for (const [token, owner] of this.tokens) if (owner === userId) this.tokens.delete(token);
    return user;
  }

  createChannel(input: {
    id?: string;
    team_id: string;
    name: string;
    display_name?: string;
    type?: MmChannelType;
    creator_id?: string;
  }): MmChannel {
    if (input.team_id !== '' && !this.teams.has(input.team_id)) throw new Error(`no team ${input.team_id}`);
    const at = this.now();
    const channel: MmChannel = {
      id: this.chooseId(input.id, (id) => this.channels.has(id)),
      create_at: at,
      update_at: at,
      delete_at: 0,
      team_id: input.team_id,
      type: input.type ?? 'O',
      display_name: input.display_name ?? (input.type === 'D' ? '' : input.name),
      name: input.name,
      header: '',
      purpose: '',
      last_post_at: at,
      total_msg_count: 0,
      extra_update_at: 0,
      creator_id: input.creator_id ?? '',
      scheme_id: null,
      props: null,
      group_constrained: null,
      shared: null,
      total_msg_count_root: 0,
      policy_id: null,
      last_root_post_at: at,
    };
    this.channels.set(channel.id, channel);
    this.members.set(channel.id, new Map());
    this.channelPosts.set(channel.id, []);
    return channel;
  }

  /** model.GetDMNameFromIds: the two ids, smaller first, joined by `__`. */
  createDirectChannel(userA: string, userB: string): MmChannel {
    for (const id of [userA, userB]) if (!this.users.has(id)) throw new Error(`no user ${id}`);
    const name = userA > userB ? `${userB}__${userA}` : `${userA}__${userB}`;
    for (const channel of this.channels.values())
      if (channel.type === 'D' && channel.name === name) return channel;
    const channel = this.createChannel({ team_id: '', name, type: 'D', creator_id: userA });
    this.addChannelMember(channel.id, userA);
    this.addChannelMember(channel.id, userB);
    return channel;
  }

  addTeamMember(teamId: string, userId: string): void {
    const members = this.teamMembers.get(teamId);
    if (!members) throw new Error(`no team ${teamId}`);
    if (!this.users.has(userId)) throw new Error(`no user ${userId}`);
    if (!members.has(userId)) members.set(userId, this.now());
  }

  addChannelMember(channelId: string, userId: string): void {
    const channel = this.channels.get(channelId);
    const members = this.members.get(channelId);
    if (!channel || !members) throw new Error(`no channel ${channelId}`);
    if (!this.users.has(userId)) throw new Error(`no user ${userId}`);
    // A channel member is always a member of the channel's team.
    if (channel.team_id !== '') this.addTeamMember(channel.team_id, userId);
    if (!members.has(userId)) members.set(userId, { roles: 'channel_user', lastUpdateAt: this.now() });
  }

  removeChannelMember(channelId: string, userId: string): void {
    this.members.get(channelId)?.delete(userId);
  }

  createGroup(input: { id?: string; name: string; display_name?: string }): MmGroup {
    const at = this.now();
    const group: MmGroup = {
      id: this.chooseId(input.id, (id) => this.groups.has(id)),
      name: input.name,
      display_name: input.display_name ?? input.name,
      description: '',
      source: 'custom',
      remote_id: null,
      create_at: at,
      update_at: at,
      delete_at: 0,
      has_syncables: false,
      member_count: 0,
      allow_reference: true,
    };
    this.groups.set(group.id, { group, members: new Set() });
    return group;
  }

  addGroupMembers(groupId: string, userIds: string[]): void {
    const record = this.groups.get(groupId);
    if (!record) throw new Error(`no group ${groupId}`);
    for (const id of userIds) {
      if (!this.users.has(id)) throw new Error(`no user ${id}`);
      record.members.add(id);
    }
    record.group.member_count = record.members.size;
  }

  removeGroupMember(groupId: string, userId: string): void {
    const record = this.groups.get(groupId);
    if (!record) throw new Error(`no group ${groupId}`);
    record.members.delete(userId);
    record.group.member_count = record.members.size;
  }

  createIncomingWebhook(input: { channel_id: string; user_id: string }): MmIncomingWebhook {
    const channel = this.channels.get(input.channel_id);
    if (!channel) throw new Error(`no channel ${input.channel_id}`);
    if (!this.users.has(input.user_id)) throw new Error(`no user ${input.user_id}`);
    const at = this.now();
    const hook: MmIncomingWebhook = {
      id: newId(),
      create_at: at,
      update_at: at,
      delete_at: 0,
      user_id: input.user_id,
      channel_id: channel.id,
      team_id: channel.team_id,
      display_name: '',
      description: '',
      username: '',
      icon_url: '',
      channel_locked: false,
    };
    this.webhooks.set(hook.id, hook);
    return hook;
  }

  addPost(post: PostRecord): void {
    this.posts.set(post.id, post);
    this.channelPosts.get(post.channelId)?.push(post);
  }

  /** Live (not deleted, not an edit-history copy) replies of a root post, in creation order. */
  liveReplies(rootId: string, channelId: string): PostRecord[] {
    return (this.channelPosts.get(channelId) ?? []).filter((p) => p.rootId === rootId && p.deleteAt === 0);
  }
}
