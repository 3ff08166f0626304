import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Db } from '../db/database.js';
import type { OutboxRow } from '../db/schema.js';
import { MENTION_TOKEN } from './mention-token.js';
import type { ChatMetrics } from './chat-metrics.js';
import type { ChatPort } from './chat-port.js';
import { backoffMs, ChatError } from '../ports/chat-error.js';
import { type LeaseOwner, leaseOwner } from './lease-owner.js';
import {
  bindJobThread,
  holdLease,
  leaseDue,
  markDelivered,
  markFailed,
  markPatched,
  markRetry,
  planPostKey,
  releaseLeasesOfGone,
  releaseStatusWait,
  statusPropsDigest,
} from './outbox.js';

/** A job's status post as it should read now; null when there is nothing to show. */
export type StatusRenderer = (
  db: Db,
  jobId: number,
  postId: string,
) => Promise<{ message: string; props: Record<string, unknown> } | null>;

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
  batch?: number;
  /** Threads delivered at once. */
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
 */
export class OutboxDelivery {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = true;
  private pauseUntil = 0;
  private failures = 0;
  private readonly owner: LeaseOwner;
  private resumed = false;
  /**
   * How long a leased row is this process's. Longer than one request may take (the REST client
   * gives up after 20 s), so a status edit, re-leased just before it is sent, lands within it.
   */
  private readonly leaseMs: number;

  constructor(private readonly opts: DeliveryOptions) {
    this.owner = opts.owner ?? leaseOwner({ exclusive: false });
    this.leaseMs = opts.leaseMs ?? 30_000;
  }

  start(): void {
    this.stopped = false;
    this.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** Something was enqueued: deliver now (or right after the pass in progress). */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.running = this.pass()
      .catch((err: unknown) => this.opts.log.error({ err }, 'outbox delivery pass failed'))
      .finally(() => {
        this.running = null;
        if (this.stopped) return;
        const now = this.opts.clock().getTime();
        const wait =
          this.again && now >= this.pauseUntil
            ? 0
            : Math.max(this.pauseUntil - now, this.again ? 0 : (this.opts.pollMs ?? 1000));
        this.again = false;
        this.timer = setTimeout(() => this.wake(), wait);
        this.timer.unref();
      });
  }

