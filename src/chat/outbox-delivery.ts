import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Db } from '../db/database.js';
import type { OutboxRow } from '../db/schema.js';
import { MENTION_TOKEN } from './mention-token.js';
import type { ChatMetrics } from './chat-metrics.js';
import type { ChatPort } from './chat-port.js';
import { backoffMs, ChatError, mayStillLand } from '../ports/chat-error.js';
import { type LeaseOwner, leaseOwner } from './lease-owner.js';
import {
  bindJobThread,
  holdLease,
  leaseDue,
  markDelivered,
  markFailed,
  markPatched,
  markPatchFailed,
  markRetry,
  markRetryHeld,
  planPostKey,
  markPostDelivered,
  onOutboxCommitted,
  releaseLeasesOfGone,
  releaseOwnLeasesExcept,
  statusPropsDigest,
} from './outbox.js';

/** A job's status post as it should read now; null when there is nothing to show. */
export type StatusRenderer = (
  db: Db,
  jobId: number,
  postId: string,
) => Promise<{ message: string; props: Record<string, unknown> } | null>;

/** Rows delivered at once by default: Mattermost answers each in a few milliseconds. */
export const DEFAULT_PARALLEL = 32;
const STATUS_POSTS_KEPT = 10_000;
/**
 * The longest a Mattermost request may take (mattermost-rest's REQUEST_TIMEOUT_MS, not imported:
 * that module loads the Mattermost client), and a margin for clocks that differ between replicas.
 */
const REQUEST_TIMEOUT_MS = 20_000;
const LEASE_MARGIN_MS = 5_000;

/** An error as a log field: its message and codes, never a connection string. */
function errorField(err: unknown): { message: string; code?: string } {
  const e = err as { message?: unknown; code?: unknown };
  return {
    message: typeof e?.message === 'string' ? e.message.slice(0, 300) : String(err).slice(0, 300),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
  };
}

/** The prop that marks every bot post with its outbox key, so a resend can find an earlier success. */
export const OUTBOX_KEY_PROP = 'claw_outbox_key';

export interface DeliveryOptions {
  db: Db;
  chat: ChatPort;
  botUserId: string;
  clock: Clock;
  log: Logger;
  /** Poll for rows written by other processes (API replicas, the expiry sweep) this often. */
  pollMs?: number;
  leaseMs?: number;
  /** Rows delivered at once (threads in parallel; one post per thread at a time). */
  parallel?: number;
  /** Pauses after a failed delivery (without the server's Retry-After) grow between these. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** This process as a lease holder (default: on a shared database). */
  owner?: LeaseOwner;
  /** Renders a job's status post for its edits (the chat presenter); without it none are sent. */
  statusPost?: StatusRenderer;
  /** Told of each delivery and failure (the Prometheus metrics). */
  metrics?: ChatMetrics;
}

/**
 * Delivers outbox rows in order, after the transaction that wrote them committed. A row is
 * leased, sent, then marked delivered; if the process dies in between, the lease runs out and
 * the next attempt first looks in the channel for a bot post carrying the same outbox key, so
 * a message is neither lost nor posted twice. 429s, 5xx and network errors pause delivery
 * (keeping thread order) with backoff or the server's Retry-After; other refusals are final.
 *
 * Delivery starts the moment a transaction of this process that wrote outbox rows commits
 * (`onOutboxCommitted`), and polls for rows written by other processes. Rows are delivered as
 * a pipeline, up to `parallel` at once: each thread has at most one post in flight (a post is
 * leased only once every earlier post of its thread is delivered), threads never wait for one
 * another, and a delivered post makes the next post of its thread due at once.
 */
