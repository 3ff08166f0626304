import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { asChatPost, type ChatPort, type ChatPost, type ChatUser, threadOf } from '../chat/chat-port.js';
import type { ChatMetrics, PostPath } from '../chat/chat-metrics.js';
import { backoffMs, ChatError } from '../ports/chat-error.js';
import { MattermostSocket, type SocketEvent } from '../chat/mattermost-socket.js';
import { leaseOwner } from '../chat/lease-owner.js';
import { OUTBOX_KEY_PROP, OutboxDelivery } from '../chat/outbox-delivery.js';
import { statusRendererOf } from '../presenter/chat-presenter.js';
import type { Db } from '../db/database.js';
import type { EngineContext } from '../jobs/context.js';
import { isTransientDbError, isUnstorableInput } from '../db/db-errors.js';
import { ChannelCursors } from './channel-cursors.js';
import { type Handled, handlePost, type HandlerDeps, refuseUnprocessablePost } from './handle-post.js';
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
  /** How often the outbox looks for rows other processes wrote; this process's own are sent at commit. */
  outboxPollMs?: number;
  /** Outbox rows delivered at once (one post per thread at a time). */
  outboxParallel?: number;
  /** Posts handled at once (one per thread at a time); keep it below the database pool's size. */
  concurrency?: number;
  complaintsPerMinute?: number;
  /**
   * No other process can use this database (embedded PGlite): outbox leases left by anyone else
   * belong to a crashed predecessor and are resumed at once.
   */
  exclusiveDatabase?: boolean;
  /** Told of the WebSocket, the outbox and each handled post (the Prometheus metrics). */
  metrics?: ChatMetrics;
}

export interface BotStats {
  observed: number;
  ignored: number;
  handled: number;
  duplicates: number;
  failed: number;
  catchUps: number;
  /** Replies that waited for their thread's plan post to be bound to its job (see notePlanPost). */
  waitedForPlanPost: number;
}

