import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import {
  answerToRoot,
  botPostWithKey,
  expectHandledOnce,
  expectOutboxDeliveredOnce,
  outboxDrained,
} from '../helpers/bot-faults.js';
import {
  createWorld,
  eventually,
  jobIdIn,
  ready,
  RUN,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { outageDb } from '../helpers/db-outage.js';
import { silentLogger } from '../helpers/log.js';

let w: World;
const bots: RunningBot[] = [];

afterEach(async () => {
  for (const b of bots.splice(0)) await b.stop();
  await w.close();
});

const STEP = 'post-summary';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe(`a database outage (${dialectName})`, () => {
  it('is survived: requests and approvals made around it are answered exactly once when it ends', async () => {
    const o = await outageDb();
    w = await createWorld({ d: o.d });
    const b = await startBot(w);
    bots.push(b);
    await ready(b);

    const root = w.post('bruno', RUN);
    const jobId = jobIdIn(await answerToRoot(w, root.id));
    const alice = w.post('alice', `APPROVE job:${jobId} step:${STEP}`, root.id);
    await botPostWithKey(w, root.id, `reply:${alice.id}`);
    await b.bot.settle();

    // Twenty requests in flight when the database goes away, and the deciding approval during it.
    const requesters = ['bruno', 'farid', 'grace'] as const;
    const runs = Array.from({ length: 20 }, (_, i) => w.post(requesters[i % 3]!, RUN));
    o.down();
    const dmitri = w.post('dmitri', `APPROVE job:${jobId} step:${STEP}`, root.id);
    const app = buildApp({
      db: w.d.db,
      keyRing: b.engine.keyRing,
      policies: b.engine.policies,
      log: silentLogger(),
      engine: b.engine,
    });
    const readyz = async () => {
      const res = await app.inject('/readyz');
      return { status: res.statusCode, body: res.json() as { ok: boolean; reasons: string[] } };
    };
    const down = await eventually(async () => {
      const r = await readyz();
      return r.status === 503 ? r : undefined;
    }, '/readyz seeing the database down');
    expect(down.body.ok).toBe(false);
    expect(down.body.reasons.join(' ')).toMatch(/database/i);
    await sleep(3_000);
    o.up();
    await eventually(async () => (await readyz()).status === 200, '/readyz ready again');
    await app.close();

    for (const r of runs) await answerToRoot(w, r.id);
    await botPostWithKey(w, root.id, `job:${jobId}:minted:${STEP}`);
    await b.bot.settle();
    await outboxDrained(w);

    expectHandledOnce([b], [...runs.map((r) => r.id), dmitri.id]);
    await expectOutboxDeliveredOnce(w);
    const jobs = await w.d.db.selectFrom('jobs').select(['id', 'root_post_id']).execute();
    expect(jobs).toHaveLength(21);
    expect(new Set(jobs.map((j) => j.root_post_id))).toEqual(new Set([root.id, ...runs.map((r) => r.id)]));
    const tokens = await w.d.db
      .selectFrom('tokens')
      .select('jti')
      .where('job_id', '=', jobId)
      .where('step_id', '=', STEP)
      .execute();
    expect(tokens).toHaveLength(1);
    for (const r of runs) expect(w.botReplies(r.id)).toHaveLength(1);
  });
});
