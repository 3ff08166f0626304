import { appError, invalidParam, permissionError } from './app-error.js';
import { attachmentsEqual, withActionIds } from './attachments.js';
import type { OpenedDialog } from './dialogs.js';
import { broadcast, type Hub } from './hub.js';
import { newId, isValidId } from './ids.js';
import { MembershipEvents } from './membership-events.js';
import { mentionedUserIds } from './mentions.js';
import { postJson } from './serialize.js';
import { TriggerIds } from './trigger-ids.js';
import type { PostRecord, SandboxStore } from './store.js';
import type { MmChannel, MmIncomingWebhook, MmPost, MmReaction } from './types.js';

/** model.PostMessageMaxRunesV2: the limit on a Postgres-backed server. */
export const POST_MESSAGE_MAX_RUNES = 16383;
/** app/post.go pendingPostIDsCacheTTL. */
const PENDING_POST_ID_TTL_MS = 30_000;
/** model.EmojiNameMaxLength. */
const EMOJI_NAME_MAX_LENGTH = 64;
/** Props a client may not set (model.Post.SanitizeProps). */
const SANITIZED_PROPS = ['add_channel_member', 'force_notification'];

export interface AppConfig {
  /** ServiceSettings.EnablePostUsernameOverride (a real server defaults to false). */
  enablePostUsernameOverride: boolean;
  /** ServiceSettings.EnablePostIconOverride (a real server defaults to false). */
  enablePostIconOverride: boolean;
  /** A licence with custom groups: without one, the groups API answers 501 (api4 requireLicense). */
  licensed: boolean;
  /**
   * ServiceSettings.OutgoingIntegrationRequestsTimeout (30 s by default): how long the server
   * waits for an integration, and how long a trigger id stays valid for opening a dialog.
   */
  outgoingTimeoutMs: number;
  /** ServiceSettings.SiteURL, for slash commands' `response_url`. */
  siteUrl: () => string;
}

export interface CreatePostInput {
  channel_id: string;
  message: string;
  root_id?: string;
  props?: Record<string, unknown>;
  pending_post_id?: string;
  type?: string;
  file_ids?: string[];
  create_at?: number;
}

export interface PostPatch {
  message?: string;
  props?: Record<string, unknown>;
  is_pinned?: boolean;
}

/** The post App.UpdatePost receives: what it will become. */
export interface UpdatedPost {
  id: string;
  message: string;
  props: Record<string, unknown>;
  isPinned: boolean;
  hasReactions: boolean;
  fileIds: string[];
}

export interface WebhookPayload {
  text?: unknown;
  username?: unknown;
  icon_url?: unknown;
  channel?: unknown;
  props?: unknown;
  attachments?: unknown;
  type?: unknown;
}

/** A copy of `props` without `keys`. */
const without = (props: Record<string, unknown>, keys: string[]): Record<string, unknown> =>
  Object.fromEntries(Object.entries(props).filter(([key]) => !keys.includes(key)));

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);
const runeLength = (s: string): number => [...s].length;

