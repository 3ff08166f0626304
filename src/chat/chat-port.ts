/**
 * The chat port: what the bot needs from a chat server, in Mattermost's own field names.
 * `mattermost-rest.ts` implements it over REST v4; the bot logic never sees the wire.
 */
import type { ChatFacts } from '../approvals/recheck-approvals.js';
import type { ChatMembership } from '../approvals/directory.js';

export interface ChatPost {
  id: string;
  create_at: number;
  update_at: number;
  edit_at: number;
  delete_at: number;
  user_id: string;
  channel_id: string;
  /** Thread root post id; '' for a root post. */
  root_id: string;
  /** Set on the copies of old versions that an edit leaves behind (they come back in `since` queries). */
  original_id: string;
  message: string;
  /** '' for a normal user post; `system_*` and others are never commands. */
  type: string;
  props: Record<string, unknown>;
}

export interface ChatUser {
  id: string;
  username: string;
  is_bot: boolean;
  delete_at: number;
}

export interface ChatChannel {
  id: string;
  team_id: string;
  /** O public, P private, D direct, G group message. */
  type: string;
  name: string;
  display_name: string;
}

export interface NewPost {
  channel_id: string;
  message: string;
  root_id?: string;
  props?: Record<string, string>;
}

export interface ChatPort extends ChatMembership, ChatFacts {
  me(): Promise<ChatUser>;
  user(id: string): Promise<ChatUser>;
  channel(id: string): Promise<ChatChannel>;
  /** Posts created, edited or deleted after `sinceMs` (server time), oldest change first. */
  postsSince(channelId: string, sinceMs: number): Promise<ChatPost[]>;
  createPost(post: NewPost): Promise<ChatPost>;
  addReaction(userId: string, postId: string, emoji: string): Promise<void>;
}

/** The thread a post belongs to: its root, or itself when it is a root. */
export const threadOf = (post: ChatPost): string => post.root_id || post.id;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Narrows a decoded post (a WebSocket `data.post` string, a REST body) to the fields we rely on. */
export function asChatPost(v: unknown): ChatPost | null {
  if (!isObject(v)) return null;
  const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : null);
  const num = (k: string) => (typeof v[k] === 'number' && Number.isFinite(v[k]) ? (v[k] as number) : 0);
  const id = str('id');
  const userId = str('user_id');
  const channelId = str('channel_id');
  const message = str('message');
  if (!id || !userId || !channelId || message === null) return null;
  return {
    id,
    create_at: num('create_at'),
    update_at: num('update_at'),
    edit_at: num('edit_at'),
    delete_at: num('delete_at'),
    user_id: userId,
    channel_id: channelId,
    root_id: str('root_id') ?? '',
    original_id: str('original_id') ?? '',
    message,
    type: str('type') ?? '',
    props: isObject(v.props) ? v.props : {},
  };
}