export class OutboxDelivery {
  private timer: NodeJS.Timeout | null = null;
  private timerAt = 0;
  /** The lease statement in progress; leases never overlap. */
  private leasing: Promise<void> | null = null;
  /** Woken while leasing or full: lease again as soon as possible. */
  private again = false;
  private readonly inFlight = new Map<number, Promise<void>>();
  /** Agents' plan posts being delivered here, by outbox key: posted, their job not yet bound. */
  private readonly plansInFlight = new Map<string, Promise<void>>();
  /** Status posts' ids by outbox key (a delivered post's id never changes), oldest first. */
  private readonly statusPosts = new Map<string, string>();
  /** Status edits (row ids) sent and not yet answered: a failure then leaves them in doubt. */
  private readonly editsSent = new Set<number>();
  /** Status edits (row ids) sent in the delivery in progress, answered or not. */
  private readonly editsTried = new Set<number>();
  /** Status edits in doubt whose hold is not recorded yet (if it cannot be, they are orphans). */
  private readonly doubted = new Set<number>();
  /** Rows this process leased whose outcome it could not record (the database went away). */
  private readonly orphans = new Set<number>();
  /** A lease statement failed: it may have committed, leasing rows this process never heard of. */
  private leaseUnheard = false;
  /** Transactions of this process that wrote outbox rows, counted as they commit. */
  private commits = 0;
  /** Posts delivered whose record found nothing of their thread waiting behind them. */
  private readonly lastOfThread = new Set<number>();
  private stopped = true;
  private pauseUntil = 0;
  private failures = 0;
  private readonly owner: LeaseOwner;
  private resumed = false;
  private unsubscribe: (() => void) | null = null;
  /**
   * How long a leased row is this process's. Longer than one request may take (the REST client
   * gives up after 20 s), so a status edit, re-leased just before it is sent, lands within it.
   */
  private readonly leaseMs: number;
  private readonly parallel: number;
  private readonly pollMs: number;

