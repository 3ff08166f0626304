import { afterEach, describe, expect, it } from 'vitest';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import { OUTBOX_KEY_PROP } from '../../src/chat/outbox-delivery.js';
import { statusPatchKey } from '../../src/chat/outbox.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import { approve, botSays, GATED, jobRow, requestJob, tokensOf } from '../helpers/bot-thread.js';
import { expectOutboxDeliveredOnce, killBot, outboxDrained, replyKeys } from '../helpers/bot-faults.js';
import {
  createWorld,
  eventually,
  ready,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { OPS } from '../helpers/engine.js';
import { receiptFor } from '../helpers/receipts.js';
import {
  type EditWatch,
  expectForwardOnly,
  patchesSent,
  statusHistory,
  watchEdits,
  WORLD_PUBLIC_URL,
} from '../helpers/status-watch.js';

let w: World;
let watch: EditWatch | null = null;
const bots: RunningBot[] = [];

afterEach(async () => {
  watch?.close();
  watch = null;
  for (const b of bots.splice(0)) await b.stop();
  await w.close();
});

async function setup(replicas = 1): Promise<RunningBot[]> {
  w = await createWorld();
  for (let i = 0; i < replicas; i++) bots.push(await startBot(w));
  await Promise.all(bots.map((b) => ready(b)));
  watch = await watchEdits(w, 'alice');
  return bots;
}

/** A post of the thread as Mattermost has it now. */
function postNow(rootId: string, postId: string) {
  return w.sandbox.thread(rootId).find((p) => p.id === postId)!;
}

/** The agent claims, redeems and reports every step it may run now, each with `summary`. */
async function agentRuns(
  b: RunningBot,
  jobId: number,
  steps: string[],
  summary = (s: string) => `${s} done`,
) {
  for (const step of steps) {
    const claimed = await claimToken(b.engine, { jobId, step, agentId: OPS.executor });
    await redeemToken(b.engine, claimed.token);
    await reportResult(b.engine, {
      jobId,
      step,
      agentId: OPS.executor,
      status: 'succeeded',
      summary: summary(step),
      receipts: [receiptFor(claimed)],
    });
  }
}

const AUTO = ['search-kb', 'read-runbook', 'fetch-status'];

describe(`the living status post (${dialectName})`, () => {
  it('is edited in place as the job moves, ends with the outcome and bundle link, and adds no reply per step result', async () => {
    const [b] = await setup();
    const { root, plan, jobId } = await requestJob(w);
    expect(plan.message).toContain('⏳ 0/2');
    expect(plan.edit_at).toBe(0);

    w.post('alice', approve(jobId), root.id);
    await eventually(
      () => postNow(root.id, plan.id).message.includes('⏳ 1/2 @alice'),
      'the post names alice',
    );
    w.post('chioma', approve(jobId), root.id);
    await botSays(w, root.id, 'approved by');
    await eventually(
      () => /\| `post-summary` .*✅ approved · CST `/.test(postNow(root.id, plan.id).message),
      'approved',
    );

    await agentRuns(b!, jobId, [...AUTO, GATED]);
    await botSays(w, root.id, `job:${jobId} completed`);
    await outboxDrained(w);
    const job = await jobRow(w, jobId);
    const final = postNow(root.id, plan.id);
    expect(final.edit_at).toBeGreaterThan(0);
    expect(final.message).toContain('**Status: ✅ completed**');
    expect(final.message).toContain(`${WORLD_PUBLIC_URL}/v1/bundles/${job.bundle_id}`);
    for (const step of [...AUTO, GATED])
      expect(final.message).toMatch(new RegExp(`\\| \`${step}\` .*✅ succeeded`));
    expect(final.message).toContain(`\`${GATED}\` succeeded: ${GATED} done`);
    // No phrase to approve is left on a finished job.
    expect(final.message).not.toContain(approve(jobId));

    // The thread: the plan, the answer to alice, the mint, the outcome. Nothing per step result.
    const keys = replyKeys(w, root.id);
    expect(keys[0]).toBe(`reply:${root.id}`);
    expect(keys.filter((k) => /^job:\d+:minted:post-summary$/.test(k))).toHaveLength(1);
    expect(keys.at(-1)).toBe(`job:${jobId}:ended`);
    for (const p of w.botReplies(root.id).slice(1)) expect(p.message).not.toContain(' done');

    // Every edit people saw was a state of the job, in the job's order, ending at the last.
    await watch!.flush();
    const seen = watch!.edits(plan.id);
    const history = await statusHistory(w, jobId);
    expectForwardOnly(seen, history);
    expect(seen.at(-1)).toBe(history.at(-1));
    expect(seen.length).toBeGreaterThanOrEqual(3);
    await expectOutboxDeliveredOnce(w);
  });

  it('coalesces changes made while Mattermost refuses edits: after recovery the post reads the final state, with fewer edits than changes', async () => {
    const [b] = await setup();
    const { root, plan, jobId } = await requestJob(w);
    const before = patchesSent(w);
    w.sandbox.injectFault({ status: 503, method: 'PUT', pathPrefix: '/api/v4/posts/', forMs: 600_000 });

    w.post('alice', approve(jobId), root.id);
    await botSays(w, root.id, 'Approval by @alice counted');
    w.post('chioma', approve(jobId), root.id);
    await eventually(async () => (await tokensOf(w, jobId)).length === 1, 'the gated step minted');
    await agentRuns(b!, jobId, [...AUTO, GATED]);
    expect((await jobRow(w, jobId)).status).toBe('completed');
    // Every change so far was refused: the post still reads as the plan did.
    expect(patchesSent(w)).toBe(before);
    const changes = (
      await w.d.db
        .selectFrom('outbox')
        .select('version')
        .where('dedupe_key', '=', statusPatchKey(jobId))
        .executeTakeFirstOrThrow()
    ).version;
    expect(changes).toBeGreaterThanOrEqual(8);

    w.sandbox.clearFaults();
    const history = await statusHistory(w, jobId);
    await eventually(() => postNow(root.id, plan.id).message === history.at(-1), 'the final state');
    await outboxDrained(w);
    const sent = patchesSent(w) - before;
    expect(sent).toBeGreaterThanOrEqual(1);
    expect(sent).toBeLessThan(changes);
    await watch!.flush();
    expectForwardOnly(watch!.edits(plan.id), history);
    expect(postNow(root.id, plan.id).message).toBe(history.at(-1));
  });

  it('is not lost across a restart: killed with an edit pending, the next bot brings the post up to date', async () => {
    const [first] = await setup();
    const { root, plan, jobId } = await requestJob(w);
    w.sandbox.injectFault({ status: 503, method: 'PUT', pathPrefix: '/api/v4/posts/', forMs: 600_000 });
    w.post('alice', approve(jobId), root.id);
    await botSays(w, root.id, 'Approval by @alice counted');
    await eventually(async () => {
      const row = await w.d.db
        .selectFrom('outbox')
        .selectAll()
        .where('dedupe_key', '=', statusPatchKey(jobId))
        .executeTakeFirstOrThrow();
      return row.delivered_at === null && row.last_error !== null;
    }, 'an edit refused and pending');
    await killBot(first!);
    bots.splice(0);
    w.sandbox.clearFaults();
    // While no bot runs, another approval arrives; the next bot catches up on it too.
    w.post('chioma', approve(jobId), root.id);

    const second = await startBot(w);
    bots.push(second);
    await ready(second);
    await botSays(w, root.id, 'approved by');
    await outboxDrained(w);
    const history = await statusHistory(w, jobId);
    const now = postNow(root.id, plan.id).message;
    expect(now).toBe(history.at(-1));
    expect(now).toMatch(/\| `post-summary` .*✅ approved · CST `/);
    await watch!.flush();
    expectForwardOnly(watch!.edits(plan.id), history);
    await expectOutboxDeliveredOnce(w);
  });

  it('two bots on one database: the post ends at the final state, edits only move forward, nothing is posted twice', async () => {
    const [a, c] = await setup(2);
    const { root, plan, jobId } = await requestJob(w);
    w.post('alice', approve(jobId), root.id);
    w.post('chioma', approve(jobId), root.id);
    await eventually(async () => (await tokensOf(w, jobId)).length === 1, 'the gated step minted');
    // The agent works through both replicas' engines, each step's report on the other one.
    await Promise.all([
      agentRuns(a!, jobId, ['search-kb', 'read-runbook']),
      agentRuns(c!, jobId, ['fetch-status']),
    ]);
    await agentRuns(c!, jobId, [GATED]);
    await botSays(w, root.id, `job:${jobId} completed`);
    await Promise.all(bots.map((x) => x.bot.settle()));
    await outboxDrained(w);
    const history = await statusHistory(w, jobId);
    expect(postNow(root.id, plan.id).message).toBe(history.at(-1));
    const plans = w.sandbox
      .postsIn(w.channel)
      .filter((p) => p.user_id === w.botUserId && p.props[OUTBOX_KEY_PROP] === `reply:${root.id}`);
    expect(plans.map((p) => p.id)).toEqual([plan.id]);
    await watch!.flush();
    expectForwardOnly(watch!.edits(plan.id), history);
    await expectOutboxDeliveredOnce(w);
  });
});
