import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ChatMetrics, PostPath } from '../chat/chat-metrics.js';
import { type Clock, systemClock } from '../clock.js';
import { type Db, describeDbError } from '../db/database.js';
import type { PoolStats } from '../db/pool-stats.js';
import type { OutboxRow, StepStatus } from '../db/schema.js';
import type { EngineMetrics } from '../jobs/engine-metrics.js';
import { type DatabaseSnapshot, readDatabaseSnapshot } from './database-snapshot.js';

export interface AppMetricsOptions {
  /** The server's version, in `claw_build_info`. */
  version: string;
  db: Db;
  /** The connection pool (`DatabaseHandle.pool`); absent, no pool metrics. */
  pool?: () => PoolStats;
  /** The Mattermost bot runs: its WebSocket, outbox and catch-up metrics are served. */
  chat: boolean;
  log?: Logger;
  clock?: Clock;
  /** A scrape waits this long for the database, then answers without its numbers. */
  databaseTimeoutMs?: number;
  /** The process's default metrics (`process_*`, `nodejs_*`); tests building many apps may leave them out. */
  defaultMetrics?: boolean;
}

const OUTBOX_KINDS: readonly OutboxRow['kind'][] = ['post', 'reaction', 'patch'];
const STEP_STATUSES: readonly StepStatus[] = [
  'awaiting_approval',
  'approved',
  'claimed',
  'succeeded',
  'failed',
  'denied',
  'revoked',
  'cancelled',
];
/** From a mint in the deciding approval's own transaction (milliseconds) to one deferred for hours. */
const APPROVAL_TO_TOKEN_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
/** From a live post handled at once to one found by a catch-up after an outage. */
const POST_DELAY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/**
 * The Prometheus metrics of one app, in a registry of its own (never prom-client's global one),
 * so that two apps in one process, or one test after another, never share a series.
 *
 * Counters and histograms are kept in memory by the events they count (each replica counts its
 * own; sum them across instances). What the database knows (pending outbox rows, open jobs,
 * cursors, the kill switch) is read at scrape time, in a second registry that is left out of the
 * answer when the database does not answer: `claw_database_up` then says 0 and every other
 * series is still served.
 */
export class AppMetrics {
  readonly registry = new Registry();
  /** Series read from the database at scrape time; served only when that read succeeded. */
  private readonly fromDatabase = new Registry();
  readonly engine: EngineMetrics;
  readonly chat: ChatMetrics | null;
  private readonly clock: Clock;
  private readonly timeoutMs: number;
  private inflight: Promise<DatabaseSnapshot> | null = null;

  private readonly databaseUp: Gauge;
  private readonly scrapeSeconds: Gauge;
  private readonly outboxPending: Gauge;
  private readonly outboxOldest: Gauge;
  private readonly jobsOpen: Gauge;
  private readonly stepsOpen: Gauge;
  private readonly paused: Gauge;
  private readonly cursorLag: Gauge | null;
  private readonly pool: { max: Gauge; connections: Gauge; waiting: Gauge } | null;

