import type { ChatPort, ChatPost, NewPost } from '../../src/chat/chat-port.js';
import { OUTBOX_KEY_PROP } from '../../src/chat/outbox-delivery.js';
import { enqueuePost } from '../../src/chat/outbox.js';
import type { TestEngine } from '../helpers/engine.js';
import { OPS } from '../helpers/engine.js';

export const BOT = 'botbotbotbotbotbotbotbotbo';

/**
 * A Mattermost that keeps the posts it is sent (findable by their outbox key, as on the real
 * server). `onCreate` runs before a post is stored: it may hold the answer or throw a refusal;
 * `onStored` runs once the post is stored and before the answer (a test can hold the answer
 * there, or wait for other requests to arrive); `onUser` runs before a user lookup (the name
 * rendering before a post or an edit).
 */
export function fakeMattermost(
  hooks: {
    onCreate?: (p: NewPost) => Promise<void>;
    onStored?: (post: ChatPost) => Promise<void>;
    onUser?: (id: string) => Promise<void>;
    onPatch?: (id: string, message: string) => Promise<void>;
  } = {},
) {
  const posts: ChatPost[] = [];
  const patches: string[] = [];
  let n = 0;
  const chat = {
    async user(id: string) {
      await hooks.onUser?.(id);
      return { id, username: `u${id.slice(0, 4)}`, delete_at: 0, is_bot: false };
    },
    async createPost(p: NewPost): Promise<ChatPost> {
      await hooks.onCreate?.(p);
      n += 1;
      const post: ChatPost = {
        id: `post${String(n).padStart(22, '0')}`,
        channel_id: p.channel_id,
        root_id: p.root_id ?? '',
        user_id: BOT,
        message: p.message,
        type: '',
        props: (p.props ?? {}) as Record<string, unknown>,
        create_at: Date.now(),
        update_at: Date.now(),
        edit_at: 0,
        delete_at: 0,
        original_id: '',
      };
      posts.push(post);
      await hooks.onStored?.(post);
      return post;
    },
    async addReaction() {},
    async patchPost(id: string, patch: { message?: string }) {
      await hooks.onPatch?.(id, patch.message ?? '');
      patches.push(patch.message ?? '');
      return { id };
    },
    async postsSince(channelId: string) {
      return posts.filter((p) => p.channel_id === channelId);
    },
  };
  return { chat: chat as unknown as ChatPort, posts, patches };
}

export const keyOf = (p: { props?: Record<string, unknown> }) => String(p.props?.[OUTBOX_KEY_PROP]);

/** A gate a fake server's answer waits at until the test opens it. */
export function gate() {
  let open: () => void = () => undefined;
  const opened = new Promise<void>((r) => (open = r));
  let reachedNow: () => void = () => undefined;
  const reached = new Promise<void>((r) => (reachedNow = r));
  return {
    opened,
    reached,
    open,
    /** Marks the gate reached and waits until it opens. */
    async pass() {
      reachedNow();
      await opened;
    },
  };
}

/** Commits one post in a thread of the ops channel (a reply the bot queued). */
export function commitPost(e: TestEngine, key: string, rootId: string | null, message = key) {
  return e.ctx.db
    .transaction()
    .execute((trx) =>
      enqueuePost(trx, { key, jobId: null, channelId: OPS.channel, rootId, message }, e.clock()),
    );
}

export const outboxRow = (e: TestEngine, key: string) =>
  e.ctx.db.selectFrom('outbox').selectAll().where('dedupe_key', '=', key).executeTakeFirstOrThrow();
