/**
 * Mattermost objects as the server serialises them (JSON field names and key order follow the Go
 * structs in server/public/model: user.go, team.go, channel.go, channel_member.go, post.go,
 * reaction.go, group.go).
 */

export interface MmTimezone {
  automaticTimezone: string;
  manualTimezone: string;
  useAutomaticTimezone: string;
}

export interface MmUser {
  id: string;
  create_at: number;
  update_at: number;
  delete_at: number;
  username: string;
  auth_data: string;
  auth_service: string;
  email: string;
  email_verified?: boolean;
  nickname: string;
  first_name: string;
  last_name: string;
  position: string;
  roles: string;
  notify_props?: Record<string, string>;
  last_password_update?: number;
  locale: string;
  timezone: MmTimezone;
  is_bot: boolean;
  bot_description?: string;
  disable_welcome_email: boolean;
}

export interface MmTeam {
  id: string;
  create_at: number;
  update_at: number;
  delete_at: number;
  display_name: string;
  name: string;
  description: string;
  email: string;
  type: 'O' | 'I';
  company_name: string;
  allowed_domains: string;
  invite_id: string;
  allow_open_invite: boolean;
  scheme_id: string | null;
  group_constrained: boolean | null;
  policy_id: string | null;
  cloud_limits_archived: boolean;
}

/** model.TeamMember. */
export interface MmTeamMember {
  team_id: string;
  user_id: string;
  roles: string;
  delete_at: number;
  scheme_guest: boolean;
  scheme_user: boolean;
  scheme_admin: boolean;
  explicit_roles: string;
  create_at: number;
}

/** model.Command (slash command); `token` is the secret the server sends with each call. */
export interface MmCommand {
  id: string;
  token: string;
  create_at: number;
  update_at: number;
  delete_at: number;
  creator_id: string;
  team_id: string;
  trigger: string;
  /** `P` (POST, form-encoded) or `G` (GET, query string). */
  method: string;
  username: string;
  icon_url: string;
  auto_complete: boolean;
  auto_complete_desc: string;
  auto_complete_hint: string;
  display_name: string;
  description: string;
  url: string;
  plugin_id: string;
}

/** model.Bot. */
export interface MmBot {
  user_id: string;
  username: string;
  display_name?: string;
  description?: string;
  owner_id: string;
  create_at: number;
  update_at: number;
  delete_at: number;
}

export type MmChannelType = 'O' | 'P' | 'D' | 'G';

export interface MmChannel {
  id: string;
  create_at: number;
  update_at: number;
  delete_at: number;
  team_id: string;
  type: MmChannelType;
  display_name: string;
  name: string;
  header: string;
  purpose: string;
  last_post_at: number;
  total_msg_count: number;
  extra_update_at: number;
  creator_id: string;
  scheme_id: string | null;
  props: Record<string, unknown> | null;
  group_constrained: boolean | null;
  shared: boolean | null;
  total_msg_count_root: number;
  policy_id: string | null;
  last_root_post_at: number;
}

export interface MmChannelMember {
  channel_id: string;
  user_id: string;
  roles: string;
  last_viewed_at: number;
  msg_count: number;
  mention_count: number;
  mention_count_root: number;
  urgent_mention_count: number;
  msg_count_root: number;
  notify_props: Record<string, string>;
  last_update_at: number;
  scheme_guest: boolean;
  scheme_user: boolean;
  scheme_admin: boolean;
  explicit_roles: string;
}

export interface MmReaction {
  user_id: string;
  post_id: string;
  emoji_name: string;
  create_at: number;
  update_at: number;
  delete_at: number;
  remote_id: string;
  channel_id: string;
}

export interface MmPostMetadata {
  reactions?: MmReaction[];
}

export interface MmPost {
  id: string;
  create_at: number;
  update_at: number;
  edit_at: number;
  delete_at: number;
  is_pinned: boolean;
  user_id: string;
  channel_id: string;
  root_id: string;
  original_id: string;
  message: string;
  type: string;
  props: Record<string, unknown>;
  hashtags: string;
  file_ids: string[];
  pending_post_id: string;
  has_reactions?: boolean;
  reply_count: number;
  last_reply_at: number;
  participants: null;
  metadata?: MmPostMetadata;
}

export interface MmPostList {
  order: string[];
  posts: Record<string, MmPost>;
  next_post_id: string;
  prev_post_id: string;
  has_next?: boolean;
  first_inaccessible_post_time: number;
}

export interface MmGroup {
  id: string;
  name: string;
  display_name: string;
  description: string;
  source: 'custom';
  remote_id: string | null;
  create_at: number;
  update_at: number;
  delete_at: number;
  has_syncables: boolean;
  member_count: number;
  allow_reference: boolean;
}

export interface MmIncomingWebhook {
  id: string;
  create_at: number;
  update_at: number;
  delete_at: number;
  user_id: string;
  channel_id: string;
  team_id: string;
  display_name: string;
  description: string;
  username: string;
  icon_url: string;
  channel_locked: boolean;
}

/** The `broadcast` object of a WebSocket event (model.WebsocketBroadcast). */
export interface MmBroadcast {
  omit_users: Record<string, boolean> | null;
  user_id: string;
  channel_id: string;
  team_id: string;
  connection_id: string;
  omit_connection_id: string;
  contains_sanitized_data?: boolean;
  contains_sensitive_data?: boolean;
}

/** An event as sent on the socket: `{event, data, broadcast, seq}`. */
export interface MmWebSocketEvent {
  event: string;
  data: Record<string, unknown>;
  broadcast: MmBroadcast;
  seq: number;
}
