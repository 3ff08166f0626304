import { strippedOfIntegrations } from './attachments.js';
import type { PostRecord, SandboxStore, UserRecord } from './store.js';
import type { MmChannelMember, MmPost, MmPostList, MmReaction, MmUser } from './types.js';

/** Go's encoding/json writes map keys sorted; props and event data are Go maps. */
export function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort())
      out[key] = sortKeysDeep((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

export interface PostJsonOptions {
  /** PreparePostForClient ran: `metadata` is present (`{}` when there is nothing to add). */
  metadata?: boolean;
  pendingPostId?: string;
}

/**
 * model.Post as clients get it, keys in struct order, each action's integration stripped
 * (Post.ToJSON / Post.EncodeJSON); reply_count as the store computes it (the whole thread, live posts). */
export function postJson(store: SandboxStore, post: PostRecord, options: PostJsonOptions = {}): MmPost {
  const threadId = post.rootId === '' ? post.id : post.rootId;
  const out: MmPost = {
    id: post.id,
    create_at: post.createAt,
    update_at: post.updateAt,
    edit_at: post.editAt,
    delete_at: post.deleteAt,
    is_pinned: post.isPinned,
    user_id: post.userId,
    channel_id: post.channelId,
    root_id: post.rootId,
    original_id: post.originalId,
    message: post.message,
    type: post.type,
    props: sortKeysDeep(strippedOfIntegrations(post.props)) as Record<string, unknown>,
    hashtags: post.hashtags,
    file_ids: [...post.fileIds],
    pending_post_id: options.pendingPostId ?? '',
    // omitempty in model.Post
    ...(post.hasReactions ? { has_reactions: true } : {}),
    reply_count: store.liveReplies(threadId, post.channelId).length,
    last_reply_at: 0,
    participants: null,
  };
  return withMetadata(store, post, out, options);
}

function withMetadata(store: SandboxStore, post: PostRecord, out: MmPost, options: PostJsonOptions): MmPost {
  if (!options.metadata) return out;
  // PreparePostForClient leaves deleted posts without metadata.
  if (post.deleteAt !== 0) return out;
  const reactions = store.reactions.get(post.id) ?? [];
  out.metadata = reactions.length > 0 ? { reactions: reactions.map((r) => ({ ...r })) } : {};
  return out;
}

export function postListJson(
  store: SandboxStore,
  order: PostRecord[],
  extra: PostRecord[],
  cursors: { next: string; prev: string; hasNext?: boolean },
): MmPostList {
  const posts: Record<string, MmPost> = {};
  for (const post of [...order, ...extra]) posts[post.id] = postJson(store, post, { metadata: true });
  return {
    order: order.map((p) => p.id),
    posts,
    next_post_id: cursors.next,
    prev_post_id: cursors.prev,
    ...(cursors.hasNext === undefined ? {} : { has_next: cursors.hasNext }),
    first_inaccessible_post_time: 0,
  };
}

const DEFAULT_NOTIFY_PROPS: Record<string, string> = {
  channel: 'true',
  comments: 'never',
  desktop: 'mention',
  desktop_sound: 'true',
  email: 'true',
  first_name: 'false',
  mention_keys: '',
  push: 'mention',
  push_status: 'away',
};

/**
 * model.User as the API returns it. Another user's profile is sanitised (no notify_props,
 * no last_password_update, no email_verified — User.SanitizeProfile / ClearNonProfileFields).
 */
export function userJson(user: UserRecord, self: boolean): MmUser {
  return {
    id: user.id,
    create_at: user.createAt,
    update_at: user.updateAt,
    delete_at: user.deleteAt,
    username: user.username,
    auth_data: '',
    auth_service: '',
    email: user.isBot ? '' : `${user.username}@sandbox.invalid`,
    ...(self ? { email_verified: true } : {}),
    nickname: '',
    first_name: '',
    last_name: '',
    position: '',
    roles: user.roles,
    ...(self ? { notify_props: { ...DEFAULT_NOTIFY_PROPS }, last_password_update: user.createAt } : {}),
    locale: 'en',
    timezone: { automaticTimezone: '', manualTimezone: '', useAutomaticTimezone: 'true' },
    is_bot: user.isBot,
    ...(user.isBot ? { bot_description: '' } : {}),
    disable_welcome_email: false,
  };
}

export function channelMemberJson(channelId: string, userId: string, lastUpdateAt: number): MmChannelMember {
  return {
    channel_id: channelId,
    user_id: userId,
    roles: 'channel_user',
    last_viewed_at: 0,
    msg_count: 0,
    mention_count: 0,
    mention_count_root: 0,
    urgent_mention_count: 0,
    msg_count_root: 0,
    notify_props: {
      channel_auto_follow_threads: 'off',
      desktop: 'default',
      email: 'default',
      ignore_channel_mentions: 'default',
      mark_unread: 'all',
      push: 'default',
    },
    last_update_at: lastUpdateAt,
    scheme_guest: false,
    scheme_user: true,
    scheme_admin: false,
    explicit_roles: '',
  };
}

export const reactionJson = (reaction: MmReaction): MmReaction => ({ ...reaction });
