import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { asChatPost, type ChatPort, type ChatPost, type ChatUser, threadOf } from '../chat/chat-port.js';
import { backoffMs, ChatError } from '../chat/chat-error.js';
import { MattermostSocket, type SocketEvent } from '../chat/mattermost-socket.js';
import { OutboxDelivery } from '../chat/outbox-delivery.js';
import type { Db } from '../db/database.js';
import type { EngineContext } from '../jobs/context.js';
import { type Handled, handlePost } from './handle-post.js';
import { KeyedQueue } from './keyed-queue.js';

export interface BotOptions {
  url: string;
  token: string;
  chat: ChatPort;
  engine: EngineContext;
  log: Logger;
  clock?: Clock;
  /** On a first start (no cursor yet), how far back to catch up. */
  firstCatchUpMs?: number;
  /** Socket and retry timings; tests shorten them. */
  pingIntervalMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  outboxPollMs?: number;
  concurrency?: number;
  complaintsPerMinute?: number;
}

export interface BotStats {
  observed: number;
  ignored: number;
  handled: number;
  duplicates: number;
  failed: number;
  catchUps: number;
}

const POSTS_PER_PAGE_LIMIT = 1000;
const UNAUTHORIZED = 'Mattermost rejected MATTERMOST_TOKEN (401): check the bot token';
const HANDLE_ATTEMPTS = 6;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The Mattermost bot: listens on the WebSocket, catches up over REST after any gap, restart or
 * new connection (from per-channel cursors in the database), hands every post to `handlePost`
 * (at most once per post id, across replicas), and delivers the outbox.
 */
export class MattermostBot {
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly queue: KeyedQueue;
  private readonly socket: MattermostSocket;
  private delivery: OutboxDelivery | null = null;
  private me: ChatUser | null = null;
  private stopped = true;
  private starting: Promise<void> | null = null;
  private problem: string | null = 'not connected yet';
  private catchingUp: Promise<void> | null = null;
  private catchUpAgain = false;
  private cursorTimer: NodeJS.Timeout | null = null;
  /** A catch-up that failed, or a post given up on, is retried from the cursor by this timer. */
  private retryTimer: NodeJS.Timeout | null = null;
  private retryAttempt = 0;
  /** Per channel: update_at of posts queued but not finished, and the newest finished. */
  private readonly pending = new Map<string, Map<string, number>>();
  private readonly done = new Map<string, number>();
  /** The cursor last written per channel: unchanged ones are not written again. */
  private readonly saved = new Map<string, number>();
  readonly stats: BotStats = { observed: 0, ignored: 0, handled: 0, duplicates: 0, failed: 0, catchUps: 0 };
  /** Called after every post is handled (tests and the bench wait on it). */
  onHandled: ((post: ChatPost, result: Handled | Error) => void) | null = null;

  constructor(private readonly opts: BotOptions) {
    this.log = opts.log.child({ component: 'bot' });
    this.clock = opts.clock ?? (() => new Date());
    this.queue = new KeyedQueue(opts.concurrency ?? 8);
    this.socket = new MattermostSocket({
      url: opts.url,
      token: opts.token,
      log: this.log.child({ component: 'websocket' }),
      pingIntervalMs: opts.pingIntervalMs,
      minBackoffMs: opts.minBackoffMs,
      maxBackoffMs: opts.maxBackoffMs,
      handlers: {
        onEvent: (e) => this.onEvent(e),
        onConnected: ({ connectionId, fresh }) => {
          this.log.info({ connectionId, fresh }, 'Mattermost WebSocket connected');
          if (fresh) void this.catchUp('new connection');
        },
        onDisconnected: (reason) => this.log.warn({ reason }, 'Mattermost WebSocket disconnected'),
      },
    });
  }

  get engine(): EngineContext {
    return this.opts.engine;
  }

  /** A REST call got 401: the token was revoked or is wrong. Readiness stays red until a call succeeds. */
  reportUnauthorized(): void {
    this.problem = UNAUTHORIZED;
    this.log.error(this.problem);
  }

  /** A REST call succeeded: a token problem reported earlier is over. */
  reportReachable(): void {
    if (this.me && this.problem !== null) this.problem = null;
  }

  get user(): ChatUser | null {
    return this.me;
  }

  get db(): Db {
    return this.opts.engine.db;
  }

  /** For `/readyz`: authenticated, and the event stream is up. */
  readiness(): { ok: boolean; reason?: string } {
    if (this.problem) return { ok: false, reason: this.problem };
    if (!this.socket.connected) return { ok: false, reason: 'Mattermost WebSocket is not connected' };
    return { ok: true };
  }

