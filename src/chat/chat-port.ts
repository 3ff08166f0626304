/**
 * The chat port: what the bot needs from a chat server, in Mattermost's own field names.
 * `mattermost-rest.ts` implements it over REST v4; the bot logic never sees the wire.
 */
import type { ChatMembership } from '../approvals/directory.js';
import type { ChatFacts, ChatPost, ChatUser } from '../ports/chat.js';

export type { ChatPost, ChatUser };

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

export interface PostPatch {
  message: string;
  /** Replaces the post's props wholesale, as Mattermost does. */
  props: Record<string, unknown>;
}

/** An element of an interactive dialog (model.DialogElement): only what the bot asks for. */
export interface DialogElement {
  display_name: string;
  name: string;
  type: 'text' | 'textarea';
  optional: boolean;
  min_length?: number;
  max_length?: number;
  help_text?: string;
  placeholder?: string;
}

/** `POST /actions/dialogs/open` (model.OpenDialogRequest). */
export interface OpenDialog {
  /** From the click that asks for the dialog; Mattermost accepts it only briefly, once per user. */
  trigger_id: string;
  /** Where Mattermost sends the submission. */
  url: string;
  dialog: {
    callback_id: string;
    title: string;
    introduction_text?: string;
    elements: DialogElement[];
    submit_label: string;
    notify_on_cancel: boolean;
    /** Sent to the person's client and back: authenticate it (see `crypto/action-mac.ts`). */
    state: string;
  };
}

export interface ChatPort extends ChatMembership, ChatFacts {
  me(): Promise<ChatUser>;
  user(id: string): Promise<ChatUser>;
  channel(id: string): Promise<ChatChannel>;
  /** Posts created, edited or deleted after `sinceMs` (server time), oldest change first. */
  postsSince(channelId: string, sinceMs: number): Promise<ChatPost[]>;
  createPost(post: NewPost): Promise<ChatPost>;
  /** `PUT /posts/{id}/patch`: the bot edits its own post (the job's status post). */
  patchPost(id: string, patch: PostPatch): Promise<ChatPost>;
  addReaction(userId: string, postId: string, emoji: string): Promise<void>;
  /** Shows a dialog to the person whose click carried the trigger id (no admin rights needed). */
  openDialog(request: OpenDialog): Promise<void>;
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
