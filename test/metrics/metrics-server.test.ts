import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.js';
import { createWorld, eventually, jobIdIn, RUN, type World } from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { OPS } from '../helpers/engine.js';
import { Scrape } from './exposition.js';
import { METRICS_TOKEN, poll, type Served, serve } from './metrics-world.js';

const STEP = 'post-summary';
let w: World;
let s: Served;
let db: Db;

// Each test gets its own sandbox, database and server (temporary directories live for one test).
beforeEach(async () => {
  w = await createWorld();
  s = await serve({ world: w });
  db = s.server.runtime.database.db;
  await eventually(() => s.server.bot?.readiness().ok, 'the bot connected');
  await s.server.bot!.settle();
});
afterEach(async () => {
  await s?.stop();
  await w?.close();
});
/** A test that starts a server and talks to it through the sandbox, on a shared 2-core machine. */
const SLOW = 120_000;

async function requestJob() {
  const root = w.post('bruno', RUN);
  const plan = await eventually(
    () => w.botReplies(root.id).find((p) => p.message.includes('Plan for job:')),
    'plan post',
  );
  return { root, jobId: jobIdIn(plan) };
}

const replyWith = (rootId: string, text: string) =>
  eventually(() => w.botReplies(rootId).find((p) => p.message.includes(text)), `a reply with "${text}"`);

const decisions = (m: Scrape, labels: Record<string, string>) => m.count('claw_decisions_total', labels);
const mints = (m: Scrape, gate: 'auto' | 'gated') => m.value('claw_tokens_minted_total', { gate });
const toToken = (m: Scrape) => m.value('claw_approval_to_token_seconds_count');

