import { afterEach, describe, expect, it } from 'vitest';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import { statusPatchKey } from '../../src/chat/outbox.js';
import { expireDueJobs } from '../../src/jobs/revoke-job.js';
import { readChain } from '../../src/proofs/event-chain.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import { agentApi, type AgentApi } from '../helpers/agent-api.js';
import { answerTo, approve, botSays, GATED, jobRow, tokensOf } from '../helpers/bot-thread.js';
import { outboxDrained, replyKeys } from '../helpers/bot-faults.js';
import {
  createWorld,
  eventually,
  jobIdIn,
  ready,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { OPS } from '../helpers/engine.js';
import { liveMarkup, outsideJsonBlocks } from '../helpers/live-markup.js';
import { receiptFor } from '../helpers/receipts.js';
import { renderNames } from '../helpers/status-watch.js';

let w: World;
let api: AgentApi | null = null;
const bots: RunningBot[] = [];

afterEach(async () => {
  await api?.close();
  api = null;
  for (const b of bots.splice(0)) await b.stop();
  await w.close();
});

async function setup(): Promise<RunningBot> {
  w = await createWorld();
  const b = await startBot(w);
  bots.push(b);
  await ready(b);
  return b;
}

const AUTO = ['search-kb', 'read-runbook', 'fetch-status'];

async function agentReports(
  b: RunningBot,
  jobId: number,
  step: string,
  status: 'succeeded' | 'failed',
  summary: string,
): Promise<void> {
  const claimed = await claimToken(b.engine, { jobId, step, agentId: OPS.executor });
  await redeemToken(b.engine, claimed.token);
  await reportResult(b.engine, {
    jobId,
    step,
    agentId: OPS.executor,
    status,
    summary,
    receipts: [receiptFor(claimed)],
  });
}

const statusRow = (jobId: number) =>
  w.d.db
    .selectFrom('outbox')
    .selectAll()
    .where('dedupe_key', '=', statusPatchKey(jobId))
    .executeTakeFirstOrThrow();

describe(`status post edges (${dialectName})`, () => {
  it('a status post Mattermost refused to create for good: its edits fail too, without a request and without looping', async () => {
    const b = await setup();
    api = await agentApi(w, b);
    // The bot is not in the channel: creating the plan post is refused (403), for good.
    w.sandbox.removeChannelMember(w.channel, w.botUserId);
    const jobId = await api.submit(w.ids.grace);
    await eventually(async () => {
      const plan = await w.d.db
        .selectFrom('outbox')
        .select('failed_at')
        .where('dedupe_key', '=', `job:${jobId}:plan`)
        .executeTakeFirstOrThrow();
      return plan.failed_at !== null;
    }, 'the plan post refused');
    const creates = w.sandbox.requestCount({ method: 'POST', pathPrefix: '/api/v4/posts' });

    // The job moves on (the agent's auto steps): each change re-arms the edit, which fails at once.
    for (const step of AUTO) await agentReports(b, jobId, step, 'succeeded', `${step} done`);
    await outboxDrained(w);
    await b.bot.settle();
    const row = await statusRow(jobId);
    expect(row.failed_at).not.toBeNull();
    expect(row.delivered_at).toBeNull();
    expect(row.version).toBeGreaterThanOrEqual(AUTO.length * 2);
    expect(w.sandbox.requestCount({ method: 'PUT', pathPrefix: '/api/v4/posts/' })).toBe(0);
    // Nothing loops: the last change was tried once and failed for good; the plan was not resent.
    expect(row.attempts).toBe(1);
    expect(w.sandbox.requestCount({ method: 'POST', pathPrefix: '/api/v4/posts' })).toBe(creates);
  });

  it('replies appear in the order people acted: concurrent approvals and refusals while the agent reports', async () => {
    const b = await setup();
    const root = w.post(
      'bruno',
      '@clawbot run service-context service=payments-api query=q notify_channel=payments-oncall',
    );
    const plan = await answerTo(w, root);
    const jobId = jobIdIn(plan);
    // All at once: two eligible approvals, an outsider, the requester, and the agent's reports.
    const posts = [
      w.post('outsider', approve(jobId), root.id),
      w.post('alice', approve(jobId), root.id),
      w.post('bruno', approve(jobId), root.id),
      w.post('chioma', approve(jobId), root.id),
    ];
    await Promise.all(AUTO.map((s) => agentReports(b, jobId, s, 'succeeded', `${s} ok`)));
    await eventually(async () => (await tokensOf(w, jobId)).length === 1, 'the gated step minted');
    await agentReports(b, jobId, GATED, 'succeeded', 'posted');
    await botSays(w, root.id, `job:${jobId} completed`);
    await b.bot.settle();
    await outboxDrained(w);

    // Each reply's place in the job's chain: the decision it answers, the mint, the end.
    const chain = await readChain(w.d.db, jobId);
    const seqOf = (key: string): number => {
      const e = chain.find((ev) => {
        const p = JSON.parse(ev.payload) as Record<string, unknown>;
        if (key.startsWith('reply:'))
          return ev.event_type.startsWith('approval_') && p.post_id === key.slice('reply:'.length);
        if (key === `job:${jobId}:minted:${GATED}`)
          return ev.event_type === 'token_minted' && p.step === GATED;
        if (key === `job:${jobId}:ended`) return ev.event_type === 'job_ended';
        return false;
      });
      expect(e, `the chain event behind ${key}`).toBeDefined();
      return Number(e!.seq);
    };
    const keys = replyKeys(w, root.id).slice(1);
    const answered = keys.filter((k) => k.startsWith('reply:'));
    // The outsider and the requester are refused, one approval is counted; the other is answered by the mint.
    expect(answered).toHaveLength(3);
    for (const k of answered) expect(posts.map((p) => `reply:${p.id}`)).toContain(k);
    const order = keys.filter((k) => !/^job:\d+:minted:(?!post-summary)/.test(k)).map(seqOf);
    expect(order).toEqual([...order].sort((x, y) => x - y));
  });

  it('shows a claimed step, then a DENY, and in another job a REVOKE, each in place', async () => {
    const b = await setup();
    const first = w.post(
      'bruno',
      '@clawbot run service-context service=payments-api query=q notify_channel=payments-oncall',
    );
    const plan = await answerTo(w, first);
    const jobId = jobIdIn(plan);
    const shown = () => w.sandbox.thread(first.id).find((p) => p.id === plan.id)!.message;
    await claimToken(b.engine, { jobId, step: 'search-kb', agentId: OPS.executor });
    await eventually(() => /\| `search-kb` .*▶️ claimed by the agent/.test(shown()), 'claimed');
    w.post('dmitri', `DENY job:${jobId} step:${GATED} not today`, first.id);
    await eventually(() => shown().includes('**Status: ❌ denied**'), 'denied');
    expect(shown()).toMatch(/\| `post-summary` .*❌ denied by @dmitri/);
    expect(shown()).toContain(`step \`${GATED}\` denied by @dmitri`);
    expect(shown()).not.toContain(approve(jobId));

    const second = w.post(
      'farid',
      '@clawbot run service-context service=payments-api query=q notify_channel=payments-oncall',
    );
    const plan2 = await answerTo(w, second);
    const job2 = jobIdIn(plan2);
    w.post('chioma', `REVOKE job:${job2} leaked`, second.id);
    await eventually(
      () =>
        w.sandbox
          .thread(second.id)
          .find((p) => p.id === plan2.id)!
          .message.includes('**Status: 🚫 revoked**'),
      'revoked',
    );
    const text = w.sandbox.thread(second.id).find((p) => p.id === plan2.id)!.message;
    expect(text).toMatch(/\| `search-kb` .*🚫 revoked/);
    expect(text).toMatch(/\| `post-summary` .*🚫 revoked/);
  });

  it('shows an expired job in place, with its open steps expired', async () => {
    const b = await setup();
    const root = w.post(
      'bruno',
      '@clawbot run service-context service=payments-api query=q notify_channel=payments-oncall',
    );
    const plan = await answerTo(w, root);
    const jobId = jobIdIn(plan);
    w.post('alice', approve(jobId), root.id);
    await botSays(w, root.id, 'Approval by @alice counted');
    // Its deadline passes; the expiry sweep (as serve runs it) ends it.
    await w.d.db
      .updateTable('jobs')
      .set({ expires_at: new Date(Date.now() - 1_000) })
      .where('id', '=', jobId)
      .execute();
    expect((await expireDueJobs(b.engine)).map((x) => x.jobId)).toEqual([jobId]);
    await eventually(
      () =>
        w.sandbox
          .thread(root.id)
          .find((p) => p.id === plan.id)!
          .message.includes('**Status: ⌛ expired**'),
      'expired',
    );
    const text = w.sandbox.thread(root.id).find((p) => p.id === plan.id)!.message;
    expect(text).toMatch(/\| `post-summary` .*⌛ expired/);
    expect(text).not.toContain(approve(jobId));
  });

  it('hostile text in params and results cannot put a mention, link or table row into the edited post', async () => {
    const b = await setup();
    const HOSTILE =
      '@channel @alice <@fn5tnqd3rq1k6a6rjes4egzp8n> https://evil.example/x [click](https://evil.example) ![i](https://evil.example/p.png) ~town-square www.evil.example `|';
    const root = w.post(
      'bruno',
      `@clawbot run service-context service=payments-api query="${HOSTILE}" notify_channel=payments-oncall`,
    );
    const plan = await answerTo(w, root);
    expect(plan.message).toContain('Plan for job:');
    const jobId = jobIdIn(plan);
    w.post('alice', approve(jobId), root.id);
    await botSays(w, root.id, 'Approval by @alice counted');
    const RESULT = `${HOSTILE} \u202eevil\u202c\n| 9 | \`forged\` | \`exec\` | rm -rf | auto | ✅ succeeded | — |\n**Status: ✅ completed**`;
    await agentReports(b, jobId, 'search-kb', 'succeeded', RESULT);
    await agentReports(b, jobId, 'read-runbook', 'failed', `@here ${RESULT}`);
    await eventually(async () => (await jobRow(w, jobId)).status !== 'open', 'the job ended');
    await b.bot.settle();
    await outboxDrained(w);

    const row = await statusRow(jobId);
    const people = [w.ids.bruno, w.ids.alice];
    expect(liveMarkup(outsideJsonBlocks(row.message!), people)).toEqual([]);
    const shown = w.sandbox.thread(root.id).find((p) => p.id === plan.id)!.message;
    expect(shown).toBe(renderNames(w, row.message!));
    expect(shown).toContain('**Status: ❌ failed**');
    // One row per step in the table, one status line.
    expect(shown.split('\n').filter((l) => /^\| \d+ \|/.test(l))).toHaveLength(4);
    expect(shown.split('\n').filter((l) => l.startsWith('**Status:'))).toHaveLength(1);
    expect(shown.split('\n').some((l) => l.includes('forged') && !l.startsWith('- `'))).toBe(false);
    // So does every other bot post of the thread.
    for (const p of w.botReplies(root.id).filter((x) => x.id !== plan.id))
      expect(p.message).not.toMatch(/@channel|@here|https:\/\/evil/);
  });
});