const POSTS_PER_PAGE_LIMIT = 1000;
const UNAUTHORIZED = 'Mattermost rejected MATTERMOST_TOKEN (401): check the bot token';
const HANDLE_ATTEMPTS = 6;
/** Posts handled at once by default: below the PostgreSQL pool (10), which delivery shares. */
export const DEFAULT_CONCURRENCY = 8;
/** The bot's own plan posts remembered, so replies to them wait for the job to be bound to them. */
const PLAN_ROOTS_KEPT = 1_000;
const PLAN_KEY = /^job:\d+:plan$/;
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
  private cursorTimer: NodeJS.Timeout | null = null;
  /** A catch-up that failed, or a post given up on, is retried from the cursor by this timer. */
  private retryTimer: NodeJS.Timeout | null = null;
  private retryAttempt = 0;
  private readonly cursors = new ChannelCursors();
  /** Channel catch-ups in progress, and those asked for again while running. */
  private readonly syncing = new Map<string, Promise<void>>();
  private readonly syncAgain = new Set<string>();
  readonly stats: BotStats = {
    observed: 0,
    ignored: 0,
    handled: 0,
    duplicates: 0,
    failed: 0,
    catchUps: 0,
    waitedForPlanPost: 0,
  };
  /** Whether the WebSocket has been connected before: a later connection is a reconnect. */
  private connectedBefore = false;
  /** The bot's own agent-job plan posts seen (post id → outbox key), newest last. */
  private readonly planRoots = new Map<string, string>();
  /** The followed channels, computed once per policy snapshot. */
  private followedOf: { snapshot: unknown; channels: Set<string> } | null = null;
  /** Called after every post is handled (tests and the bench wait on it). */
  onHandled: ((post: ChatPost, result: Handled | Error) => void) | null = null;

  constructor(private readonly opts: BotOptions) {
    this.log = opts.log.child({ component: 'bot' });
    this.clock = opts.clock ?? (() => new Date());
    this.queue = new KeyedQueue(opts.concurrency ?? DEFAULT_CONCURRENCY);
    this.socket = new MattermostSocket({
      url: opts.url,
      token: opts.token,
      log: this.log.child({ component: 'websocket' }),
      pingIntervalMs: opts.pingIntervalMs,
      minBackoffMs: opts.minBackoffMs,
      maxBackoffMs: opts.maxBackoffMs,
      // The chat cache (issue 13) hears every event, connect and break before the handlers do.
      listener: opts.chat.stream,
      handlers: {
        onEvent: (e) => this.onEvent(e),
        onConnected: ({ connectionId, fresh }) => {
          this.log.info({ connectionId, fresh }, 'Mattermost WebSocket connected');
          opts.metrics?.websocketConnected({ reconnect: this.connectedBefore, resumed: !fresh });
          this.connectedBefore = true;
          if (!fresh) return; // the server replayed what was missed
          this.cursors.unsyncAll();
          void this.catchUp('new connection');
        },
        onDisconnected: (reason) => {
          this.log.warn({ reason }, 'Mattermost WebSocket disconnected');
          opts.metrics?.websocketDisconnected();
        },
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
    this.opts.metrics?.websocketDisconnected();
    await Promise.all(this.syncing.values());
    await this.queue.idle();
    await this.delivery?.stop();
    await this.saveCursors().catch((err: unknown) =>
      this.log.warn({ err: safeError(err) }, 'could not save catch-up cursors'),
    );
  }

  /** Waits until every post queued so far is handled and the outbox is empty (tests, demo). */
  async settle(): Promise<void> {
    await Promise.all(this.syncing.values());
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
      statusPost: statusRendererOf(this.opts.engine),
      botUserId: this.me.id,
      clock: this.clock,
      log: this.log.child({ component: 'outbox' }),
      pollMs: this.opts.outboxPollMs,
      ...(this.opts.outboxParallel !== undefined ? { parallel: this.opts.outboxParallel } : {}),
      ...(this.opts.minBackoffMs !== undefined ? { minBackoffMs: this.opts.minBackoffMs } : {}),
      ...(this.opts.maxBackoffMs !== undefined ? { maxBackoffMs: this.opts.maxBackoffMs } : {}),
      owner: leaseOwner({ exclusive: this.opts.exclusiveDatabase === true }),
      ...(this.opts.metrics ? { metrics: this.opts.metrics } : {}),
    });
    this.delivery.start();
    this.socket.start();
    this.cursorTimer = setInterval(() => {
      this.saveCursors().catch((err: unknown) =>
        this.log.warn({ err: safeError(err) }, 'could not save catch-up cursors'),
      );
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
    return [...this.followedChannels()].sort();
  }

  private followedChannels(): Set<string> {
    const snap = this.opts.engine.policies.current();
    if (!snap) return new Set();
    if (this.followedOf?.snapshot !== snap) {
      const channels = new Set([...snap.resolution.channels.keys(), ...snap.resolution.closed.keys()]);
      this.followedOf = { snapshot: snap, channels };
    }
    return this.followedOf.channels;
  }

  /**
   * A live post. While its channel is not synced (a catch-up is pending, running or failed),
   * it is held and handled after the catch-up, so it can neither overtake a missed post nor
   * move the channel's cursor past one.
   */
  private observe(post: ChatPost): void {
    this.stats.observed++;
    this.notePlanPost(post);
    if (!this.followed(post.channel_id) || this.cursors.isSynced(post.channel_id)) {
      void this.enqueue(post, 'live');
      return;
    }
    this.cursors.hold(post);
    if (!this.syncing.has(post.channel_id) && !this.retryTimer) void this.syncChannel(post.channel_id);
  }

  private followed(channelId: string): boolean {
    return this.followedChannels().has(channelId);
  }

  /**
   * The bot's own plan post of an agent's job. Its job is bound to it (its thread is where the
   * job's decisions count) only once the delivery that posted it has recorded it: a reply that
   * comes sooner waits for that, rather than being refused as made outside the job's thread.
   */
  private notePlanPost(post: ChatPost): void {
    if (!this.me || post.user_id !== this.me.id || post.root_id) return;
    const key = post.props[OUTBOX_KEY_PROP];
    if (typeof key !== 'string' || !PLAN_KEY.test(key)) return;
    this.planRoots.set(post.id, key);
    if (this.planRoots.size > PLAN_ROOTS_KEPT) this.planRoots.delete(this.planRoots.keys().next().value!);
  }

  /** Queues a post in its thread; the channel's cursor does not pass it until it is handled. */
  private enqueue(post: ChatPost, path: PostPath): Promise<void> {
    const key = this.cursors.started(post);
    return this.queue.push(threadOf(post), async () => {
      if (this.stopped) return; // stays open: the next start reads it again
      const planKey = post.root_id ? this.planRoots.get(post.root_id) : undefined;
      const binding = planKey ? this.delivery?.delivering(planKey) : undefined;
      if (binding) {
        this.stats.waitedForPlanPost++;
        await binding;
      }
      const ok = await this.handleWithRetry(post, path);
      if (!ok) {
        this.cursors.unsync(post.channel_id);
        return;
      }
      this.cursors.finished(post, key);
    });
  }

  private async handleWithRetry(post: ChatPost, path: PostPath): Promise<boolean> {
    const me = this.me;
    if (!me) return false;
    const deps = {
      engine: this.opts.engine,
      chat: this.opts.chat,
      bot: me,
      log: this.log,
      complaintsPerMinute: this.opts.complaintsPerMinute,
    };
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await handlePost(deps, post);
        if (result.outcome === 'ignored') this.stats.ignored++;
        else if (result.outcome === 'duplicate') this.stats.duplicates++;
        else {
          this.stats.handled++;
          this.log.info({ postId: post.id, action: result.action, jobId: result.jobId }, 'post handled');
          // Mattermost's clock and ours may differ a little: a post never counts as handled early.
          const stamped = post.update_at || post.create_at;
          this.opts.metrics?.postHandled(path, Math.max(0, (this.clock().getTime() - stamped) / 1000));
        }
        this.onHandled?.(post, result);
        return true;
      } catch (err) {
        // Mattermost or the database busy or unreachable is waited out here, however long it
        // lasts: giving up would let later posts of the thread overtake this one.
        const transient = (err instanceof ChatError && err.retryable) || isTransientDbError(err);
        if (!this.stopped && !transient && (isUnstorableInput(err) || attempt + 1 >= HANDLE_ATTEMPTS)) {
          // This post can never be handled (e.g. text the database cannot store): record it as
          // refused, so it neither pins the channel's cursor nor loops.
          if (await this.refuseUnprocessable(deps, post, err)) return true;
        }
        if (this.stopped || (!transient && attempt + 1 >= HANDLE_ATTEMPTS)) {
          this.stats.failed++;
          this.log.error(
            { err: safeError(err), postId: post.id },
            'could not handle a post; it will be retried at the next catch-up',
          );
          this.onHandled?.(post, err instanceof Error ? err : new Error(String(err)));
          this.retryLater();
          return false;
        }
        const wait = backoffMs(attempt, this.opts.minBackoffMs ?? 500, this.opts.maxBackoffMs ?? 30_000);
        this.log.warn(
          { postId: post.id, err: safeError(err), waitMs: wait, attempt },
          'handling a post failed; retrying',
        );
        await sleep(wait);
      }
    }
  }

  /** Records a post that cannot be handled as refused; false if even that failed. */
  private async refuseUnprocessable(deps: HandlerDeps, post: ChatPost, err: unknown): Promise<boolean> {
    try {
      const result = await refuseUnprocessablePost(deps, post);
      this.stats.failed++;
      this.log.error({ err: safeError(err), postId: post.id }, 'a post could not be processed; refused');
      this.onHandled?.(post, result);
      return true;
    } catch (again) {
      this.log.warn({ err: safeError(again), postId: post.id }, 'could not record a refused post');
      return false;
    }
  }

  /**
   * REST catch-up of every followed channel that is not synced, each on its own (a slow or
   * failing channel holds back only itself); overlapping requests coalesce per channel.
   */
  catchUp(why: string): Promise<void> {
    this.stats.catchUps++;
    this.log.info({ why }, 'catching up over REST');
    const runs = this.channels()
      .filter((c) => !this.cursors.isSynced(c))
      .map((c) => this.syncChannel(c));
    return Promise.all(runs).then(() => undefined);
  }

  /** Catches one channel up, then releases the live posts held meanwhile; retried on failure. */
  private syncChannel(channelId: string): Promise<void> {
    const running = this.syncing.get(channelId);
    if (running) {
      this.syncAgain.add(channelId);
      return running;
    }
    const run = (async () => {
      for (;;) {
        if (this.stopped) return;
        this.syncAgain.delete(channelId);
        try {
          await this.catchUpChannel(channelId);
        } catch (err) {
          if (this.catchUpFailed(channelId, err)) this.retryLater();
          return;
        }
        if (this.syncAgain.has(channelId)) continue; // a new gap: keep holding, read again
        const held = this.cursors.caughtUp(channelId);
        if (held === null) continue; // posts were dropped while holding: read again
        for (const post of held) void this.enqueue(post, 'held');
        if (!this.syncAgain.has(channelId)) break;
      }
      this.unreadable.delete(channelId);
      await this.saveCursors().catch((err: unknown) =>
        this.log.warn({ err: safeError(err) }, 'could not save catch-up cursors'),
      );
    })().finally(() => this.syncing.delete(channelId));
    this.syncing.set(channelId, run);
    return run;
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
    this.log.warn({ channelId, err: safeError(err) }, 'catch-up failed; retrying');
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
      void this.catchUp('retrying after a failure').then(() => {
        if (!this.retryTimer) this.retryAttempt = 0;
      });
    }, wait);
    this.retryTimer.unref();
  }

  /**
   * Reads everything changed in the channel since its stored cursor and queues it, oldest first.
   * Mattermost returns at most 1000 changes per request (the earliest after `since`); the next
   * page starts at the newest millisecond seen, read again, so changes sharing that millisecond
   * across the page boundary are never skipped (those already read are recognised by id).
   */
  private async catchUpChannel(channelId: string): Promise<void> {
    const row = await this.db
      .selectFrom('chat_cursors')
      .select('since_ms')
      .where('channel_id', '=', channelId)
      .executeTakeFirst();
    let since = row
      ? Number(row.since_ms)
      : this.clock().getTime() - (this.opts.firstCatchUpMs ?? 10 * 60_000);
    const read = new Set<string>();
    const queued: Promise<void>[] = [];
    for (;;) {
      if (this.stopped) break;
      const posts = await this.opts.chat.postsSince(channelId, since);
      for (const p of posts) {
        const key = `${p.id}:${p.update_at}`;
        if (read.has(key)) continue;
        read.add(key);
        this.stats.observed++;
        this.notePlanPost(p);
        queued.push(this.enqueue(p, 'catchup'));
      }
      if (posts.length < POSTS_PER_PAGE_LIMIT) break;
      // Roots of the page's threads come along (their UpdateAt moves with every reply): the
      // page's own changes end at its 1000th smallest update_at.
      const newest = posts[POSTS_PER_PAGE_LIMIT - 1]!.update_at;
      if (newest - 1 > since) {
        since = newest - 1;
      } else {
        // A whole page of changes in one millisecond: Mattermost offers no way to read past it.
        this.log.error(
          { channelId, atMs: newest },
          'more than 1000 changes in one millisecond; later ones of that millisecond may be missed',
        );
        since = newest;
      }
    }
    await Promise.all(queued);
  }

  /** Persists each synced channel's cursor (see ChannelCursors.due). */
  async saveCursors(): Promise<void> {
    const at = this.clock();
    for (const { channelId, sinceMs } of this.cursors.due()) {
      await this.db
        .insertInto('chat_cursors')
        .values({ channel_id: channelId, since_ms: sinceMs, updated_at: at })
        .onConflict((oc) =>
          oc.column('channel_id').doUpdateSet((eb) => ({
            since_ms: eb.fn('greatest', [eb.ref('chat_cursors.since_ms'), eb.val(sinceMs)]),
            updated_at: at,
          })),
        )
        .execute();
      this.cursors.saved(channelId, sinceMs);
    }
  }
}

/** An error as a log field: its message and codes, never a connection string or a stack of secrets. */
function safeError(err: unknown): { message: string; code?: string; kind?: string } {
  const e = err as { message?: unknown; code?: unknown; kind?: unknown };
  return {
    message: typeof e?.message === 'string' ? e.message.slice(0, 300) : String(err).slice(0, 300),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
    ...(typeof e?.kind === 'string' ? { kind: e.kind } : {}),
  };
}
