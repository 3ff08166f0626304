import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { MattermostBot } from '../src/bot/bot.js';
import { handlePost } from '../src/bot/handle-post.js';
import { asChatPost } from '../src/chat/chat-port.js';
import { measure } from './measure.js';
import { MattermostRest } from '../src/chat/mattermost-rest.js';
import type { Db } from '../src/db/database.js';
import type { PolicyService } from '../src/policy/policy-service.js';
import { engineFor } from '../src/runtime.js';
import { seedOpsWorkspace, startSandbox } from '@claw-approvals/mattermost-sandbox';
import type { KeyRing } from '../src/tokens/key-ring.js';
import { systemClock } from '../src/clock.js';

const STEP = 'post-summary';
const round = (n: number, digits = 2) => Number(n.toFixed(digits));

function percentiles(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const pct = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
  return {
    p50_ms: round(pct(0.5)),
    p99_ms: round(pct(0.99)),
    max_ms: round(s.at(-1) ?? 0),
    samples: s.length,
  };
}

/**
 * A plain WebSocket client of the sandbox, logged in as a channel member: it sees bot replies
 * the way a person's Mattermost client does, and its own receive rate is the raw limit for
 * posts the bot can filter.
 */
async function observer(url: string, token: string) {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v4/websocket`);
  const waiters = new Map<string, (at: number) => void>();
  let received = 0;
  ws.on('message', (raw) => {
    const at = performance.now();
    const m = JSON.parse(raw.toString()) as { event?: string; data?: { post?: string } };
    if (m.event !== 'posted' || typeof m.data?.post !== 'string') return;
    received++;
    const post = JSON.parse(m.data.post) as { root_id: string; message: string; user_id: string };
    for (const [key, resolve] of waiters) {
      const [root, text] = key.split('\u0000') as [string, string];
      if (post.root_id === root && post.message.includes(text)) {
        waiters.delete(key);
        resolve(at);
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => {
      ws.send(JSON.stringify({ seq: 1, action: 'authentication_challenge', data: { token } }));
      resolve();
    });
    ws.once('error', reject);
  });
  return {
    get received() {
      return received;
    },
    /** Resolves with the time a post in `root` containing `text` arrived. */
    reply(root: string, text: string): Promise<number> {
      return new Promise((resolve) => waiters.set(`${root}\u0000${text}`, resolve));
    },
    close: () => ws.close(),
  };
}

/**
 * Through the sandbox, the real REST client and the real WebSocket: from an approver's deciding
 * post to (a) the committed token and (b) the bot's "approved" reply reaching a person's client,
 * at 1 and at 50 jobs in flight; and how many chatter posts per second the bot filters.
 */
export async function benchBot(deps: {
  db: Db;
  keyRing: KeyRing;
  policies: PolicyService;
  log: Logger;
  rounds: number;
  chatter: number;
}) {
  const sandbox = await startSandbox();
  const ws = seedOpsWorkspace(sandbox);
  const rest = new MattermostRest({ url: sandbox.url, token: ws.botToken, log: deps.log });
  const engine = engineFor(
    {
      db: deps.db,
      keyRing: deps.keyRing,
      clock: systemClock,
      log: deps.log,
      gatewaySignerDids: [],
      publicUrl: 'http://bench',
    },
    deps.policies,
    rest,
  );
  const bot = new MattermostBot({
    url: sandbox.url,
    token: ws.botToken,
    chat: rest,
    engine,
    log: deps.log,
    outboxPollMs: 200,
  });
  const committed = new Map<string, number>();
  bot.onHandled = (post) => committed.set(post.id, performance.now());
  bot.start();
  const watch = await observer(sandbox.url, ws.tokens.outsider);
  try {
    while (!bot.readiness().ok) await new Promise((r) => setTimeout(r, 10));
    const post = (who: keyof typeof ws.ids, message: string, root?: string) =>
      sandbox.createPost(ws.ids[who], {
        channel_id: ws.channel,
        message,
        ...(root ? { root_id: root } : {}),
      });

    /** A job with one approval counted, waiting for its deciding one. */
    const prepare = async () => {
      const root = post(
        'grace',
        '@clawbot run service-context service=payments-api query=bench notify_channel=payments-oncall',
      );
      await watch.reply(root.id, 'Plan for job:');
      const planPost = sandbox.thread(root.id).find((p) => p.user_id === ws.botUserId)!;
      const jobId = Number(String(planPost.props.claw_job_id).slice(4));
      const counted = watch.reply(root.id, 'Approval by @alice counted');
      post('alice', `APPROVE job:${jobId} step:${STEP}`, root.id);
      await counted;
      return { root: root.id, jobId };
    };
    const decide = async (jobs: { root: string; jobId: number }[]) => {
      const replies = jobs.map((j) => watch.reply(j.root, 'approved by'));
      const starts = jobs.map((j) => {
        const t0 = performance.now();
        const p = post('chioma', `APPROVE job:${j.jobId} step:${STEP}`, j.root);
        return { t0, id: p.id };
      });
      const arrived = await Promise.all(replies);
      await bot.settle();
      return starts.map((s, i) => ({
        token: (committed.get(s.id) ?? NaN) - s.t0,
        reply: arrived[i]! - s.t0,
      }));
    };

    const one: { token: number; reply: number }[] = [];
    for (let i = 0; i < deps.rounds * 10; i++) one.push(...(await decide([await prepare()])));
    const fifty: { token: number; reply: number }[] = [];
    for (let r = 0; r < deps.rounds; r++) {
      const jobs = [];
      for (let i = 0; i < 50; i++) jobs.push(await prepare());
      fifty.push(...(await decide(jobs)));
    }

    // Chatter: posts in an allowlisted channel that are not for the bot.
    const before = bot.stats.observed;
    const seenBefore = watch.received;
    const t0 = performance.now();
    for (let i = 0; i < deps.chatter; i++)
      post('farid', `lunch at ${i % 24}:00? the deploy looks fine so far (${i})`);
    const posted = performance.now();
    let observerDone = 0;
    while (bot.stats.observed - before < deps.chatter) {
      if (!observerDone && watch.received - seenBefore >= deps.chatter) observerDone = performance.now();
      await new Promise((r) => setImmediate(r));
    }
    await bot.settle();
    const botDone = performance.now();
    while (watch.received - seenBefore < deps.chatter) await new Promise((r) => setImmediate(r));
    observerDone ||= performance.now();
    // The filter alone, in process: what the bot could take if the stream were faster.
    const sample = sandbox.postsIn(ws.channel).at(-1)!;
    const chatterPost = asChatPost(sample)!;
    const handlerDeps = { engine, chat: rest, bot: bot.user!, log: deps.log };
    const inProcess = await measure(() => handlePost(handlerDeps, chatterPost), 500);

    return {
      approval_to_token_and_reply: {
        what: 'deciding APPROVE posted in the sandbox -> token committed by the bot / "approved" reply received by a person\'s WebSocket client (real REST client, real WebSocket, outbox)',
        concurrent_1: {
          to_committed_token: percentiles(one.map((x) => x.token)),
          to_reply_seen: percentiles(one.map((x) => x.reply)),
        },
        concurrent_50: {
          to_committed_token: percentiles(fifty.map((x) => x.token)),
          to_reply_seen: percentiles(fifty.map((x) => x.reply)),
        },
      },
      chatter_filtered: {
        what: `${deps.chatter} posts in an allowlisted channel not addressed to the bot, posted as fast as the sandbox takes them`,
        bot_posts_per_sec: round(deps.chatter / ((botDone - t0) / 1000), 0),
        raw_websocket_client_posts_per_sec: round(deps.chatter / ((observerDone - t0) / 1000), 0),
        raw_sandbox_post_creation_per_sec: round(deps.chatter / ((posted - t0) / 1000), 0),
        handle_post_in_process_per_sec: inProcess.ops_per_sec,
      },
    };
  } finally {
    watch.close();
    await bot.stop();
    await sandbox.close();
  }
}