  constructor(private readonly opts: AppMetricsOptions) {
    this.clock = opts.clock ?? systemClock;
    this.timeoutMs = opts.databaseTimeoutMs ?? 3_000;
    const main = [this.registry];
    const db = [this.fromDatabase];
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });

    new Gauge({
      name: 'claw_build_info',
      help: 'Always 1; the version of claw-approvals serving these metrics.',
      labelNames: ['version'],
      registers: main,
    }).set({ version: opts.version }, 1);

    const decisions = new Counter({
      name: 'claw_decisions_total',
      help: 'Decisions recorded (approve, deny, revoke, cancel, confirm), accepted or rejected, by reason code and where they came from; counted when their transaction commits.',
      labelNames: ['kind', 'outcome', 'code', 'source'],
      registers: main,
    });
    const mints = new Counter({
      name: 'claw_tokens_minted_total',
      help: 'Capability tokens (CSTs) minted, counted when their transaction commits; gate is auto (no approval needed) or gated.',
      labelNames: ['gate'],
      registers: main,
    });
    for (const gate of ['auto', 'gated']) mints.inc({ gate }, 0);
    const approvalToToken = new Histogram({
      name: 'claw_approval_to_token_seconds',
      help: "Seconds from the approval that completed a gated step's quorum to the commit of its token.",
      buckets: APPROVAL_TO_TOKEN_BUCKETS,
      registers: main,
    });
    this.engine = {
      decisionRecorded: (d) =>
        decisions.inc({ kind: d.kind, outcome: d.outcome, code: d.code, source: d.source }),
      tokenMinted: (m) => {
        mints.inc({ gate: m.gate });
        if (m.sinceDecidingApproval !== null) approvalToToken.observe(m.sinceDecidingApproval);
      },
    };

    this.databaseUp = new Gauge({
      name: 'claw_database_up',
      help: "1 if this scrape's database queries answered within the timeout; 0 if not, and the series read from the database are then left out.",
      registers: main,
    });
    this.scrapeSeconds = new Gauge({
      name: 'claw_database_scrape_duration_seconds',
      help: "Seconds this scrape's database queries took (up to the timeout).",
      registers: main,
    });
    this.pool = opts.pool
      ? {
          max: new Gauge({
            name: 'claw_database_pool_max_connections',
            help: 'Connections the database pool may open (embedded PGlite: its one in-process connection).',
            registers: main,
          }),
          connections: new Gauge({
            name: 'claw_database_pool_connections',
            help: 'Open database connections, busy (checked out) or idle.',
            labelNames: ['state'],
            registers: main,
          }),
          waiting: new Gauge({
            name: 'claw_database_pool_waiting_clients',
            help: 'Queries and transactions waiting for a database connection.',
            registers: main,
          }),
        }
      : null;

    this.outboxPending = new Gauge({
      name: 'claw_outbox_pending',
      help: `Outbox rows (bot posts, reactions, status-post edits) not yet delivered nor failed for good, by kind (counted up to 100000).`,
      labelNames: ['kind'],
      registers: db,
    });
    this.outboxOldest = new Gauge({
      name: 'claw_outbox_oldest_pending_age_seconds',
      help: 'Age of the oldest pending outbox row of each kind; 0 when none is pending.',
      labelNames: ['kind'],
      registers: db,
    });
    this.jobsOpen = new Gauge({
      name: 'claw_jobs_open',
      help: 'Jobs open now (counted up to 100000).',
      registers: db,
    });
    this.stepsOpen = new Gauge({
      name: 'claw_job_steps_open',
      help: 'Steps of open jobs, by step status.',
      labelNames: ['status'],
      registers: db,
    });
    this.paused = new Gauge({
      name: 'claw_paused',
      help: '1 while the kill switch pauses work (no request, approval, mint or claim), else 0.',
      registers: db,
    });
    this.cursorLag = opts.chat
      ? new Gauge({
          name: 'claw_mattermost_cursor_lag_seconds',
          help: "Seconds between now and each followed channel's catch-up cursor. The cursor stands a few seconds behind the newest post handled, so a quiet channel's grows too; a busy channel's that grows means posts wait.",
          labelNames: ['channel'],
          registers: db,
        })
      : null;

    this.chat = opts.chat ? this.chatMetrics(main) : null;
  }

  private chatMetrics(registers: Registry[]): ChatMetrics {
    const connected = new Gauge({
      name: 'claw_mattermost_websocket_connected',
      help: "1 while the bot's Mattermost WebSocket is connected and authenticated, else 0.",
      registers,
    });
    const reconnects = new Counter({
      name: 'claw_mattermost_websocket_reconnects_total',
      help: 'WebSocket connections made after the first; resumed="true" when Mattermost replayed what was missed, "false" when the bot caught up over REST.',
      labelNames: ['resumed'],
      registers,
    });
    for (const resumed of ['true', 'false']) reconnects.inc({ resumed }, 0);
    const delivered = new Counter({
      name: 'claw_outbox_delivered_total',
      help: 'Outbox rows delivered to Mattermost by this process, by kind.',
      labelNames: ['kind'],
      registers,
    });
    const failures = new Counter({
      name: 'claw_outbox_delivery_failures_total',
      help: 'Outbox deliveries that failed, by kind; outcome="retry" when delivery pauses and tries again, "failed" when the row was given up for good.',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    for (const kind of OUTBOX_KINDS) {
      delivered.inc({ kind }, 0);
      for (const outcome of ['retry', 'failed']) failures.inc({ kind, outcome }, 0);
    }
    const postDelay = new Histogram({
      name: 'claw_mattermost_post_delay_seconds',
      help: 'Seconds from a post (its last edit) to the bot acting on it; path is live, held (live but held while its channel caught up) or catchup (read over REST).',
      labelNames: ['path'],
      buckets: POST_DELAY_BUCKETS,
      registers,
    });
    connected.set(0);
    return {
      outboxDelivered: (kind) => delivered.inc({ kind }),
      outboxFailed: (kind, outcome) => failures.inc({ kind, outcome }),
      websocketConnected: ({ reconnect, resumed }) => {
        connected.set(1);
        if (reconnect) reconnects.inc({ resumed: String(resumed) });
      },
      websocketDisconnected: () => connected.set(0),
      postHandled: (path: PostPath, seconds) => postDelay.observe({ path }, seconds),
    };
  }

  /** Prometheus' text format (version 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition: what is in memory, the pool, and what the database says now (if it answers). */
  async render(): Promise<string> {
    if (this.pool && this.opts.pool) {
      const p = this.opts.pool();
      this.pool.max.set(p.max);
      this.pool.connections.set({ state: 'busy' }, Math.max(0, p.total - p.idle));
      this.pool.connections.set({ state: 'idle' }, p.idle);
      this.pool.waiting.set(p.waiting);
    }
    const fromDb = await this.refreshFromDatabase();
    const text = await this.registry.metrics();
    return fromDb ? text + (await this.fromDatabase.metrics()) : text;
  }

  private async refreshFromDatabase(): Promise<boolean> {
    const started = performance.now();
    let snap: DatabaseSnapshot;
    try {
      snap = await this.snapshotWithin(this.timeoutMs);
    } catch (err) {
      this.databaseUp.set(0);
      this.scrapeSeconds.set((performance.now() - started) / 1000);
      this.opts.log?.warn({ reason: describeDbError(err) }, 'metrics: the database did not answer');
      return false;
    }
    this.databaseUp.set(1);
    this.scrapeSeconds.set((performance.now() - started) / 1000);
    const now = this.clock().getTime();
    for (const kind of OUTBOX_KINDS) {
      const row = snap.outbox.find((o) => o.kind === kind);
      this.outboxPending.set({ kind }, row?.pending ?? 0);
      this.outboxOldest.set({ kind }, row?.oldest ? Math.max(0, (now - row.oldest.getTime()) / 1000) : 0);
    }
    this.jobsOpen.set(snap.openJobs);
    for (const status of STEP_STATUSES)
      this.stepsOpen.set({ status }, snap.openSteps.find((s) => s.status === status)?.count ?? 0);
    this.paused.set(snap.paused ? 1 : 0);
    if (this.cursorLag) {
      // Channels no policy follows any more drop out instead of keeping their last value.
      this.cursorLag.reset();
      for (const c of snap.cursors)
        this.cursorLag.set({ channel: c.channelId }, Math.max(0, (now - c.sinceMs) / 1000));
    }
    return true;
  }

  /** One database read at a time, however many scrapes arrive: later ones share it. */
  private snapshotWithin(ms: number): Promise<DatabaseSnapshot> {
    this.inflight ??= readDatabaseSnapshot(this.opts.db).finally(() => {
      this.inflight = null;
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), ms);
    });
    return Promise.race([this.inflight, timeout]).finally(() => clearTimeout(timer));
  }
}
