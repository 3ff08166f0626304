import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import {
  answerToRoot,
  botPostWithKey,
  expectHandledOnce,
  killBot,
  replyKeys,
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
import { pidNamespace } from '../../src/chat/lease-owner.js';
import { dialectName } from '../helpers/db.js';

let w: World;
const bots: RunningBot[] = [];

afterEach(async () => {
  for (const b of bots.splice(0)) await b.stop();
  await w.close();
});

async function bot(): Promise<RunningBot> {
  const b = await startBot(w);
  bots.push(b);
  await ready(b);
  return b;
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '0']);
  return child.pid;
}

const row = (key: string) =>
  w.d.db.selectFrom('outbox').selectAll().where('dedupe_key', '=', key).executeTakeFirstOrThrow();

/** As if the process died between Mattermost's 201 and recording it: leased, undelivered. */
async function leftLeased(key: string, owner: string): Promise<void> {
  await w.d.db
    .updateTable('outbox')
    .set({
      delivered_at: null,
      delivered_post_id: null,
      lease_until: new Date(Date.now() + 120_000),
      lease_owner: owner,
    })
    .where('dedupe_key', '=', key)
    .execute();
}

describe(`outbox leases of a crashed process (${dialectName})`, () => {
  it('are resumed at once on restart, without posting twice; a live holder elsewhere keeps its lease', async () => {
    w = await createWorld();
    const first = await bot();
    const root = w.post('bruno', RUN);
    const plan = await answerToRoot(w, root.id);
    const jobId = jobIdIn(plan);
    const other = w.post('farid', RUN);
    await answerToRoot(w, other.id);
    await first.bot.settle();
    await killBot(first);

    // This host's previous process died holding the plan's lease; another host holds the other.
    await leftLeased(`reply:${root.id}`, `${deadPid()} ${os.hostname()} ${pidNamespace()} crashed-instance`);
    await leftLeased(`reply:${other.id}`, `4242 another-host.example live-instance`);
    // While down, an approval arrives: its answer queues behind the plan in the thread.
    const alice = w.post('alice', `APPROVE job:${jobId} step:post-summary`, root.id);

    const restarted = await bot();
    const answer = await botPostWithKey(w, root.id, `reply:${alice.id}`);
    expect(answer.message).toContain('@alice');
    const planRow = await row(`reply:${root.id}`);
    expect(planRow.delivered_post_id).toBe(plan.id);
    expect(replyKeys(w, root.id)).toEqual([`reply:${root.id}`, `reply:${alice.id}`]);
    expectHandledOnce([first, restarted], [root.id, alice.id]);

    await restarted.bot.settle();
    const otherRow = await row(`reply:${other.id}`);
    expect(otherRow.delivered_at).toBeNull();
    expect(otherRow.lease_owner).toBe('4242 another-host.example live-instance');
    expect(w.botReplies(other.id)).toHaveLength(1);
    await eventually(
      async () => (await row(`reply:${alice.id}`)).delivered_at !== null,
      'the answer recorded',
    );
  });
});