/** model.ParseHashtags, close enough: `#word` tokens of at least three characters, space-separated. */
function parseHashtags(message: string): string {
  const tags = new Set<string>();
  for (const word of message.split(/[\s,;!?()[\]{}"']+/)) {
    const tag = word.replace(/[.\-_:]+$/, '');
    if (/^#[\p{L}\p{N}][\p{L}\p{N}.\-_]*$/u.test(tag) && runeLength(tag) >= 3) tags.add(tag);
  }
  return [...tags].join(' ');
}

/**
 * The server's application layer (app/post.go, app/reaction.go, app/webhook.go,
 * app/notification.go): the REST handlers and the programmatic API both go through it, so both
 * produce the same posts and the same WebSocket events.
 */
export class SandboxApp {
  /** The server's signing key for trigger ids. */
  readonly triggers: TriggerIds;
  /** Dialogs opened for each user, newest last: a test's view of what clients were told to show. */
  readonly openedDialogs = new Map<string, OpenedDialog[]>();
  /** Ephemeral posts sent to each user, newest last (never stored by a real server). */
  readonly ephemeralPosts = new Map<string, MmPost[]>();
  /** Channel and group membership and account changes, with their events. */
  readonly members: MembershipEvents;

  constructor(
    readonly store: SandboxStore,
    readonly hub: Hub,
    readonly config: AppConfig,
  ) {
    this.triggers = new TriggerIds(store.now);
    this.members = new MembershipEvents(store, hub);
  }

  post(id: string): PostRecord | undefined {
    return this.store.posts.get(id);
  }

  /** Store GetSingle: live posts only (edit-history copies are deleted rows). */
  singlePost(id: string): PostRecord {
    const post = this.store.posts.get(id);
    if (!post || post.deleteAt !== 0) throw appError('app.post.get.app_error', 404);
    return post;
  }

  channelOrNotFound(id: string): MmChannel {
    const channel = this.store.channels.get(id);
    if (!channel) throw appError('app.channel.get.existing.app_error', 404);
    return channel;
  }

  /** api4 createPost → App.CreatePostAsUser: the caller must be able to post in the channel. */
  createPostAsUser(userId: string, input: CreatePostInput, setOnline = true): { post: MmPost } {
    if (!this.store.hasChannelPermission(userId, input.channel_id)) throw permissionError();
    const channel = this.store.channels.get(input.channel_id);
    if (!channel) throw appError('api.context.invalid_param.app_error', 400, { Name: 'post.channel_id' });
    if ((input.type ?? '').startsWith('system_')) throw invalidParam('post.type');
    const duplicate = this.deduplicate(userId, input.pending_post_id ?? '');
    if (duplicate) return { post: postJson(this.store, duplicate, { metadata: true }) };
    const saved = this.createPost(userId, channel, input, { setOnline });
    if (input.pending_post_id) {
      this.store.pendingPostIds.set(input.pending_post_id, { postId: saved.id, at: this.store.now() });
    }
    return {
      post: postJson(this.store, saved, { metadata: true, pendingPostId: input.pending_post_id ?? '' }),
    };
  }

  /** App.deduplicateCreatePost: a pending_post_id seen in the last 30 s returns the same post. */
  private deduplicate(userId: string, pendingPostId: string): PostRecord | undefined {
    if (pendingPostId === '') return undefined;
    const seen = this.store.pendingPostIds.get(pendingPostId);
    if (!seen || this.store.now() - seen.at > PENDING_POST_ID_TTL_MS) return undefined;
    const post = this.store.posts.get(seen.postId);
    if (!post || post.deleteAt !== 0) return undefined;
    const channel = this.store.channels.get(post.channelId);
    // GetPostIfAuthorized failing with 403 means "ignore the pending id and post again".
    if (!channel || !this.store.canReadChannel(userId, channel)) return undefined;
    return post;
  }

  /** App.CreatePost: validation, props, save, then the `posted` event. */
  createPost(
    userId: string,
    channel: MmChannel,
    input: CreatePostInput,
    options: { setOnline: boolean; fromWebhook?: boolean },
  ): PostRecord {
    const user = this.store.users.get(userId);
    if (!user) throw appError('app.user.missing_account.const', 404);
    let props = isRecord(input.props) ? without(input.props, SANITIZED_PROPS) : {};
    if (user.isBot) props.from_bot = 'true';
    if (options.fromWebhook) props.from_webhook = 'true';
    props = withActionIds(props);

    const rootId = input.root_id ?? '';
    let root: PostRecord | undefined;
    if (rootId !== '') {
      root = this.store.posts.get(rootId);
      if (!root || root.deleteAt !== 0) throw appError('api.post.create_post.root_id.app_error', 400);
      // CreatePostAsUser turns this 500 into a 400.
      if (root.channelId !== channel.id)
        throw appError('api.post.create_post.channel_root_id.app_error', 400);
      if (root.rootId !== '') throw appError('api.post.create_post.root_id.app_error', 400);
    }
    const type = input.type ?? '';
    if (type !== '' && !type.startsWith('custom_') && type !== 'slack_attachment' && type !== 'me') {
      throw appError('model.post.is_valid.type.app_error', 400);
    }
    this.checkLength(input.message);

    const createAt = input.create_at && this.store.isSystemAdmin(userId) ? input.create_at : this.store.now();
    const post: PostRecord = {
      id: newId(),
      createAt,
      updateAt: createAt,
      editAt: 0,
      deleteAt: 0,
      isPinned: false,
      userId,
      channelId: channel.id,
      rootId,
      originalId: '',
      message: input.message,
      type,
      props,
      hashtags: parseHashtags(input.message),
      fileIds: [...new Set(input.file_ids ?? [])],
      hasReactions: false,
    };
    this.store.addPost(post);
    // sqlstore SaveMultiple: a reply moves its root's UpdateAt; the channel's LastPostAt moves too.
    if (root) root.updateAt = this.store.after(root.updateAt);
    channel.last_post_at = Math.max(channel.last_post_at, createAt);
    channel.total_msg_count++;
    if (rootId === '') {
      channel.last_root_post_at = Math.max(channel.last_root_post_at, createAt);
      channel.total_msg_count_root++;
    }
    this.publishPosted(post, channel, options.setOnline, input.pending_post_id ?? '');
    return post;
  }

  private checkLength(message: string): void {
    const length = runeLength(message);
    if (length > POST_MESSAGE_MAX_RUNES) {
      throw appError('model.post.is_valid.message_length.app_error', 400, {
        Length: length,
        MaxLength: POST_MESSAGE_MAX_RUNES,
      });
    }
  }

  /** app/notification.go SendNotifications: the `posted` event and its per-user `mentions`. */
  private publishPosted(
    post: PostRecord,
    channel: MmChannel,
    setOnline: boolean,
    pendingPostId: string,
  ): void {
    const sender = this.store.users.get(post.userId)!;
    const fromWebhook = post.props.from_webhook === 'true';
    const members = this.store.channelMemberIds(channel.id).map((id) => ({
      id,
      username: this.store.users.get(id)?.username ?? '',
      online: this.hub.connections(id).length > 0,
    }));
    const mentions = mentionedUserIds({
      message: post.message,
      senderId: post.userId,
      channelType: channel.type,
      channelName: channel.name,
      members,
      fromWebhook,
      allowChannelMentions: post.type === '' && this.store.hasChannelPermission(post.userId, channel.id),
    });
    const override = post.props.override_username;
    const senderName =
      this.config.enablePostUsernameOverride &&
      channel.type !== 'D' &&
      fromWebhook &&
      typeof override === 'string'
        ? override
        : `@${sender.username}`;
    let displayName = channel.display_name;
    if (channel.type === 'D') displayName = `@${sender.username}`;
    if (channel.type === 'G') {
      displayName = members
        .map((m) => m.username)
        .sort()
        .join(', ');
    }
    const mentioned = new Set(mentions);
    this.hub.publish({
      event: 'posted',
      data: {
        channel_display_name: displayName,
        channel_name: channel.name,
        channel_type: channel.type,
        post: JSON.stringify(postJson(this.store, post, { metadata: true, pendingPostId })),
        sender_name: senderName,
        set_online: setOnline,
        team_id: channel.team_id,
      },
      broadcast: broadcast({ channel_id: channel.id }),
      forUser: (userId) => (mentioned.has(userId) ? { mentions: JSON.stringify([userId]) } : undefined),
    });
  }

  /**
   * api4 patchPost (postPatchChecks) → App.PatchPost → Post.Patch → App.UpdatePost. A missing or
   * deleted post is a permission error, not a 404, because postPatchChecks asks first. The author
   * needs edit_post, anyone else edit_others_posts (system admins here). `props`, when given,
   * replace the post's props wholesale, as Post.Patch does: a patch that leaves out `from_bot`
   * drops it.
   */
  patchPost(userId: string, postId: string, patch: PostPatch): MmPost {
    const post = this.store.posts.get(postId);
    if (!post || post.deleteAt !== 0 || post.originalId !== '') throw permissionError();
    const own = post.userId === userId;
    if (own ? !this.store.hasChannelPermission(userId, post.channelId) : !this.store.isSystemAdmin(userId)) {
      throw permissionError();
    }
    return this.updatePost({
      id: postId,
      message: patch.message ?? post.message,
      props: patch.props ?? post.props,
      isPinned: patch.is_pinned ?? post.isPinned,
      hasReactions: post.hasReactions,
      fileIds: post.fileIds,
    });
  }

  /**
   * App.UpdatePost(safeUpdate=false) and the store's Post.Update: the message, props, pin and
   * files become the received ones; edit_at moves when the message, the files or the attachments
   * (Post.AttachmentsEqual) change; the old version is kept as a deleted row; `post_edited` goes
   * to the channel with the post as clients see it (integrations stripped).
   */
  updatePost(received: UpdatedPost): MmPost {
    const post = this.store.posts.get(received.id);
    if (!post || post.originalId !== '') throw appError('app.post.get.app_error', 404);
    if (post.deleteAt !== 0) {
      throw appError('api.post.update_post.permissions_details.app_error', 400, { PostId: received.id });
    }
    if (post.type.startsWith('system_')) throw appError('api.post.update_post.system_message.app_error', 400);
    this.checkLength(received.message);
    const props = withActionIds(without(received.props, SANITIZED_PROPS));
    const fileIds = [...new Set(received.fileIds)];
    const updateAt = this.store.after(post.updateAt);
    // sqlstore Post.Update keeps the old version as a deleted row pointing at the post.
    this.store.addPost({
      ...post,
      props: { ...post.props },
      id: newId(),
      originalId: post.id,
      deleteAt: updateAt,
      updateAt,
    });
    const editedBefore = post.editAt;
    if (received.message !== post.message) {
      post.message = received.message;
      post.editAt = this.store.now();
      post.hashtags = parseHashtags(received.message);
    }
    const filesChanged = fileIds.join(',') !== post.fileIds.join(',');
    if (post.editAt === editedBefore && (filesChanged || !attachmentsEqual(post.props, props))) {
      post.editAt = this.store.now();
    }
    post.props = props;
    post.fileIds = fileIds;
    post.isPinned = received.isPinned;
    post.hasReactions = received.hasReactions;
    post.updateAt = updateAt;
    if (post.rootId !== '') {
      const root = this.store.posts.get(post.rootId);
      if (root) root.updateAt = this.store.after(root.updateAt);
    }
    const json = postJson(this.store, post, { metadata: true });
    this.hub.publish({
      event: 'post_edited',
      data: { post: JSON.stringify(json) },
      broadcast: broadcast({ channel_id: post.channelId }),
    });
    return json;
  }

  /** api4 deletePost → App.DeletePost: the post and its whole thread are soft-deleted. */
  deletePost(userId: string, postId: string): void {
    const post = this.singlePost(postId);
    const own = post.userId === userId;
    if (own ? !this.store.hasChannelPermission(userId, post.channelId) : !this.store.isSystemAdmin(userId)) {
      throw permissionError();
    }
    // The event carries the post as it was read before the delete (delete_at still 0).
    const before = JSON.stringify(postJson(this.store, post));
    const time = this.store.now();
    for (const row of this.store.channelPosts.get(post.channelId) ?? []) {
      if (row.id !== post.id && row.rootId !== post.id) continue;
      row.deleteAt = Math.max(time, row.updateAt + 1);
      row.updateAt = row.deleteAt;
      row.props = { ...row.props, deleteBy: userId };
    }
    this.hub.publish({
      event: 'post_deleted',
      data: { post: before },
      broadcast: broadcast({ channel_id: post.channelId, contains_sanitized_data: true }),
    });
    this.hub.publish({
      event: 'post_deleted',
      data: { delete_by: userId, post: before },
      broadcast: broadcast({ channel_id: post.channelId, contains_sensitive_data: true }),
    });
  }

  /** api4 saveReaction → App.SaveReactionForPost. */
  saveReaction(
    userId: string,
    input: { user_id?: unknown; post_id?: unknown; emoji_name?: unknown },
  ): MmReaction {
    const reactionUser = typeof input.user_id === 'string' ? input.user_id : '';
    const postId = typeof input.post_id === 'string' ? input.post_id : '';
    const emoji = typeof input.emoji_name === 'string' ? input.emoji_name : '';
    if (
      !isValidId(reactionUser) ||
      !isValidId(postId) ||
      emoji === '' ||
      emoji.length > EMOJI_NAME_MAX_LENGTH
    ) {
      throw appError('api.reaction.save_reaction.invalid.app_error', 400);
    }
    if (reactionUser !== userId) throw appError('api.reaction.save_reaction.user_id.app_error', 403);
    const target = this.store.posts.get(postId);
    if (!target || !this.store.hasChannelPermission(userId, target.channelId)) throw permissionError();
    const post = this.singlePost(postId);
    // The sandbox has no system-emoji table: any well-formed name is accepted.
    if (!/^[a-zA-Z0-9\-+_]+$/.test(emoji))
      throw appError('api.reaction.save_reaction.invalid.app_error', 400);
    const now = this.store.now();
    const list = this.store.reactions.get(post.id) ?? [];
    let reaction = list.find((r) => r.user_id === userId && r.emoji_name === emoji);
    if (reaction) {
      reaction.update_at = now;
      reaction.delete_at = 0;
    } else {
      reaction = {
        user_id: userId,
        post_id: post.id,
        emoji_name: emoji,
        create_at: now,
        update_at: now,
        delete_at: 0,
        remote_id: '',
        channel_id: post.channelId,
      };
      list.push(reaction);
      this.store.reactions.set(post.id, list);
    }
    // sqlstore Reaction.Save: the post gets HasReactions and a new UpdateAt.
    post.hasReactions = true;
    post.updateAt = this.store.after(post.updateAt);
    const json = { ...reaction };
    this.hub.publish({
      event: 'reaction_added',
      data: { reaction: JSON.stringify(json) },
      broadcast: broadcast({ channel_id: post.channelId }),
    });
    return json;
  }

  /** App.HandleIncomingWebhook → App.CreateWebhookPost. */
  webhookPost(hook: MmIncomingWebhook, payload: WebhookPayload): void {
    const text = typeof payload.text === 'string' ? payload.text : '';
    const attachments = Array.isArray(payload.attachments) ? payload.attachments : undefined;
    if (text === '' && !attachments) throw appError('web.incoming_webhook.text.app_error', 400);
    const channel = this.webhookChannel(hook, payload.channel);
    const username =
      typeof payload.username === 'string' && payload.username !== '' ? payload.username : hook.username;
    const iconUrl =
      typeof payload.icon_url === 'string' && payload.icon_url !== '' ? payload.icon_url : hook.icon_url;
    const props: Record<string, unknown> = {};
    if (this.config.enablePostUsernameOverride)
      props.override_username = username !== '' ? username : 'webhook';
    if (this.config.enablePostIconOverride && iconUrl !== '') props.override_icon_url = iconUrl;
    if (isRecord(payload.props)) {
      for (const [key, value] of Object.entries(payload.props)) {
        if (key === 'override_icon_url' || key === 'override_username' || key === 'from_webhook') continue;
        props[key] = value;
      }
    }
    if (attachments) props.attachments = attachments;
    const type = typeof payload.type === 'string' ? payload.type : '';
    if (type.startsWith('system_')) throw invalidParam('post.type');
    // Slack-style <url|text> links become Markdown links.
    const message = text.replace(/<([^\n<|>]+)\|([^\n>]+)>/g, '[$2]($1)');
    // splitWebhookPost: an over-long message becomes several posts.
    const runes = [...message];
    const chunks: string[] = [];
    for (let i = 0; i < runes.length || chunks.length === 0; i += POST_MESSAGE_MAX_RUNES) {
      chunks.push(runes.slice(i, i + POST_MESSAGE_MAX_RUNES).join(''));
    }
    for (const chunk of chunks) {
      this.createPost(
        hook.user_id,
        channel,
        { channel_id: channel.id, message: chunk, props, type },
        {
          setOnline: true,
          fromWebhook: true,
        },
      );
    }
  }

  private webhookChannel(hook: MmIncomingWebhook, requested: unknown): MmChannel {
    if (typeof requested !== 'string' || requested === '' || hook.channel_locked) {
      return this.channelOrNotFound(hook.channel_id);
    }
    if (requested.startsWith('@')) {
      const other = this.store.userByUsername(requested.slice(1));
      if (!other) throw appError('web.incoming_webhook.channel.app_error', 404);
      return this.store.createDirectChannel(hook.user_id, other.id);
    }
    for (const channel of this.store.channels.values()) {
      if (channel.team_id === hook.team_id && channel.name === requested) return channel;
    }
    throw appError('web.incoming_webhook.channel.app_error', 404);
  }

  /** api4 createEphemeralPost: only system admins have create_post_ephemeral. */
  createEphemeralPost(userId: string, body: unknown): MmPost {
    if (!isRecord(body)) throw invalidParam('body');
    if (typeof body.user_id !== 'string' || body.user_id === '') throw invalidParam('user_id');
    if (!isRecord(body.post)) throw invalidParam('post');
    if (!this.store.isSystemAdmin(userId)) throw permissionError();
    const input = body.post;
    return this.sendEphemeralPost(body.user_id, {
      userId,
      channelId: typeof input.channel_id === 'string' ? input.channel_id : '',
      rootId: typeof input.root_id === 'string' ? input.root_id : '',
      message: typeof input.message === 'string' ? input.message : '',
      props: isRecord(input.props) ? input.props : {},
    });
  }

  /**
   * App.SendEphemeralPost: a post that is never stored, shown to one user only: type
   * `system_ephemeral`, action ids generated, sent as `ephemeral_message` to that user's
   * connections (broadcast channel_id + user_id), integrations stripped.
   */
  sendEphemeralPost(
    toUserId: string,
    i: { userId: string; channelId: string; rootId: string; message: string; props: Record<string, unknown> },
  ): MmPost {
    const post: PostRecord = {
      id: newId(),
      createAt: this.store.now(),
      updateAt: 0,
      editAt: 0,
      deleteAt: 0,
      isPinned: false,
      userId: i.userId,
      channelId: i.channelId,
      rootId: i.rootId,
      originalId: '',
      message: i.message,
      type: 'system_ephemeral',
      props: withActionIds({ ...i.props }),
      hashtags: '',
      fileIds: [],
      hasReactions: false,
    };
    const json = postJson(this.store, post, { metadata: true });
    this.ephemeralPosts.set(toUserId, [...(this.ephemeralPosts.get(toUserId) ?? []), json]);
    this.hub.publish({
      event: 'ephemeral_message',
      data: { post: JSON.stringify(json) },
      broadcast: broadcast({ channel_id: post.channelId, user_id: toUserId }),
    });
    return json;
  }
}