  /** Starts in the background: an unreachable Mattermost is retried, never fatal. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.starting = this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.cursorTimer) clearInterval(this.cursorTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.starting;
    await this.socket.stop();
    await this.catchingUp;
    await this.queue.idle();
    await this.delivery?.stop();
    await this.saveCursors().catch((err: unknown) =>
      this.log.warn({ err }, 'could not save catch-up cursors'),
    );
  }

  /** Waits until every post queued so far is handled and the outbox is empty (tests, demo). */
  async settle(): Promise<void> {
    await this.catchingUp;
    await this.queue.idle();
  }

  private async connect(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        this.me = await this.opts.chat.me();
        break;
      } catch (err) {
        const e = err instanceof ChatError ? err : null;
        this.problem =
          e?.kind === 'unauthorized'
            ? UNAUTHORIZED
            : `Mattermost is unreachable: ${e?.message ?? String(err)}`;
        const wait = backoffMs(attempt, this.opts.minBackoffMs ?? 500, this.opts.maxBackoffMs ?? 30_000);
        (e?.kind === 'unauthorized' ? this.log.error.bind(this.log) : this.log.warn.bind(this.log))(
          { waitMs: wait },
          this.problem,
        );
        await sleep(wait);
      }
    }
    if (this.stopped || !this.me) return;
    this.problem = null;
    this.log.info({ botUserId: this.me.id, username: this.me.username }, 'Mattermost bot authenticated');
    this.delivery = new OutboxDelivery({
      db: this.db,
      chat: this.opts.chat,
      botUserId: this.me.id,
      clock: this.clock,
      log: this.log.child({ component: 'outbox' }),
      pollMs: this.opts.outboxPollMs,
    });
    this.delivery.start();
    this.socket.start();
    this.cursorTimer = setInterval(() => {
      this.saveCursors().catch((err: unknown) => this.log.warn({ err }, 'could not save catch-up cursors'));
    }, 2_000);
    this.cursorTimer.unref();
  }

  private onEvent(e: SocketEvent): void {
    if (e.event !== 'posted' && e.event !== 'post_edited' && e.event !== 'post_deleted') return;
    let decoded: unknown;
    try {
      decoded = typeof e.data.post === 'string' ? JSON.parse(e.data.post) : null;
    } catch {
      decoded = null;
    }
    const post = asChatPost(decoded);
    if (!post) {
      this.log.warn({ event: e.event, seq: e.seq }, 'ignoring an event without a readable post');
      return;
    }
    // post_deleted may carry the post as it was: make sure it reads as deleted.
    if (e.event === 'post_deleted' && post.delete_at === 0) post.delete_at = post.update_at || Date.now();
    this.observe(post);
  }

  /** The channels whose history we follow: every channel a policy claims. */
  private channels(): string[] {
    const snap = this.opts.engine.policies.current();
    if (!snap) return [];
    return [...new Set([...snap.resolution.channels.keys(), ...snap.resolution.closed.keys()])].sort();
  }

  private observe(post: ChatPost): Promise<void> {
    this.stats.observed++;
    const track = this.pending.get(post.channel_id) ?? new Map<string, number>();
    this.pending.set(post.channel_id, track);
    const trackKey = `${post.id}:${post.update_at}`;
    track.set(trackKey, post.update_at);
    return this.queue.push(threadOf(post), async () => {
      const ok = await this.handleWithRetry(post);
      if (!ok) return; // stays pending: the cursor will not pass it, the next catch-up retries it
      track.delete(trackKey);
      this.done.set(post.channel_id, Math.max(this.done.get(post.channel_id) ?? 0, post.update_at));
    });
  }

  private async handleWithRetry(post: ChatPost): Promise<boolean> {
    const me = this.me;
    if (!me) return false;
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await handlePost(
          {
            engine: this.opts.engine,
            chat: this.opts.chat,
            bot: me,
            log: this.log,
            complaintsPerMinute: this.opts.complaintsPerMinute,
          },
          post,
        );
        if (result.outcome === 'ignored') this.stats.ignored++;
        else if (result.outcome === 'duplicate') this.stats.duplicates++;
        else {
          this.stats.handled++;
          this.log.info({ postId: post.id, action: result.action, jobId: result.jobId }, 'post handled');
          this.delivery?.wake();
        }
        this.onHandled?.(post, result);
        return true;
      } catch (err) {
        // Mattermost busy or unreachable (429, 5xx, network) is waited out here, however long it
        // lasts: giving up would let later posts of the thread overtake this one.
        const transient = err instanceof ChatError && err.retryable;
        if (this.stopped || (!transient && attempt + 1 >= HANDLE_ATTEMPTS)) {
          this.stats.failed++;
          this.log.error(
            { err, postId: post.id },
            'could not handle a post; it will be retried at the next catch-up',
          );
          this.onHandled?.(post, err instanceof Error ? err : new Error(String(err)));
          this.retryLater();
          return false;
        }
        const wait = backoffMs(attempt, this.opts.minBackoffMs ?? 500, this.opts.maxBackoffMs ?? 30_000);
        this.log.warn(
          { postId: post.id, err: err instanceof Error ? err.message : String(err), waitMs: wait },
          'handling a post failed; retrying',
        );
        await sleep(wait);
      }
    }
  }

  /** REST catch-up of every followed channel from its cursor; overlapping requests coalesce. */
  catchUp(why: string): Promise<void> {
    if (this.catchingUp) {
      this.catchUpAgain = true;
      return this.catchingUp;
    }
    this.catchingUp = (async () => {
      let failed: boolean;
      do {
        this.catchUpAgain = false;
        failed = false;
        this.stats.catchUps++;
        this.log.info({ why }, 'catching up over REST');
        for (const channelId of this.channels()) {
          if (this.stopped) return;
          await this.catchUpChannel(channelId).catch((err: unknown) => {
            if (this.catchUpFailed(channelId, err)) failed = true;
          });
        }
      } while (this.catchUpAgain && !this.stopped);
      // Nothing else would try again until the next new connection: the posts missed stay missed.
      if (failed) this.retryLater();
      else this.retryAttempt = 0;
    })().finally(() => {
      this.catchingUp = null;
    });
    return this.catchingUp;
  }

  private readonly unreadable = new Set<string>();

  /** Logs a channel's failed catch-up; true if it is worth retrying soon. */
  private catchUpFailed(channelId: string, err: unknown): boolean {
    const e = err instanceof ChatError ? err : null;
    if (e && (e.kind === 'not_found' || e.kind === 'forbidden')) {
      // A policy names a channel the bot cannot read: say so once, not on every reconnect.
      if (this.unreadable.has(channelId)) return false;
      this.unreadable.add(channelId);
      this.log.warn(
        { channelId, status: e.status },
        'the bot cannot read a channel a policy allowlists; add the bot account to it',
      );
      return false;
    }
    this.log.warn(
      { channelId, err: err instanceof Error ? err.message : String(err) },
      'catch-up failed; retrying',
    );
    return true;
  }

  /** Catches up again after a backoff: the cursors have not passed what failed. */
  private retryLater(): void {
    if (this.stopped || this.retryTimer) return;
    const wait = backoffMs(
      this.retryAttempt++,
      this.opts.minBackoffMs ?? 500,
      this.opts.maxBackoffMs ?? 30_000,
    );
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.catchUp('retrying after a failure');
    }, wait);
    this.retryTimer.unref();
  }

  private async catchUpChannel(channelId: string): Promise<void> {
    const row = await this.db
      .selectFrom('chat_cursors')
      .select('since_ms')
      .where('channel_id', '=', channelId)
      .executeTakeFirst();
    let since = row
      ? Number(row.since_ms)
      : this.clock().getTime() - (this.opts.firstCatchUpMs ?? 10 * 60_000);
    for (;;) {
      const posts = await this.opts.chat.postsSince(channelId, since);
      await Promise.all(posts.map((p) => this.observe(p)));
      if (posts.length < POSTS_PER_PAGE_LIMIT) break;
      since = Math.max(since, ...posts.map((p) => p.update_at));
    }
    await this.saveCursors();
  }

  /** Persists each channel's cursor: just before the oldest unfinished post, else the newest finished. */
  async saveCursors(): Promise<void> {
    const at = this.clock();
    for (const [channelId, newest] of this.done) {
      const open = [...(this.pending.get(channelId)?.values() ?? [])];
      const cursor = open.length > 0 ? Math.min(...open) - 1 : newest - 1;
      if (this.saved.get(channelId) === cursor) continue;
      await this.db
        .insertInto('chat_cursors')
        .values({ channel_id: channelId, since_ms: cursor, updated_at: at })
        .onConflict((oc) =>
          oc.column('channel_id').doUpdateSet((eb) => ({
            since_ms: eb.fn('greatest', [eb.ref('chat_cursors.since_ms'), eb.val(cursor)]),
            updated_at: at,
          })),
        )
        .execute();
      this.saved.set(channelId, cursor);
    }
  }
}
