import type { OutboxRow } from '../db/schema.js';

/** How the bot came to handle a post: live from the WebSocket, held back while its channel caught up, or read by the catch-up. */
export type PostPath = 'live' | 'held' | 'catchup';

/** What the Mattermost side tells the metrics (the Prometheus registry); every method is cheap and never throws. */
export interface ChatMetrics {
  /** An outbox row reached Mattermost (or was found there already). */
  outboxDelivered(kind: OutboxRow['kind']): void;
  /** A delivery failed: `retry` when it will be tried again, `failed` when it was given up for good. */
  outboxFailed(kind: OutboxRow['kind'], outcome: 'retry' | 'failed'): void;
  /** The WebSocket is authenticated; `reconnect` unless it is the bot's first connection, `resumed` when nothing was lost. */
  websocketConnected(c: { reconnect: boolean; resumed: boolean }): void;
  websocketDisconnected(): void;
  /** The bot acted on a post this many seconds after Mattermost stamped it. */
  postHandled(path: PostPath, delaySeconds: number): void;
}
