import type { ChatStreamListener, ChatStreamEvent } from '../ports/chat.js';

/**
 * What a cached answer is about: a channel-scoped fact is trusted only while the bot receives
 * that channel's events; an account fact rests on `user_updated`, which goes to every
 * connection; a group fact has no event the bot receives and rests on time alone.
 */
export type FactScope = { kind: 'channel'; channelId: string } | { kind: 'account' } | { kind: 'group' };

/**
 * How long a user group answer is kept at most (or the freshness bound, if lower). Nothing the
 * bot hears says a person left a user group (`group_member_delete` goes to that person alone),
 * so such an answer rests on time alone, and is kept only long enough to serve a burst of
 * decisions, not the whole bound that event-checked answers get.
 */
export const GROUP_FRESH_MS = 5_000;

interface Entry {
  value: unknown;
  /**
   * When the request that gave the answer started (`now()`, milliseconds): Mattermost's answer
   * may describe any moment after that, so its age is counted from there.
   */
  at: number;
  /** The stream generation it was fetched in: a break in the stream ends the generation. */
  generation: number;
  /** When it was stored, on the cache's own counter (`tick`). */
  stored: number;
  scope: FactScope;
  /** For posts: the thread root, so deleting a root drops its replies too. */
  rootId?: string;
}

interface Flight {
  promise: Promise<unknown>;
  generation: number;
  /** An event touched the key while the answer was on its way: the answer is returned, never kept. */
  tainted: boolean;
}

export interface ChatCacheStats {
  /** Answers given from the cache. */
  hits: number;
  /** Questions the cache could not answer (missing, stale, or not trusted). */
  misses: number;
  /** Requests sent to Mattermost (a coalesced question counts once). */
  fetches: number;
  /** Entries dropped because an event said they changed, or the stream broke. */
  invalidations: number;
}

export interface ChatCacheOptions {
  /** How long an answer is trusted; 0: never (every question asks Mattermost). */
  freshMs: number;
  /** At most this many answers are kept (least recently used go first). */
  maxEntries?: number;
  now?: () => number;
}

/**
 * Answers from Mattermost kept for a short while, and dropped the moment Mattermost's own event
 * stream says they changed. An answer is current only if it was fetched less than `freshMs` ago,
 * in the current stream generation (the WebSocket has been connected without a break since), and,
 * for a channel's facts, while the bot itself is known to be a member of that channel (otherwise
 * it would not hear `user_removed`, `post_edited` or `post_deleted` there).
 *
 * Events only ever drop answers: nothing an event says is kept as a fact, so a garbled or
 * misleading event can at worst cost one more request. Anything not current is fetched; a fetch
 * that fails throws, exactly as without the cache.
 */
export class ChatCache implements ChatStreamListener {
  private readonly entries = new Map<string, Entry>();
  private readonly flights = new Map<string, Flight>();
  private readonly maxEntries: number;
  private readonly now: () => number;
  private connected = false;
  private generation = 0;
  /** Counts stores: an entry stored at or before a request's start was known when it started. */
  private tick = 0;
  /** Counts changes heard (`invalidate`); the last `CHANGES_KEPT` are remembered. */
  private change = 0;
  private readonly changes: { n: number; touch: Touch }[] = [];
  /** The newest change no longer remembered. */
  private forgotten = 0;
  /** The bot's own user id: its channel memberships say which channels' events it hears. */
  private ownId: string | null = null;
  readonly stats: ChatCacheStats = { hits: 0, misses: 0, fetches: 0, invalidations: 0 };

