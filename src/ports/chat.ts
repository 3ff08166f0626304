/**
 * What the engine may ask of the chat server, and the shapes of its answers, in Mattermost's
 * own field names. The chat port (`chat/chat-port.ts`) and its Mattermost implementation
 * provide it; the engine never sees the wire.
 */

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

/**
 * What the engine asks the chat server at the moment it decides, bypassing every cache
 * (SPEC section 2: an approval counts only if it holds "at the moment quorum is evaluated").
 * Absent in API-only mode, where no approval was posted in chat. Both throw a `ChatError` when
 * Mattermost cannot answer: the caller's transaction rolls back and nothing is minted.
 */
export interface ChatFacts {
  /** The post as Mattermost has it now; null once it is deleted (Mattermost answers 404). */
  post(id: string): Promise<ChatPost | null>;
  /** The account as Mattermost has it now (`delete_at` > 0: deactivated); null if there is none. */
  freshUser(id: string): Promise<ChatUser | null>;
}