describe(`/metrics of a serving bot (${dialectName})`, () => {
  it(
    'is refused without METRICS_TOKEN, a wrong one or one presented otherwise; with it, serves the process, pool, database and WebSocket',
    async () => {
      const refusals: Record<string, string>[] = [
        {},
        { authorization: 'Bearer wrong-token-of-the-right-length-012345678' },
        { authorization: `Bearer ${METRICS_TOKEN}x` },
        { authorization: `Bearer ${METRICS_TOKEN.slice(0, -1)}` },
        { authorization: `bearer ${METRICS_TOKEN}` },
        { authorization: `Basic ${Buffer.from(`x:${METRICS_TOKEN}`).toString('base64')}` },
        { authorization: `Bearer  ${METRICS_TOKEN}` },
      ];
      for (const headers of refusals) {
        const res = await s.get(headers);
        expect(res.status, JSON.stringify(headers)).toBe(401);
        expect(JSON.parse(res.body)).toEqual({
          error: { code: 'ERR_UNAUTHENTICATED', message: expect.any(String) },
        });
        expect(res.body).not.toContain(METRICS_TOKEN);
        expect(res.body).not.toContain('claw_');
      }
      const inQuery = await fetch(`${s.server.url}/metrics?token=${METRICS_TOKEN}`);
      expect(inQuery.status).toBe(401);
      const right = await s.get({ authorization: `Bearer ${METRICS_TOKEN}` });
      expect(right.status).toBe(200);
      expect(right.type).toBe('text/plain; version=0.0.4; charset=utf-8');
      const m = new Scrape(right.body);
      expect(m.family('claw_build_info').samples).toEqual([
        { name: 'claw_build_info', labels: { version: expect.stringMatching(/^\d+\.\d+\.\d+/) }, value: 1 },
      ]);
      // What it serves: the process, the pool, the database and the WebSocket.
      expect(m.value('claw_database_up')).toBe(1);
      expect(m.family('process_cpu_user_seconds_total').type).toBe('counter');
      expect(m.has('nodejs_eventloop_lag_seconds')).toBe(true);
      expect(m.value('claw_mattermost_websocket_connected')).toBe(1);
      expect(m.value('claw_database_pool_max_connections')).toBe(dialectName === 'postgres' ? 10 : 1);
      const busy = m.value('claw_database_pool_connections', { state: 'busy' });
      const idle = m.value('claw_database_pool_connections', { state: 'idle' });
      expect(busy).toBeGreaterThanOrEqual(0);
      expect(busy + idle).toBeLessThanOrEqual(m.value('claw_database_pool_max_connections'));
      expect(m.value('claw_database_pool_waiting_clients')).toBeGreaterThanOrEqual(0);
      expect(m.value('claw_paused')).toBe(0);
      for (const kind of ['post', 'reaction', 'patch'])
        expect(m.value('claw_outbox_pending', { kind })).toBeGreaterThanOrEqual(0);
      for (const family of [
        'claw_decisions_total',
        'claw_tokens_minted_total',
        'claw_outbox_delivered_total',
      ])
        expect(m.family(family).type).toBe('counter');
      expect(m.family('claw_approval_to_token_seconds').type).toBe('histogram');
      expect(m.family('claw_mattermost_websocket_connected').type).toBe('gauge');
    },
    SLOW,
  );

  it(
    'counts two approvals, the mint and the time to its token; refusals under their codes; open jobs',
    async () => {
      const before = await s.scrape();
      const { root, jobId } = await requestJob();
      const created = await s.scrape();
      // The three read-only steps are minted with the job; the gated one waits.
      expect(mints(created, 'auto') - mints(before, 'auto')).toBe(3);
      expect(mints(created, 'gated')).toBe(mints(before, 'gated'));
      expect(created.value('claw_jobs_open') - before.value('claw_jobs_open')).toBe(1);
      const awaiting = (m: Scrape) => m.value('claw_job_steps_open', { status: 'awaiting_approval' });
      expect(awaiting(created) - awaiting(before)).toBe(1);

      const phrase = `APPROVE job:${jobId} step:${STEP}`;
      w.post('outsider', phrase, root.id);
      await replyWith(root.id, 'ERR_NOT_ELIGIBLE');
      w.post('bruno', phrase, root.id);
      await replyWith(root.id, 'the requester cannot approve their own job');
      w.post('alice', phrase, root.id);
      await replyWith(root.id, 'Approval by @alice counted');
      const half = await s.scrape();
      expect(mints(half, 'gated')).toBe(mints(before, 'gated'));
      expect(toToken(half)).toBe(toToken(before));
      w.post('chioma', phrase, root.id);
      await replyWith(root.id, 'approved by');

      const after = await s.scrape();
      const moved = (labels: Record<string, string>) => decisions(after, labels) - decisions(before, labels);
      expect(moved({ kind: 'approve', outcome: 'accepted', code: 'APPROVAL_COUNTED', source: 'chat' })).toBe(
        2,
      );
      expect(moved({ kind: 'approve', outcome: 'rejected', code: 'ERR_NOT_ELIGIBLE', source: 'chat' })).toBe(
        1,
      );
      expect(moved({ kind: 'approve', outcome: 'rejected', code: 'ERR_SELF_APPROVAL', source: 'chat' })).toBe(
        1,
      );
      // Every decision the database recorded is counted once, under the code it was recorded with.
      const rows = await db
        .selectFrom('decisions')
        .select(['kind', 'outcome', 'reason_code'])
        .where('named_job', '=', jobId)
        .execute();
      expect(rows).toHaveLength(4);
      for (const r of rows)
        expect(
          decisions(after, { kind: r.kind, outcome: r.outcome, code: r.reason_code, source: 'chat' }),
        ).toBeGreaterThan(0);
      expect(mints(after, 'gated') - mints(before, 'gated')).toBe(1);
      expect(mints(after, 'auto') - mints(before, 'auto')).toBe(3);
      expect(toToken(after) - toToken(before)).toBe(1);
      const sum =
        after.value('claw_approval_to_token_seconds_sum') -
        before.value('claw_approval_to_token_seconds_sum');
      expect(sum).toBeGreaterThanOrEqual(0);
      // The mint commits in the deciding approval's own transaction: well within a minute.
      expect(after.value('claw_approval_to_token_seconds_bucket', { le: '60' })).toBe(
        after.value('claw_approval_to_token_seconds_bucket', { le: '+Inf' }),
      );
      expect(awaiting(after)).toBe(awaiting(before));
      expect(after.value('claw_job_steps_open', { status: 'approved' })).toBeGreaterThanOrEqual(4);
      const live = (m: Scrape) => m.count('claw_mattermost_post_delay_seconds_count', { path: 'live' });
      // The request and four approvals were handled as they arrived.
      expect(live(after) - live(before)).toBeGreaterThanOrEqual(5);

      const lag = await poll(
        async () => (await s.scrape()).find('claw_mattermost_cursor_lag_seconds', { channel: OPS.channel }),
        "the channel's cursor",
      );
      expect(lag).toBeGreaterThanOrEqual(0);
    },
    SLOW,
  );

  it(
    'never counts a decision or a mint whose transaction rolled back',
    async () => {
      const { root, jobId } = await requestJob();
      const phrase = `APPROVE job:${jobId} step:${STEP}`;
      w.post('alice', phrase, root.id);
      await replyWith(root.id, 'Approval by @alice counted');
      const before = await s.scrape();

      // chioma's approval (the one that completes quorum and mints) fails at COMMIT, as a lost
      // serialization race would: the bot retries it, and every attempt is rolled back.
      await sql`create sequence refused_commits`.execute(db);
      await sql`create function refuse_commit() returns trigger language plpgsql as $$
      begin perform nextval('refused_commits'); raise exception 'refused at commit' using errcode = '40001'; end $$`.execute(
        db,
      );
      await sql`create constraint trigger refuse_chioma after insert on decisions
      deferrable initially deferred for each row
      when (new.user_id = ${sql.lit(w.ids.chioma)}) execute function refuse_commit()`.execute(db);
      try {
        w.post('chioma', phrase, root.id);
        await eventually(async () => {
          const r = await sql<{ n: number; called: boolean }>`
          select last_value::int as n, is_called as called from refused_commits`.execute(db);
          return r.rows[0]!.called && r.rows[0]!.n >= 3;
        }, 'three attempts refused at commit');
        const during = await s.scrape();
        expect(decisions(during, { code: 'APPROVAL_COUNTED' })).toBe(
          decisions(before, { code: 'APPROVAL_COUNTED' }),
        );
        expect(mints(during, 'gated')).toBe(mints(before, 'gated'));
        expect(toToken(during)).toBe(toToken(before));
        expect(
          await db
            .selectFrom('decisions')
            .select('id')
            .where('user_id', '=', w.ids.chioma)
            .where('named_job', '=', jobId)
            .execute(),
        ).toEqual([]);
      } finally {
        await sql`drop trigger refuse_chioma on decisions`.execute(db);
      }
      // The next attempt commits: counted exactly once.
      await replyWith(root.id, 'approved by');
      const after = await s.scrape();
      expect(
        decisions(after, { kind: 'approve', outcome: 'accepted', code: 'APPROVAL_COUNTED', source: 'chat' }) -
          decisions(before, {
            kind: 'approve',
            outcome: 'accepted',
            code: 'APPROVAL_COUNTED',
            source: 'chat',
          }),
      ).toBe(1);
      expect(mints(after, 'gated') - mints(before, 'gated')).toBe(1);
      expect(toToken(after) - toToken(before)).toBe(1);
    },
    SLOW,
  );

  it(
    'shows the outbox backlog and failed deliveries while Mattermost refuses posts, then drains',
    async () => {
      const before = await s.scrape();
      w.sandbox.injectFault({ status: 503, method: 'POST', pathPrefix: '/api/v4/posts', forMs: 600_000 });
      try {
        const root = w.post('bruno', RUN);
        const during = await poll(async () => {
          const m = await s.scrape();
          const retried =
            m.value('claw_outbox_delivery_failures_total', { kind: 'post', outcome: 'retry' }) -
            before.value('claw_outbox_delivery_failures_total', { kind: 'post', outcome: 'retry' });
          return retried >= 2 && m.value('claw_outbox_pending', { kind: 'post' }) >= 1 ? m : null;
        }, 'a pending post and failed attempts');
        expect(
          during.value('claw_outbox_oldest_pending_age_seconds', { kind: 'post' }),
        ).toBeGreaterThanOrEqual(0);
        expect(during.value('claw_outbox_delivery_failures_total', { kind: 'post', outcome: 'failed' })).toBe(
          before.value('claw_outbox_delivery_failures_total', { kind: 'post', outcome: 'failed' }),
        );
        expect(w.botReplies(root.id)).toEqual([]);
      } finally {
        w.sandbox.clearFaults();
      }
      const drained = await poll(async () => {
        const m = await s.scrape();
        return m.value('claw_outbox_pending', { kind: 'post' }) === 0 ? m : null;
      }, 'the backlog delivered');
      expect(
        drained.value('claw_outbox_delivered_total', { kind: 'post' }) -
          before.value('claw_outbox_delivered_total', { kind: 'post' }),
      ).toBeGreaterThanOrEqual(1);
      expect(drained.value('claw_outbox_oldest_pending_age_seconds', { kind: 'post' })).toBe(0);
    },
    SLOW,
  );

  it(
    'counts a WebSocket reconnect and shows the connection state',
    async () => {
      const reconnects = (m: Scrape) =>
        m.value('claw_mattermost_websocket_reconnects_total', { resumed: 'true' }) +
        m.value('claw_mattermost_websocket_reconnects_total', { resumed: 'false' });
      const before = await s.scrape();
      await w.sandbox.close();
      const down = await poll(async () => {
        const m = await s.scrape();
        return m.value('claw_mattermost_websocket_connected') === 0 ? m : null;
      }, 'the WebSocket down');
      expect(down.value('claw_database_up')).toBe(1);
      await w.sandbox.listen();
      const up = await poll(async () => {
        const m = await s.scrape();
        return m.value('claw_mattermost_websocket_connected') === 1 ? m : null;
      }, 'the WebSocket back');
      expect(reconnects(up) - reconnects(before)).toBe(1);
    },
    SLOW,
  );
});