  /** Delivers everything due now; resolves when nothing is left or delivery must pause. */
  async pass(): Promise<void> {
    if (this.opts.clock().getTime() < this.pauseUntil) return;
    // Leases nobody works on are released, so their threads do not wait for them to run out:
    // a crashed predecessor's (checked once, at start), and our own from an earlier pass that
    // could not record its outcome (the database went away). Passes never overlap, so every
    // lease this process holds here is such a leftover. Resending is safe (see findEarlier).
    const released = await releaseLeasesOfGone(
      this.opts.db,
      this.opts.clock(),
      (o) => o === this.owner.id || (!this.resumed && this.owner.isGone(o)),
    );
    if (released > 0) this.opts.log.info({ released }, 'resuming outbox rows whose delivery was cut short');
    this.resumed = true;
    for (;;) {
      const rows = await leaseDue(
        this.opts.db,
        this.opts.clock(),
        this.leaseMs,
        this.opts.batch ?? 20,
        this.owner.id,
      );
      if (rows.length === 0) return;
      // A batch holds at most one post per thread (see leaseDue), so threads go out in parallel
      // while each thread keeps its order.
      let paused = false;
      const next = [...rows];
      const worker = async () => {
        for (let row = next.shift(); row; row = next.shift()) {
          if (this.stopped) return;
          if (paused) {
            await markRetry(this.opts.db, row.id, new Date(this.pauseUntil), 'waiting out a pause');
            continue;
          }
          if (!(await this.deliver(row))) paused = true;
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.opts.parallel ?? 8, rows.length) }, worker));
      if (paused || this.stopped) return;
    }
  }

  private async deliver(row: OutboxRow): Promise<boolean> {
    const { db, chat, log } = this.opts;
    // A status edit may end without sending (waiting for its post, taken over, failed for good).
    let sent = true;
    try {
      if (row.kind === 'reaction') {
        await chat.addReaction(this.opts.botUserId, row.target_post_id!, row.emoji!);
        await markDelivered(db, row.id, null, this.opts.clock());
      } else if (row.kind === 'patch') {
        sent = await this.patch(row);
      } else {
        const earlier = row.attempts > 1 ? await this.findEarlier(row) : null;
        const rootId = row.root_id ?? (await this.jobThread(row));
        const postId =
          earlier ??
          (
            await chat.createPost({
              channel_id: row.channel_id,
              ...(rootId ? { root_id: rootId } : {}),
              message: await this.render(row.message!),
              props: {
                ...(JSON.parse(row.props ?? '{}') as Record<string, string>),
                [OUTBOX_KEY_PROP]: row.dedupe_key,
              },
            })
          ).id;
        if (row.job_id !== null && row.dedupe_key === planPostKey(row.job_id)) {
          await bindJobThread(db, row.job_id, postId, this.opts.clock());
        }
        await markDelivered(db, row.id, postId, this.opts.clock());
        // Edits that waited for this post are due now.
        if (row.job_id !== null) await releaseStatusWait(db, row.job_id, row.dedupe_key, this.opts.clock());
        if (earlier) log.info({ outboxId: row.id, postId }, 'outbox row was already posted; not resending');
      }
      if (sent) this.opts.metrics?.outboxDelivered(row.kind);
      this.failures = 0;
      return true;
    } catch (err) {
      const e = err instanceof ChatError ? err : null;
      if (e && !e.retryable && e.kind !== 'unauthorized') {
        log.error(
          { outboxId: row.id, kind: e.kind, status: e.status, err: e.message },
          'outbox row refused by Mattermost; not retrying',
        );
        await markFailed(db, row.id, this.opts.clock(), e.message);
        this.opts.metrics?.outboxFailed(row.kind, 'failed');
        return true;
      }
      const wait =
        e?.retryAfterMs ??
        backoffMs(this.failures++, this.opts.minBackoffMs ?? 500, this.opts.maxBackoffMs ?? 30_000);
      this.pauseUntil = this.opts.clock().getTime() + wait;
      log.warn({ outboxId: row.id, kind: e?.kind ?? 'error', waitMs: wait }, 'outbox delivery paused');
      await markRetry(db, row.id, new Date(this.pauseUntil), e?.message ?? String(err));
      this.opts.metrics?.outboxFailed(row.kind, 'retry');
      return false;
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
    const target = await db
      .selectFrom('outbox')
      .select(['delivered_post_id', 'delivered_at', 'failed_at'])
      .where('dedupe_key', '=', row.target_key!)
      .executeTakeFirst();
    if (!target || target.failed_at !== null || !this.opts.statusPost) {
      await markFailed(db, row.id, at, target ? 'the status post was never posted' : 'no status post');
      this.opts.metrics?.outboxFailed(row.kind, 'failed');
      return false;
    }
    if (target.delivered_at === null || target.delivered_post_id === null) {
      // Not posted yet: wait for it (its own delivery wakes the pass that follows).
      await markRetry(db, row.id, new Date(at.getTime() + 1_000), 'waiting for the status post');
      return false;
    }
    const postId = target.delivered_post_id;
    const now = await this.opts.statusPost(db, row.job_id!, postId);
    if (!now) {
      await markDelivered(db, row.id, postId, at);
      return true;
    }
    const props = statusPropsDigest(now.props);
    if (now.message !== row.message || props !== row.props) {
      const message = await this.render(now.message);
      // Naming people may have outlasted the lease: a newer state may have been sent since.
      if (!(await holdLease(db, row.id, this.owner.id, this.opts.clock(), this.leaseMs))) {
        this.opts.log.info({ outboxId: row.id }, 'status edit taken over by another holder; not sending');
        return false;
      }
      await chat.patchPost(postId, { message, props: { ...now.props, [OUTBOX_KEY_PROP]: row.target_key! } });
    }
    await markPatched(db, row, { message: now.message, props }, postId, this.opts.clock());
    return true;
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
