import type { FastifyInstance } from 'fastify';
import { type KyselyPlugin, RawNode, sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import type { Db } from '../../src/db/database.js';
import type { PoolStats } from '../../src/db/pool-stats.js';
import { AppMetrics } from '../../src/metrics/app-metrics.js';
import { PolicyService } from '../../src/policy/policy-service.js';
import { createTestDb, dialectName } from '../helpers/db.js';
import { outageDb } from '../helpers/db-outage.js';
import { copyPolicies } from '../helpers/fs.js';
import { silentLogger } from '../helpers/log.js';
import { newKey, ringOf, testClock } from '../helpers/state.js';
import { Scrape } from './exposition.js';

const cleanup: (() => Promise<void>)[] = [];
/** Each test opens a database or two (seconds each with PGlite on a busy machine). */
const SLOW = 90_000;
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** The app as `serve` builds it, over `db`, with metrics and no METRICS_TOKEN. */
async function appWithMetrics(db: Db, pool?: () => PoolStats, databaseTimeoutMs = 3_000) {
  const keyRing = ringOf(newKey());
  const log = silentLogger();
  const policies = new PolicyService({
    db,
    keyRing,
    clock: testClock,
    log,
    policiesDir: await copyPolicies(),
  });
  const metrics = new AppMetrics({
    version: 'test',
    db,
    ...(pool ? { pool } : {}),
    chat: true,
    defaultMetrics: false,
    databaseTimeoutMs,
  });
  const app = buildApp({ db, keyRing, policies, log, metrics, metricsToken: null });
  cleanup.push(() => app.close());
  return { app, metrics };
}

async function scrape(app: FastifyInstance): Promise<Scrape> {
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  return new Scrape(res.body);
}

/** Series that only the database can give. */
const FROM_DATABASE = [
  'claw_outbox_pending',
  'claw_outbox_oldest_pending_age_seconds',
  'claw_jobs_open',
  'claw_job_steps_open',
  'claw_paused',
  'claw_mattermost_cursor_lag_seconds',
];

describe(`/metrics while the database is away (${dialectName})`, () => {
  it(
    'still answers, with claw_database_up 0, what it knows, and none of what it cannot know',
    async () => {
      const od = await outageDb();
      cleanup.push(() => od.close());
      const { app, metrics } = await appWithMetrics(od.d.db, od.d.pool);
      await sql`insert into chat_cursors (channel_id, since_ms, updated_at) values ('chan1', ${Date.now() - 60_000}, now())`.execute(
        od.d.db,
      );
      metrics.engine.decisionRecorded({
        kind: 'approve',
        outcome: 'accepted',
        code: 'APPROVAL_COUNTED',
        source: 'chat',
      });

      const up = await scrape(app);
      expect(up.value('claw_database_up')).toBe(1);
      expect(up.value('claw_jobs_open')).toBe(0);
      expect(up.value('claw_outbox_pending', { kind: 'post' })).toBe(0);
      expect(up.value('claw_mattermost_cursor_lag_seconds', { channel: 'chan1' })).toBeGreaterThanOrEqual(60);

      od.down();
      const down = await scrape(app);
      expect(down.value('claw_database_up')).toBe(0);
      for (const family of FROM_DATABASE) expect(down.has(family), family).toBe(false);
      // Counted in memory, and the process's own state: still there.
      expect(down.value('claw_decisions_total', { code: 'APPROVAL_COUNTED' })).toBe(1);
      expect(down.value('claw_build_info', { version: 'test' })).toBe(1);
      expect(down.has('claw_mattermost_websocket_connected')).toBe(true);
      expect(down.value('claw_database_scrape_duration_seconds')).toBeGreaterThanOrEqual(0);
      if (od.d.pool) expect(down.has('claw_database_pool_connections')).toBe(true);

      od.up();
      const back = await scrape(app);
      expect(back.value('claw_database_up')).toBe(1);
      expect(back.value('claw_jobs_open')).toBe(0);
    },
    SLOW,
  );

  it(
    'answers within its timeout when the database does not answer, and one read serves the waiting scrapes',
    async () => {
      const d = await createTestDb();
      cleanup.push(() => d.close());
      // Counts the snapshot reads begun (each starts by setting its statement timeout).
      let reads = 0;
      const counting: KyselyPlugin = {
        transformQuery: ({ node }) => {
          if (RawNode.is(node) && node.sqlFragments.join('').includes('statement_timeout')) reads++;
          return node;
        },
        transformResult: async ({ result }) => result,
      };
      const { app } = await appWithMetrics(d.db.withPlugin(counting), d.pool, 300);
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => (locked = r));
      // PostgreSQL: the outbox is locked; PGlite: its one connection is held.
      const holder = d.db.transaction().execute(async (trx) => {
        await sql`lock table outbox in access exclusive mode`.execute(trx);
        locked();
        await released;
      });
      try {
        await isLocked;
        const [a, b] = await Promise.all([scrape(app), scrape(app)]);
        const c = await scrape(app);
        for (const m of [a, b, c]) {
          expect(m.value('claw_database_up')).toBe(0);
          expect(m.has('claw_outbox_pending')).toBe(false);
        }
        // Three scrapes, at most one read waiting on the database (none begun yet on PGlite).
        expect(reads).toBe(dialectName === 'postgres' ? 1 : 0);
      } finally {
        release();
        await holder;
      }
      const later = await scrape(app);
      expect(later.value('claw_database_up')).toBe(1);
      expect(later.value('claw_outbox_pending', { kind: 'post' })).toBe(0);
    },
    SLOW,
  );

  it(
    'counts pending outbox rows by kind and leaves delivered and failed ones out',
    async () => {
      const d = await createTestDb();
      cleanup.push(() => d.close());
      const { app } = await appWithMetrics(d.db);
      const at = new Date(Date.now() - 120_000);
      const row = (key: string, kind: 'post' | 'reaction' | 'patch', extra: object = {}) => ({
        dedupe_key: key,
        kind,
        channel_id: 'chan1',
        message: 'm',
        created_at: at,
        next_attempt_at: at,
        ...extra,
      });
      await d.db
        .insertInto('outbox')
        .values([
          row('a', 'post'),
          row('b', 'post'),
          row('c', 'reaction', { message: null, target_post_id: 'p'.repeat(26), emoji: 'eyes' }),
          row('d', 'post', { delivered_at: at }),
          row('e', 'post', { failed_at: at }),
        ])
        .execute();
      const m = await scrape(app);
      expect(m.value('claw_outbox_pending', { kind: 'post' })).toBe(2);
      expect(m.value('claw_outbox_pending', { kind: 'reaction' })).toBe(1);
      expect(m.value('claw_outbox_pending', { kind: 'patch' })).toBe(0);
      expect(m.value('claw_outbox_oldest_pending_age_seconds', { kind: 'post' })).toBeGreaterThanOrEqual(120);
      expect(m.value('claw_outbox_oldest_pending_age_seconds', { kind: 'patch' })).toBe(0);
      expect(m.value('claw_outbox_oldest_pending_age_seconds', { kind: 'reaction' })).toBeGreaterThanOrEqual(
        120,
      );
    },
    SLOW,
  );
});
