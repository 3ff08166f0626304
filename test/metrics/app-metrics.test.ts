import { register as globalRegistry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { AppMetrics } from '../../src/metrics/app-metrics.js';
import { createTestDb, dialectName, type TestDb } from '../helpers/db.js';
import { Scrape } from './exposition.js';
import { type Served, serve } from './metrics-world.js';

let d: TestDb | undefined;
let s: Served | undefined;
afterEach(async () => {
  await s?.stop();
  await d?.close();
  s = undefined;
  d = undefined;
});

describe(`metrics registries (${dialectName})`, () => {
  it('two apps in one process keep their own series, and the global registry stays empty', async () => {
    d = await createTestDb();
    const one = new AppMetrics({ version: 'one', db: d.db, chat: true });
    const two = new AppMetrics({ version: 'two', db: d.db, chat: false });
    one.engine.tokenMinted({ gate: 'gated', sinceDecidingApproval: 2 });
    one.chat!.outboxFailed('post', 'failed');
    const a = new Scrape(await one.render());
    const b = new Scrape(await two.render());
    expect(a.value('claw_tokens_minted_total', { gate: 'gated' })).toBe(1);
    expect(b.value('claw_tokens_minted_total', { gate: 'gated' })).toBe(0);
    expect(a.value('claw_outbox_delivery_failures_total', { kind: 'post', outcome: 'failed' })).toBe(1);
    expect(b.has('claw_outbox_delivery_failures_total')).toBe(false);
    expect(b.has('claw_mattermost_websocket_connected')).toBe(false);
    expect(a.value('claw_build_info', { version: 'one' })).toBe(1);
    expect(b.value('claw_build_info', { version: 'two' })).toBe(1);
    // Both carry the process metrics, each in its own registry.
    expect(a.has('process_resident_memory_bytes') && b.has('process_resident_memory_bytes')).toBe(true);
    expect(globalRegistry.getMetricsAsArray()).toEqual([]);
  });

  it('an API-only server without METRICS_TOKEN serves /metrics to anyone, without Mattermost series', async () => {
    s = await serve({ token: null });
    const res = await s.get();
    expect(res.status).toBe(200);
    expect(res.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    const m = new Scrape(res.body);
    expect(m.value('claw_database_up')).toBe(1);
    expect(m.value('claw_jobs_open')).toBe(0);
    expect(m.value('claw_outbox_pending', { kind: 'post' })).toBe(0);
    expect([...m.families.keys()].filter((n) => n.startsWith('claw_mattermost_'))).toEqual([]);
    // A header that would be refused where a token is configured is simply not needed here.
    expect((await s.get({ authorization: 'Bearer anything-at-all' })).status).toBe(200);
    // The route is in the OpenAPI document like every other.
    const doc = (await (await fetch(`${s.server.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { operationId?: string }>>;
    };
    expect(doc.paths['/metrics']?.get?.operationId).toBe('getMetrics');
  });
});
