import type { ChatPost } from '../chat/chat-port.js';

/** Live posts held per channel while its catch-up runs; past this the catch-up runs again instead. */
const MAX_HELD = 2_000;
/**
 * How far behind the newest handled post a cursor stands. Mattermost nodes of a cluster stamp
 * posts with their own clocks, so a post published after another may carry an earlier time;
 * the next catch-up reads these seconds again (handled posts are recognised by id).
 */
export const REREAD_MS = 5_000;

interface ChannelState {
  /** A catch-up from the stored cursor has completed since the last gap in the event stream. */
  synced: boolean;
  /** Live posts that arrived while the channel was not synced, in arrival order. */
  held: ChatPost[];
  /** More live posts arrived than could be held: the next catch-up must run again. */
  overflowed: boolean;
  /** Posts queued and not yet finished: `${id}:${update_at}` → update_at. */
  open: Map<string, number>;
  /** The newest update_at finished since the channel was last synced. */
  newest: number;
  /** The cursor last written, so unchanged ones are not written again. */
  saved: number | null;
}

/**
 * Where each followed channel's catch-up cursor may stand (SPEC section 7, "nothing lost").
 * A cursor moves only past posts that were read and handled, and only while the channel is
 * synced: between a gap in the event stream (a restart, a new WebSocket connection, a sequence
 * gap) and the end of that channel's REST catch-up, live posts are held, not handled, so that
 * a live post can neither overtake a missed one nor move the cursor past it. Pure state: the
 * bot does the I/O.
 */
export class ChannelCursors {
  private readonly channels = new Map<string, ChannelState>();

  private state(channelId: string): ChannelState {
    let s = this.channels.get(channelId);
    if (!s) {
      s = { synced: false, held: [], overflowed: false, open: new Map(), newest: 0, saved: null };
      this.channels.set(channelId, s);
    }
    return s;
  }

  isSynced(channelId: string): boolean {
    return this.channels.get(channelId)?.synced === true;
  }

  /** A gap in the event stream: every channel must catch up before its cursor moves again. */
  unsyncAll(): void {
    for (const s of this.channels.values()) s.synced = false;
  }

  unsync(channelId: string): void {
    this.state(channelId).synced = false;
  }

  /** Holds a live post of an unsynced channel until its catch-up ends. */
  hold(post: ChatPost): void {
    const s = this.state(post.channel_id);
    if (s.held.length >= MAX_HELD) {
      // The catch-up will read these again (the cursor cannot pass them while unsynced).
      s.held.shift();
      s.overflowed = true;
    }
    s.held.push(post);
  }

  /**
   * The channel's catch-up read everything up to now. Returns the held posts to handle next (in
   * order), or null when posts were dropped while holding and the catch-up must run again.
   */
  caughtUp(channelId: string): ChatPost[] | null {
    const s = this.state(channelId);
    if (s.overflowed) {
      s.overflowed = false;
      s.held = [];
      return null;
    }
    s.synced = true;
    return s.held.splice(0);
  }

  /** A post is queued for handling; the cursor will not pass it until `finished`. */
  started(post: ChatPost): string {
    const key = `${post.id}:${post.update_at}`;
    this.state(post.channel_id).open.set(key, post.update_at);
    return key;
  }

  finished(post: ChatPost, key: string): void {
    const s = this.state(post.channel_id);
    s.open.delete(key);
    s.newest = Math.max(s.newest, post.update_at);
  }

  /**
   * Cursors to write now: for each synced channel, just before its oldest unfinished post, else
   * REREAD_MS before its newest finished one (read again: posts sharing a millisecond, or
   * stamped by a clock a little behind, are never skipped; handled ones are recognised by id).
   */
  due(): { channelId: string; sinceMs: number }[] {
    const out = [];
    for (const [channelId, s] of this.channels) {
      if (!s.synced || s.newest === 0) continue;
      const cursor = Math.min(s.newest - REREAD_MS, ...[...s.open.values()].map((t) => t - 1));
      if (cursor !== s.saved) out.push({ channelId, sinceMs: cursor });
    }
    return out;
  }

  saved(channelId: string, sinceMs: number): void {
    this.state(channelId).saved = sinceMs;
  }
}