  constructor(private readonly opts: DeliveryOptions) {
    this.owner = opts.owner ?? leaseOwner({ exclusive: false });
    this.leaseMs = opts.leaseMs ?? 30_000;
    this.parallel = Math.max(1, opts.parallel ?? DEFAULT_PARALLEL);
    this.pollMs = opts.pollMs ?? 1000;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.unsubscribe = onOutboxCommitted(() => {
      this.commits += 1;
      this.wake();
    });
    this.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.leasing || this.inFlight.size > 0) {
      await Promise.all([this.leasing, ...this.inFlight.values()]);
    }
  }

  /** Something was enqueued: lease and deliver now (or right after the lease in progress). */
  wake(): void {
    if (this.stopped) return;
    if (this.leasing || this.inFlight.size >= this.parallel) {
      this.again = true;
      return;
    }
    const now = this.opts.clock().getTime();
    if (now < this.pauseUntil) {
      this.schedule(this.pauseUntil - now);
      return;
    }
    this.again = false;
    this.leasing = this.lease()
      .then((full) => {
        this.leasing = null;
        if (full || this.again) this.wake();
        else this.schedule(this.pollMs);
      })
      .catch((err: unknown) => {
        this.leasing = null;
        this.opts.log.error({ err: errorField(err) }, 'outbox delivery could not lease rows');
        this.schedule(this.pollMs);
      });
  }

  /** The next poll (or the end of a pause): rows written by other processes, retries, expired leases. */
  private schedule(waitMs: number): void {
    if (this.stopped) return;
    const at = Date.now() + waitMs;
    if (this.timer && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.wake();
    }, waitMs);
    this.timer.unref();
  }

  /** Leases due rows into the free slots and starts them; true if every slot was filled. */
  private async lease(): Promise<boolean> {
    const { db, clock, log } = this.opts;
    if (!this.resumed) {
      // Leases left by a crashed predecessor are released, so their threads do not wait for
      // them to run out. Resending is safe (see findEarlier).
      const released = await releaseLeasesOfGone(db, clock(), (o) => this.owner.isGone(o));
      if (released > 0) log.info({ released }, 'resuming outbox rows whose delivery was cut short');
      this.resumed = true;
    }
    if (this.leaseUnheard || this.orphans.size > 0) {
      // Every lease of ours but the rows being sent (leasing never overlaps itself): the orphans
      // known now, and any row a lease statement whose answer was lost gave us.
      // Rows still in flight (failed, their delivery not yet wound up) wait for the next lease:
      // releasing skips rows in flight, so forgetting them now would leave them leased.
      const orphans = [...this.orphans].filter((id) => !this.inFlight.has(id));
      const inDoubt = orphans.filter((id) => this.doubted.has(id));
      await releaseOwnLeasesExcept(db, this.owner.id, [...this.inFlight.keys()], inDoubt);
      this.leaseUnheard = false;
      for (const id of orphans) {
        this.orphans.delete(id);
        this.doubted.delete(id);
      }
    }
    const room = this.parallel - this.inFlight.size;
    if (room <= 0) return true;
    let rows: OutboxRow[];
    try {
      // A row whose lease ran out while this process is still sending it is not taken twice here.
      rows = await leaseDue(db, clock(), this.leaseMs, room, this.owner.id, [...this.inFlight.keys()]);
    } catch (err) {
      this.leaseUnheard = true;
      throw err;
    }
    // Posts first: a reaction or a status edit leased alongside a reply starts a turn later, so
    // the reply's request usually leaves first (unless the post must ask something first, such
    // as a name not cached), and Mattermost is not answering the others while it answers it.
    const posts = rows.filter((row) => row.kind === 'post');
    for (const row of posts) this.launch(row, false);
    for (const row of rows) if (row.kind !== 'post') this.launch(row, posts.length > 0);
    return rows.length === room;
  }

  private launch(row: OutboxRow, afterPosts: boolean): void {
    const start = afterPosts ? new Promise<void>((resolve) => setImmediate(resolve)) : Promise.resolve();
    const commits = this.commits;
    const run = start
      .then(() => this.deliverOrPause(row))
      .catch((err: unknown) => {
        // The outcome could not be recorded: the lease is released at the next lease.
        this.orphans.add(row.id);
        this.opts.log.error({ err: errorField(err), outboxId: row.id }, 'outbox delivery failed');
      })
      .finally(() => {
        this.inFlight.delete(row.id);
        const last = this.lastOfThread.delete(row.id);
        // A post that is done may make the next one of its thread due, unless its record said
        // nothing waited behind it and no transaction of this process wrote to the outbox since
        // it was leased (another process's rows are found by its own wake, or the next poll).
        // A free slot takes waiting rows.
        const next = row.kind === 'post' && (!last || this.commits !== commits);
        if (next || this.again || this.orphans.size > 0) this.wake();
      });
    this.inFlight.set(row.id, run);
    if (row.job_id !== null && row.dedupe_key === planPostKey(row.job_id)) {
      this.plansInFlight.set(row.dedupe_key, run);
      void run.finally(() => this.plansInFlight.delete(row.dedupe_key));
    }
  }

  /**
   * While this process is delivering the agent's plan post with this outbox key: a promise that
   * resolves once it is done (its job bound to it, or the attempt ended).
   */
  delivering(key: string): Promise<void> | undefined {
    return this.plansInFlight.get(key);
  }

  private async deliverOrPause(row: OutboxRow): Promise<void> {
    if (this.stopped || this.opts.clock().getTime() < this.pauseUntil) {
      // Leased before a pause began (or while stopping): wait it out, in order.
      await markRetry(this.opts.db, row, new Date(this.pauseUntil), 'waiting out a pause');
      return;
    }
    await this.deliver(row);
  }

  private async deliver(row: OutboxRow): Promise<void> {
    const { db, chat, log } = this.opts;
    // A status edit may end without sending (waiting for its post, taken over, failed for good).
    let sent = true;
    try {
      if (row.kind === 'reaction') {
        await chat.addReaction(this.opts.botUserId, row.target_post_id!, row.emoji!);
        if (!(await markDelivered(db, row, null, this.opts.clock()))) return this.leaseLost(row);
      } else if (row.kind === 'patch') {
        sent = await this.patch(row);
      } else {
        const earlier = row.attempts > 1 ? await this.findEarlier(row) : null;
        const rootId = row.root_id ?? (await this.jobThread(row));
        let postId = earlier;
        if (postId === null) {
          const message = await this.render(row.message!);
          // The lookups may have outlasted the lease: another replica may have taken the row and
          // posted it since.
          if (!(await this.stillHeld(row))) return this.leaseLost(row);
          postId = (
            await chat.createPost({
              channel_id: row.channel_id,
              ...(rootId ? { root_id: rootId } : {}),
              message,
              props: {
                ...(JSON.parse(row.props ?? '{}') as Record<string, string>),
                [OUTBOX_KEY_PROP]: row.dedupe_key,
              },
            })
          ).id;
        }
        if (row.job_id !== null && row.dedupe_key === planPostKey(row.job_id)) {
          await bindJobThread(db, row.job_id, postId, this.opts.clock());
        }
        // Marked delivered, and an edit that waited for this post (its status post) made due.
        const marked = await markPostDelivered(db, row, postId, this.opts.clock());
        if (!marked.recorded) return this.leaseLost(row);
        if (!marked.more) this.lastOfThread.add(row.id);
        if (earlier) log.info({ outboxId: row.id, postId }, 'outbox row was already posted; not resending');
      }
      if (sent) this.opts.metrics?.outboxDelivered(row.kind);
      this.failures = 0;
    } catch (err) {
      const e = err instanceof ChatError ? err : null;
      // An edit sent without an answer may still land: nobody edits the post until its lease runs out.
      const inDoubt = this.editsSent.delete(row.id) && mayStillLand(err);
      // An edit was sent, and something failed after it (its answer, or recording it): what the
      // post says is no longer known.
      const edited = this.editsTried.has(row.id);
      if (e && !e.retryable && e.kind !== 'unauthorized') {
        log.error(
          { outboxId: row.id, kind: e.kind, status: e.status, err: e.message },
          'outbox row refused by Mattermost; not retrying',
        );
        const recorded =
          row.kind === 'patch'
            ? await markPatchFailed(db, row, this.opts.clock(), e.message, edited)
            : await markFailed(db, row, this.opts.clock(), e.message);
        if (!recorded) return this.leaseLost(row);
        this.opts.metrics?.outboxFailed(row.kind, 'failed');
        return;
      }
      const now = this.opts.clock().getTime();
      // Rows in flight together fail together (the server went away once): a failure during a
      // pause another row began is the same failure, and never shortens that pause.
      const sameBurst = now < this.pauseUntil;
      let wait = e?.retryAfterMs ?? null;
      if (wait === null) {
        if (!sameBurst) this.failures++;
        wait = backoffMs(
          Math.max(0, this.failures - 1),
          this.opts.minBackoffMs ?? 500,
          this.opts.maxBackoffMs ?? 30_000,
        );
      }
      this.pauseUntil = Math.max(this.pauseUntil, now + wait);
      log.warn({ outboxId: row.id, kind: e?.kind ?? 'error', waitMs: wait }, 'outbox delivery paused');
      const why = e?.message ?? String(err);
      // Kept until the hold is recorded: if it cannot be, the orphaned row is released held.
      if (inDoubt) this.doubted.add(row.id);
      const recorded = inDoubt
        ? await markRetryHeld(db, row, new Date(this.pauseUntil), why, this.opts.clock())
        : await markRetry(db, row, new Date(this.pauseUntil), why, edited);
      this.doubted.delete(row.id);
      if (!recorded) return this.leaseLost(row);
      this.opts.metrics?.outboxFailed(row.kind, 'retry');
    } finally {
      this.editsTried.delete(row.id);
      this.editsSent.delete(row.id);
    }
  }

  /**
   * Edits a job's status post to read as the job stands now. It waits for the post itself; an
   * edit that would change nothing is not sent. Only one holder of the row's lease sends at a
   * time, and each renders the state as it finds it, so an older state never lands last.
   * False when nothing was delivered (failed for good, waiting, or taken over).
   */
  private async patch(row: OutboxRow): Promise<boolean> {
    const { db, chat } = this.opts;
    const at = this.opts.clock();
    const known = this.statusPosts.get(row.target_key!);
    const target = known
      ? { delivered_post_id: known, delivered_at: at, failed_at: null }
      : await db
          .selectFrom('outbox')
          .select(['delivered_post_id', 'delivered_at', 'failed_at'])
          .where('dedupe_key', '=', row.target_key!)
          .executeTakeFirst();
    if (!target || target.failed_at !== null || !this.opts.statusPost) {
      const why = target ? 'the status post was never posted' : 'no status post';
      if (await markPatchFailed(db, row, at, why)) this.opts.metrics?.outboxFailed(row.kind, 'failed');
      else this.leaseLost(row);
      return false;
    }
    if (target.delivered_at === null || target.delivered_post_id === null) {
      // Not posted yet: wait for it (its own delivery wakes the pass that follows).
      await markRetry(db, row, new Date(at.getTime() + 1_000), 'waiting for the status post');
      return false;
    }
    const postId = target.delivered_post_id;
    this.remember(row.target_key!, postId);
    const now = await this.opts.statusPost(db, row.job_id!, postId);
    if (!now) {
      if (await markDelivered(db, row, postId, at)) return true;
      this.leaseLost(row);
      return false;
    }
    const props = statusPropsDigest(now.props);
    if (now.message !== row.message || props !== row.props) {
      const message = await this.render(now.message);
      // Naming people may have outlasted the lease: a newer state may have been sent since. The
      // lease is always taken again here (unlike a post's), so that the whole of it is left: if
      // the request fails without an answer, its hold (`markRetryHeld`) is recorded well before
      // the lease could run out on another replica's clock. A post sent twice is found by its
      // key; an older state landing after a newer one is found by no one.
      if (!(await holdLease(db, row.id, this.owner.id, this.opts.clock(), this.leaseMs))) {
        this.opts.log.info({ outboxId: row.id }, 'status edit taken over by another holder; not sending');
        return false;
      }
      this.editsTried.add(row.id);
      this.editsSent.add(row.id);
      await chat.patchPost(postId, { message, props: { ...now.props, [OUTBOX_KEY_PROP]: row.target_key! } });
      this.editsSent.delete(row.id);
    }
    await markPatched(db, row, { message: now.message, props }, postId, this.opts.clock());
    return true;
  }

  /**
   * Whether a post's lease is still this holder's, just before its request is sent. The lease is
   * taken again (a round trip) unless what is left of it, by this clock, outlasts the longest
   * request and a margin for clocks that differ: then no other holder can have it, and the request
   * ends within it. (A status edit always takes it again: see `patch`.)
   */
  private async stillHeld(row: OutboxRow): Promise<boolean> {
    const left = row.lease_until!.getTime() - this.opts.clock().getTime();
    if (left > REQUEST_TIMEOUT_MS + LEASE_MARGIN_MS) return true;
    return holdLease(this.opts.db, row.id, this.owner.id, this.opts.clock(), this.leaseMs);
  }

  /**
   * The row's lease ran out and another holder took it (or it was released) before this one
   * recorded its outcome: nothing more is done with it here; the row is the other holder's.
   */
  private leaseLost(row: OutboxRow): void {
    this.opts.log.info(
      { outboxId: row.id, kind: row.kind },
      'outbox row taken over by another holder; not recorded',
    );
  }

  /** A status post once posted stays that post: its id is kept, not read again for every edit. */
  private remember(key: string, postId: string): void {
    if (this.statusPosts.has(key)) return;
    this.statusPosts.set(key, postId);
    if (this.statusPosts.size > STATUS_POSTS_KEPT)
      this.statusPosts.delete(this.statusPosts.keys().next().value!);
  }

  /**
   * Where an agent's job announcement goes when it was queued before the job had a thread: the
   * plan post delivered before it (the top of a channel is delivered in order), or, if
   * Mattermost refused the plan for good, the top of the channel.
   */
  private async jobThread(row: OutboxRow): Promise<string | null> {
    if (row.job_id === null || row.dedupe_key === planPostKey(row.job_id)) return null;
    const job = await this.opts.db
      .selectFrom('jobs')
      .select('root_post_id')
      .where('id', '=', row.job_id)
      .executeTakeFirst();
    return job?.root_post_id ?? null;
  }

  /** A bot post with this row's key, if an earlier attempt succeeded before it could be marked. */
  private async findEarlier(row: OutboxRow): Promise<string | null> {
    // From a little before the row was written (clocks differ), page by page (at most 1000 each).
    let since = row.created_at.getTime() - 10 * 60_000;
    for (let page = 0; page < 20; page++) {
      const posts = await this.opts.chat.postsSince(row.channel_id, since);
      const hit = posts.find(
        (p) => p.user_id === this.opts.botUserId && p.props[OUTBOX_KEY_PROP] === row.dedupe_key,
      );
      if (hit) return hit.id;
      if (posts.length < 1000) return null;
      // The page's own changes end at its 1000th (roots of its threads come along, newer).
      since = Math.max(since + 1, posts[999]!.update_at - 1);
    }
    return null;
  }

  /**
   * `<@user id>` becomes `@username`. A user the server does not know (deleted, or never there)
   * becomes `an unknown user`: never a guessed name, never a raw id, and not `@unknown-user`,
   * which would mention whoever holds that username. The id stays in the database and the bundle.
   */
  private async render(message: string): Promise<string> {
    const ids = [...new Set([...message.matchAll(MENTION_TOKEN)].map((m) => m[1]!))];
    const names = new Map<string, string>();
    for (const id of ids) {
      try {
        names.set(id, `@${(await this.opts.chat.user(id)).username}`);
      } catch (err) {
        if (err instanceof ChatError && err.retryable) throw err;
        names.set(id, UNKNOWN_USER);
      }
    }
    return message.replace(MENTION_TOKEN, (_, id: string) => names.get(id) ?? UNKNOWN_USER);
  }
}

/** How a person the chat server cannot name is shown in the bot's posts. */
export const UNKNOWN_USER = 'an unknown user';
