import mattermost from '@mattermost/client';
import type { Logger } from 'pino';
import {
  asChatPost,
  type ChatChannel,
  type ChatPort,
  type ChatPost,
  type ChatUser,
  type NewPost,
  type OpenDialog,
  type PostPatch,
} from './chat-port.js';
import { backoffMs, ChatError, chatErrorFrom } from '../ports/chat-error.js';
import { ChatCache } from './chat-cache.js';

const { Client4 } = mattermost;

/** No Mattermost REST call waits longer than this. */
export const REQUEST_TIMEOUT_MS = 20_000;
type Client = InstanceType<typeof Client4>;

interface FetchResult {
  response: Response;
  headers: Map<string, string>;
  data: unknown;
}
type Fetcher = (url: string, options: Record<string, unknown>) => Promise<FetchResult>;

/**
 * Client4 resolves to the body and, on failure, throws a `ClientError` without the HTTP status
 * or headers (a plain-text 429 arrives with an empty message). It has no response hook, so we
 * wrap its single fetch function: every call then either returns the body or throws a
 * `ChatError` that knows the status and the server's `Retry-After`.
 */
function classifyingClient(url: string, token: string): Client {
  const client = new Client4();
  client.setUrl(url.replace(/\/+$/, ''));
  client.setToken(token);
  client.setIncludeCookies(false);
  client.setUserAgent('claw-approvals');
  const internals = client as unknown as { doFetchWithResponse: Fetcher };
  const inner = internals.doFetchWithResponse;
  internals.doFetchWithResponse = async (target, options) => {
    let result: FetchResult;
    try {
      // Bounded: an answer that never comes must not outlive an outbox lease (30 s) and let
      // another replica send the same post while this one still waits.
      result = await inner(target, {
        ...options,
        ignoreStatus: true,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      throw new ChatError('network', `cannot reach Mattermost: ${detail}`, null, null, null, { cause: err });
    }
    if (result.response.ok) return result;
    const get = (name: string) => result.response.headers.get(name);
    throw chatErrorFrom(result.response.status, get, result.data);
  };
  return client;
}

export interface RestOptions {
  url: string;
  token: string;
  log: Logger;
  /** Tries per call for retryable failures (429, 5xx, network); each waits per backoff or Retry-After. */
  attempts?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Called with every auth failure, so readiness can turn red. */
  onUnauthorized?: (err: ChatError) => void;
  onSuccess?: () => void;
  /**
   * MATTERMOST_FRESH_SECONDS: how long an answer about a membership, an account or an approval
   * post is reused while the bot's WebSocket (`stream`) reports nothing that changes it. 0 (the
   * default here; `serve` passes its configured value) asks Mattermost every time.
   */
  freshSeconds?: number;
  /** At most this many answers are kept. */
  cacheEntries?: number;
  /** The cache's clock (tests). */
  now?: () => number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The chat port over Mattermost REST v4 (`@mattermost/client`), with retries and a user cache. */
export class MattermostRest implements ChatPort {
  private readonly client: Client;
  private readonly users = new Map<string, { user: ChatUser; at: number }>();
  private readonly channels = new Map<string, ChatChannel>();
  private readonly attempts: number;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  /** Answers reused while current; the bot's WebSocket feeds it (`stream`). */
  readonly cache: ChatCache;

  constructor(private readonly opts: RestOptions) {
    this.client = classifyingClient(opts.url, opts.token);
    this.attempts = opts.attempts ?? 4;
    this.minBackoffMs = opts.minBackoffMs ?? 250;
    this.maxBackoffMs = opts.maxBackoffMs ?? 10_000;
    this.cache = new ChatCache({
      freshMs: Math.max(0, opts.freshSeconds ?? 0) * 1000,
      ...(opts.cacheEntries !== undefined ? { maxEntries: opts.cacheEntries } : {}),
      ...(opts.now ? { now: opts.now } : {}),
    });
  }

  get stream(): ChatCache {
    return this.cache;
  }

  /** Runs one REST call, retrying what the server says is temporary. */
  async call<T>(what: string, fn: (c: Client) => Promise<T>, attempts = this.attempts): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await fn(this.client);
        this.opts.onSuccess?.();
        return result;
      } catch (err) {
        const e =
          err instanceof ChatError
            ? err
            : new ChatError('network', `Mattermost call failed: ${String(err)}`, null, null, null, {
                cause: err,
              });
        if (e.kind === 'unauthorized') this.opts.onUnauthorized?.(e);
        if (!e.retryable || attempt + 1 >= attempts) throw e;
        const wait = Math.min(
          this.maxBackoffMs * 6,
          e.retryAfterMs ?? backoffMs(attempt, this.minBackoffMs, this.maxBackoffMs),
        );
        this.opts.log.warn(
          { call: what, kind: e.kind, status: e.status, waitMs: wait },
          'Mattermost call failed; retrying',
        );
        await sleep(wait);
      }
    }
  }

  async me(): Promise<ChatUser> {
    const u = toUser(await this.call('getMe', (c) => c.getMe()));
    this.cache.setBotUserId(u.id);
    return u;
  }

  async user(id: string): Promise<ChatUser> {
    const hit = this.users.get(id);
    if (hit && Date.now() - hit.at < 10 * 60_000) return hit.user;
    const user = toUser(await this.call('getUser', (c) => c.getUser(id)));
    this.users.set(id, { user, at: Date.now() });
    return user;
  }

  /**
   * `GET /users/{id}`, or its answer from the last MATTERMOST_FRESH_SECONDS if no `user_updated`
   * for that account came since (Mattermost sends `user_updated`, deactivation included, to every
   * non-guest connection: App.sendUpdatedUserEvent); null if there is no such user.
   */
  async freshUser(id: string): Promise<ChatUser | null> {
    const user = await this.cache.get(
      `user:${id}`,
      async () => {
        try {
          const fetched = toUser(await this.call('getUser', (c) => c.getUser(id)));
          this.users.set(id, { user: fetched, at: Date.now() });
          return fetched;
        } catch (err) {
          if (err instanceof ChatError && err.kind === 'not_found') return null;
          throw err;
        }
      },
      () => ({ scope: { kind: 'account' } }),
    );
    return user ? { ...user } : null;
  }

  /**
   * `GET /posts/{id}` as it is now. Mattermost answers 404 for a deleted post to anyone without
   * manage_system (api4 getPost → GetPostIfAuthorized with include_deleted=false): that is null.
   */
  async post(id: string): Promise<ChatPost | null> {
    const post = await this.cache.get(
      `post:${id}`,
      async () => {
        try {
          const fetched = asChatPost(await this.call('getPost', (c) => c.getPost(id)));
          if (!fetched) throw new ChatError('rejected', 'Mattermost returned an unexpected post');
          return fetched;
        } catch (err) {
          if (err instanceof ChatError && err.kind === 'not_found') return null;
          throw err;
        }
      },
      // Kept only as long as the bot hears the channel's post_edited and post_deleted; a deleted
      // post (null) is not kept at all.
      (p) => (p ? { scope: { kind: 'channel', channelId: p.channel_id }, rootId: p.root_id } : null),
    );
    if (post) await this.learnChannel(post.channel_id);
    return post ? structuredClone(post) : null;
  }

  /**
   * Whether the bot hears a channel's events is itself an answer from Mattermost (the bot's own
   * channel membership); asked before the first question about a member of that channel (after
   * the first about a post in it, whose channel is known only from the answer), so that answer
   * and the next can be kept. Its failure costs nothing but that.
   */
  private async learnChannel(channelId: string): Promise<void> {
    const bot = this.cache.botUserId;
    if (!this.cache.enabled || bot === null || this.cache.hearsChannel(channelId)) return;
    await this.isChannelMember(bot, channelId).catch(() => false);
  }

  async channel(id: string): Promise<ChatChannel> {
    const hit = this.channels.get(id);
    if (hit) return hit;
    const ch = await this.call('getChannel', (c) => c.getChannel(id));
    const channel: ChatChannel = {
      id: ch.id,
      team_id: ch.team_id ?? '',
      type: ch.type,
      name: ch.name,
      display_name: ch.display_name,
    };
    this.channels.set(id, channel);
    return channel;
  }

  async postsSince(channelId: string, sinceMs: number): Promise<ChatPost[]> {
    const list = await this.call('getPostsSince', (c) => c.getPostsSince(channelId, sinceMs));
    const byId = list.posts ?? {};
    // `order` is newest first: reversed, posts changed in the same millisecond keep their order.
    const ids = [...new Set([...(list.order ?? [])].reverse().concat(Object.keys(byId)))];
    const posts = ids.flatMap((id) => {
      const post = asChatPost(byId[id]);
      // Thread roots come along for context even when unchanged: they are not news.
      return post && post.channel_id === channelId && post.update_at > sinceMs ? [post] : [];
    });
    return posts.sort((a, b) => a.update_at - b.update_at || a.create_at - b.create_at);
  }

  async createPost(post: NewPost): Promise<ChatPost> {
    // One try here: the outbox owns retries, and checks for an earlier success before resending.
    const created = await this.call('createPost', (c) => c.createPost(post), 1);
    const parsed = asChatPost(created);
    if (!parsed) throw new ChatError('rejected', 'Mattermost returned an unexpected post');
    return parsed;
  }

  async patchPost(id: string, patch: PostPatch): Promise<ChatPost> {
    // One try, like createPost: the outbox retries, and a patch applied twice is the same edit.
    const patched = await this.call('patchPost', (c) => c.patchPost({ id, ...patch }), 1);
    const parsed = asChatPost(patched);
    if (!parsed) throw new ChatError('rejected', 'Mattermost returned an unexpected post');
    return parsed;
  }

  async addReaction(userId: string, postId: string, emoji: string): Promise<void> {
    await this.call('addReaction', (c) => c.addReaction(userId, postId, emoji), 1);
  }

  async openDialog(request: OpenDialog): Promise<void> {
    // Client4 has no method for this route; its fetch (wrapped above) still classifies failures.
    // One try: a trigger id expires within seconds, and the person can click again.
    await this.call(
      'openDialog',
      (c) =>
        (
          c as unknown as { doFetch: (url: string, o: { method: string; body: string }) => Promise<unknown> }
        ).doFetch(`${c.getBaseRoute()}/actions/dialogs/open`, {
          method: 'post',
          body: JSON.stringify(request),
        }),
      1,
    );
  }

  /**
   * Membership through a `groups.json` delegation. A refusal that will not go away (the bot is
   * not in that channel, the server has no licence for groups) proves nothing, so it counts as
   * "not a member", never as a member, and is reported once; a busy or unreachable server is an
   * error, so the decision waits instead of being made on a guess.
   */
  async isChannelMember(userId: string, channelId: string): Promise<boolean> {
    // The bot's own membership first: an answer is kept only if the channel was heard when it was asked.
    if (userId !== this.cache.botUserId) await this.learnChannel(channelId);
    return this.cache.get(
      ChatCache.channelKey(channelId, userId),
      async () => {
        try {
          await this.call('getChannelMember', (c) => c.getChannelMember(channelId, userId), 2);
          return true;
        } catch (err) {
          if (err instanceof ChatError && err.kind === 'not_found') return false;
          return this.unprovable(err, `channel ${channelId}`, 'add the bot account to that channel');
        }
      },
      // user_added / user_removed reach the channel's members: kept while the bot is one of them.
      () => ({ scope: { kind: 'channel', channelId } }),
    );
  }

  /**
   * Kept for `GROUP_FRESH_MS` (5 s) at most, or MATTERMOST_FRESH_SECONDS if lower: Mattermost
   * sends group_member_add and group_member_delete only to the member concerned
   * (App.publishGroupMemberEvent), so the bot never hears of anyone else's.
   */
  async isGroupMember(userId: string, groupId: string): Promise<boolean> {
    return this.cache.get(
      `group:${groupId}:${userId}`,
      () => this.askGroupMember(userId, groupId),
      () => ({ scope: { kind: 'group' } }),
    );
  }

  private async askGroupMember(userId: string, groupId: string): Promise<boolean> {
    const perPage = 200;
    try {
      for (let page = 0; page < 50; page++) {
        const members = await this.call(
          'getProfilesInGroup',
          (c) => c.getProfilesInGroup(groupId, page, perPage),
          2,
        );
        if (members.some((m) => m.id === userId)) return true;
        if (members.length < perPage) return false;
      }
    } catch (err) {
      return this.unprovable(
        err,
        `user group ${groupId}`,
        'user groups need a licensed server; list user ids instead',
      );
    }
    throw new ChatError('rejected', `group ${groupId} has too many members to check`);
  }

  private readonly reported = new Set<string>();

  private unprovable(err: unknown, what: string, hint: string): false {
    if (!(err instanceof ChatError) || err.retryable || err.kind === 'unauthorized') throw err;
    if (!this.reported.has(what)) {
      this.reported.add(what);
      this.opts.log.warn(
        { delegation: what, status: err.status, serverErrorId: err.serverErrorId, hint },
        'Mattermost will not say who belongs to a groups.json delegation; nobody counts through it',
      );
    }
    return false;
  }
}

function toUser(u: { id: string; username: string; is_bot?: boolean; delete_at?: number }): ChatUser {
  return { id: u.id, username: u.username, is_bot: u.is_bot === true, delete_at: u.delete_at ?? 0 };
}