  constructor(private readonly opts: ChatCacheOptions) {
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  get enabled(): boolean {
    return this.opts.freshMs > 0;
  }

  /** Number of answers kept (tests). */
  get size(): number {
    return this.entries.size;
  }

  get botUserId(): string | null {
    return this.ownId;
  }

  setBotUserId(id: string): void {
    if (this.ownId === id) return;
    this.ownId = id;
    // Which channels are heard changes with the identity: a new generation, as after a break.
    this.generation++;
    this.dropAll();
  }

  /** The cache key of a channel membership answer. */
  static channelKey(channelId: string, userId: string): string {
    return `channel:${channelId}:${userId}`;
  }

  /** Whether the bot is known, right now, to receive the events of this channel. */
  hearsChannel(channelId: string): boolean {
    return this.heardSince(channelId, Infinity);
  }

  /**
   * Whether the bot is known, right now, to receive the events of this channel, and was already
   * known to when the cache's counter stood at `tick` (the same answer has been current since).
   */
  private heardSince(channelId: string, tick: number): boolean {
    if (this.ownId === null) return false;
    const entry = this.entries.get(ChatCache.channelKey(channelId, this.ownId));
    return entry !== undefined && entry.stored <= tick && this.isCurrent(entry, true) && entry.value === true;
  }

  /**
   * Whether an answer asked when the counter stood at `tick` may be kept. A channel's facts only
   * if the bot already heard that channel then: had it joined later (without hearing its own
   * `user_added`), a change between the answer and its joining would never reach it. The bot's
   * own membership is what says the channel is heard, and is kept without that.
   */
  private keepable(key: string, scope: FactScope, tick: number): boolean {
    if (scope.kind !== 'channel') return true;
    if (this.ownId !== null && key === ChatCache.channelKey(scope.channelId, this.ownId)) return true;
    return this.heardSince(scope.channelId, tick);
  }

  /**
   * The answer for `key`: from the cache when current, otherwise from `fetch` (one request for
   * concurrent askers). `scopeOf` tells what the answer is about once it is known (null: do not keep it).
   */
  async get<T>(
    key: string,
    fetch: () => Promise<T>,
    scopeOf: (value: T) => { scope: FactScope; rootId?: string } | null,
  ): Promise<T> {
    if (!this.enabled) {
      this.stats.misses++;
      this.stats.fetches++;
      return fetch();
    }
    const entry = this.entries.get(key);
    if (entry && this.isCurrent(entry)) {
      this.stats.hits++;
      // Most recently used goes to the end of the map's order.
      this.entries.delete(key);
      this.entries.set(key, entry);
      return entry.value as T;
    }
    this.stats.misses++;
    const flying = this.flights.get(key);
    if (flying && !flying.tainted && flying.generation === this.generation && this.connected) {
      return flying.promise as Promise<T>;
    }
    const flight: Flight = { promise: Promise.resolve(), generation: this.generation, tainted: false };
    const trusted = this.connected;
    const startedAt = this.now();
    const startTick = this.tick;
    this.stats.fetches++;
    flight.promise = (async () => {
      try {
        const value = await fetch();
        const about = scopeOf(value);
        if (
          about &&
          trusted &&
          !flight.tainted &&
          flight.generation === this.generation &&
          this.connected &&
          this.keepable(key, about.scope, startTick)
        ) {
          this.store(key, {
            value,
            at: startedAt,
            generation: flight.generation,
            stored: ++this.tick,
            ...about,
          });
        }
        return value;
      } finally {
        if (this.flights.get(key) === flight) this.flights.delete(key);
      }
    })();
    this.flights.set(key, flight);
    return flight.promise as Promise<T>;
  }

  private isCurrent(entry: Entry, ownMembership = false): boolean {
    if (!this.connected || entry.generation !== this.generation) return false;
    const age = this.now() - entry.at;
    const bound =
      entry.scope.kind === 'group' ? Math.min(this.opts.freshMs, GROUP_FRESH_MS) : this.opts.freshMs;
    if (age < 0 || age >= bound) return false;
    if (entry.scope.kind !== 'channel' || ownMembership) return true;
    return this.hearsChannel(entry.scope.channelId);
  }

  private store(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }

  // The stream: every break ends a generation, and with it every answer kept.

  streamConnected(): void {
    this.generation++;
    this.connected = true;
  }

  streamDisconnected(): void {
    this.connected = false;
    this.generation++;
    this.dropAll();
  }

  /** Setting aside what was answered now, to ask later whether any of it changed (`changedSince`). */
  mark(): FactsMark {
    return { generation: this.generation, change: this.change, watched: this.connected };
  }

  /**
   * Whether anything the bot has heard since `mark` may have changed one of `facts`: an event
   * about it (read as broadly as the drops it causes, and more broadly where the fact's channel
   * is unknown), a break or a resumption of the stream (events may have been missed), or a mark
   * older than the changes remembered. A mark taken with the stream down had no events to miss:
   * only the events heard since count. Costs no request; with freshness 0 events still count.
   */
  changedSince(mark: FactsMark, facts: readonly WatchedFact[]): boolean {
    if (mark.watched && (mark.generation !== this.generation || !this.connected)) return true;
    if (mark.change < this.forgotten) return true;
    for (let i = this.changes.length - 1; i >= 0; i--) {
      const c = this.changes[i]!;
      if (c.n <= mark.change) break;
      if (facts.some((f) => touchesFact(c.touch, f))) return true;
    }
    return false;
  }

  streamEvent(e: ChatStreamEvent): void {
    switch (e.event) {
      case 'user_added':
      case 'user_removed':
        this.membershipChanged(e);
        return;
      case 'leave_team': {
        // The person left every channel of the team, without `user_removed`.
        const userId = str(e.data.user_id);
        this.invalidate(
          !userId || userId === this.botUserId
            ? { kind: 'every', of: 'channel' }
            : { kind: 'memberOf', userId },
        );
        return;
      }
      case 'channel_deleted':
      case 'channel_restored':
      case 'channel_converted': {
        const channelId = str(e.data.channel_id) ?? str(e.broadcast.channel_id);
        this.invalidate(channelId ? { kind: 'channel', channelId } : { kind: 'every', of: 'channel' });
        return;
      }
      case 'user_updated': {
        const id = idOf(e.data.user);
        this.invalidate(id ? { kind: 'key', key: `user:${id}` } : { kind: 'every', of: 'account' });
        return;
      }
      case 'guests_deactivated':
        this.invalidate({ kind: 'every', of: 'account' });
        return;
      case 'group_member_add':
      case 'group_member_delete': {
        const member = decode(e.data.group_member);
        const groupId = member ? str(member.group_id) : null;
        const userId = member ? str(member.user_id) : null;
        this.invalidate(
          groupId && userId
            ? { kind: 'key', key: `group:${groupId}:${userId}` }
            : { kind: 'every', of: 'group' },
        );
        return;
      }
      case 'received_group': {
        const groupId = idOf(e.data.group);
        this.invalidate(groupId ? { kind: 'group', groupId } : { kind: 'every', of: 'group' });
        return;
      }
      case 'post_edited':
      case 'post_deleted': {
        const id = idOf(e.data.post);
        if (!id) {
          this.invalidate({ kind: 'every', of: 'post' });
          return;
        }
        this.invalidate({ kind: 'key', key: `post:${id}` });
        // Deleting a root deletes its whole thread with one event (App.DeletePost).
        if (e.event === 'post_deleted') this.invalidate({ kind: 'thread', rootId: id });
        return;
      }
      default:
        return;
    }
  }

  /**
   * `user_added` / `user_removed`: to the channel's members (broadcast.channel_id, data.user_id),
   * and, for a removal, also to the removed person alone (broadcast.user_id, data.channel_id).
   */
  private membershipChanged(e: ChatStreamEvent): void {
    const channelId = str(e.broadcast.channel_id) ?? str(e.data.channel_id);
    const userId = str(e.data.user_id) ?? idOf(e.data.user) ?? str(e.broadcast.user_id);
    if (!channelId) this.invalidate({ kind: 'every', of: 'channel' });
    // Unreadable, or the bot itself: what it hears of this channel may change.
    else if (!userId || userId === this.botUserId) this.invalidate({ kind: 'channel', channelId });
    else this.invalidate({ kind: 'key', key: ChatCache.channelKey(channelId, userId) });
  }

  /** Remembers the change (for `changedSince`) and drops every answer it touches. */
  private invalidate(touch: Touch): void {
    this.change++;
    this.changes.push({ n: this.change, touch });
    if (this.changes.length > CHANGES_KEPT) this.forgotten = this.changes.shift()!.n;
    if (touch.kind === 'key') {
      if (this.entries.delete(touch.key)) this.stats.invalidations++;
      const flight = this.flights.get(touch.key);
      if (flight) {
        flight.tainted = true;
        this.flights.delete(touch.key);
      }
      return;
    }
    for (const [key, entry] of this.entries) {
      if (touchesEntry(touch, key, entry) && this.entries.delete(key)) this.stats.invalidations++;
    }
    // An answer still on its way has no scope yet: a bulk drop is rare, so it taints them all.
    this.taintFlights();
  }

  private taintFlights(): void {
    for (const flight of this.flights.values()) flight.tainted = true;
    this.flights.clear();
  }

  private dropAll(): void {
    this.stats.invalidations += this.entries.size;
    this.entries.clear();
    this.taintFlights();
  }
}

/** What an event may have changed, as the cache remembers it. */
type Touch =
  /** One answer (`user:`, `post:`, `channel:<c>:<u>`, `group:<g>:<u>`). */
  | { kind: 'key'; key: string }
  /** Everything about one channel: its members and its posts. */
  | { kind: 'channel'; channelId: string }
  /** One person's membership of every channel (they left a team). */
  | { kind: 'memberOf'; userId: string }
  /** Everyone's membership of one user group. */
  | { kind: 'group'; groupId: string }
  /** The replies of a deleted thread root. */
  | { kind: 'thread'; rootId: string }
  /** Everything of a kind (an event that could not be read). */
  | { kind: 'every'; of: FactScope['kind'] | 'post' };

/**
 * At most this many changes are remembered for `changedSince`; a mark older than all of them is
 * answered "changed". Far more than arrive while one decision waits for its locks.
 */
export const CHANGES_KEPT = 4_096;

/** Where `changedSince` starts: what the cache had heard when the mark was taken. */
export interface FactsMark {
  readonly generation: number;
  readonly change: number;
  /** The stream was connected: a break or resumption since means events may have been missed. */
  readonly watched: boolean;
}

/** A fact a decision rests on, as `changedSince` is asked about it. */
export type WatchedFact =
  | { kind: 'account'; userId: string }
  /** Every membership of the person, in channels and user groups alike. */
  | { kind: 'memberships'; userId: string }
  /** A post; its channel and thread root as the answer gave them (null: not known, e.g. deleted). */
  | { kind: 'post'; postId: string; channelId: string | null; rootId: string | null };

function touchesEntry(t: Touch, key: string, entry: Entry): boolean {
  switch (t.kind) {
    case 'key':
      return key === t.key;
    case 'channel':
      return entry.scope.kind === 'channel' && entry.scope.channelId === t.channelId;
    case 'memberOf':
      return key.startsWith('channel:') && key.endsWith(`:${t.userId}`);
    case 'group':
      return key.startsWith(`group:${t.groupId}:`);
    case 'thread':
      return key.startsWith('post:') && entry.rootId === t.rootId;
    case 'every':
      return t.of === 'post' ? key.startsWith('post:') : entry.scope.kind === t.of;
  }
}

function touchesFact(t: Touch, f: WatchedFact): boolean {
  if (f.kind === 'account')
    return (t.kind === 'key' && t.key === `user:${f.userId}`) || (t.kind === 'every' && t.of === 'account');
  if (f.kind === 'memberships') {
    switch (t.kind) {
      case 'key':
        return (t.key.startsWith('channel:') || t.key.startsWith('group:')) && t.key.endsWith(`:${f.userId}`);
      case 'memberOf':
        return t.userId === f.userId;
      // Which channels and groups the memberships were asked in is the directory's: any counts.
      case 'channel':
      case 'group':
        return true;
      case 'thread':
        return false;
      case 'every':
        return t.of === 'channel' || t.of === 'group';
    }
  }
  switch (t.kind) {
    case 'key':
      return t.key === `post:${f.postId}`;
    case 'channel':
      return f.channelId === null || f.channelId === t.channelId;
    case 'thread':
      return f.rootId === null || f.rootId === t.rootId || f.postId === t.rootId;
    case 'memberOf':
    case 'group':
      return false;
    case 'every':
      return t.of === 'post' || t.of === 'channel';
  }
}

const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

/** An object, or an object sent as a JSON string (Mattermost does both). */
function decode(v: unknown): Record<string, unknown> | null {
  let value = v;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return null;
    }
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}

const idOf = (v: unknown): string | null => {
  const o = decode(v);
  return o ? str(o.id) : null;
};
