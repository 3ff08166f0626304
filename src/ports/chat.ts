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
 * What the engine asks the chat server at the moment it decides (SPEC section 2: an approval
 * counts only if it holds "at the moment quorum is evaluated"). The Mattermost implementation
 * answers from Mattermost, or from an answer it got within MATTERMOST_FRESH_SECONDS that its event
 * stream has not contradicted since (`chat/chat-cache.ts`); 0 asks every time. Absent in API-only
 * mode, where no approval was posted in chat. Both throw a `ChatError` when Mattermost cannot
 * answer: the caller's transaction rolls back and nothing is minted.
 */
export interface ChatFacts {
  /** The post as Mattermost has it now; null once it is deleted (Mattermost answers 404). */
  post(id: string): Promise<ChatPost | null>;
  /** The account as Mattermost has it now (`delete_at` > 0: deactivated); null if there is none. */
  freshUser(id: string): Promise<ChatUser | null>;
  /**
   * Told what the bot's WebSocket hears, when the implementation keeps answers between calls
   * (`chat/chat-cache.ts`): an answer is only reused while the stream is unbroken and no event
   * says it changed. Absent: every call asks Mattermost.
   */
  readonly stream?: ChatStreamListener | undefined;
}

/** One event as it came off Mattermost's WebSocket (`data` values are often JSON strings). */
export interface ChatStreamEvent {
  event: string;
  data: Record<string, unknown>;
  broadcast: Record<string, unknown>;
}

/** What the WebSocket tells a keeper of answers: every event, and every connect and break. */
export interface ChatStreamListener {
  /** Authenticated, fresh or resumed: events from here on are heard. */
  streamConnected(): void;
  /** Closed, a sequence gap, or stopped: events may be missed until the next connect. */
  streamDisconnected(): void;
  streamEvent(event: ChatStreamEvent): void;
}
