import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { MattermostBot } from '../src/bot/bot.js';
import { handlePost } from '../src/bot/handle-post.js';
import { asChatPost } from '../src/chat/chat-port.js';
import { MattermostRest } from '../src/chat/mattermost-rest.js';
import { systemClock } from '../src/clock.js';
import type { Db } from '../src/db/database.js';
import type { PolicyService } from '../src/policy/policy-service.js';
import { engineFor } from '../src/runtime.js';
import type { KeyRing } from '../src/tokens/key-ring.js';
import { measure, nearestRank } from './measure.js';
import { personClient, restPoster, type SeenPost } from './people.js';
import { startSandboxProcess } from './sandbox-process.js';

const STEP = 'post-summary';
const round = (n: number, digits = 2) => Number(n.toFixed(digits));

export interface Percentiles {
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  samples: number;
}

export function percentiles(ms: number[]): Percentiles {
  const s = [...ms].sort((a, b) => a - b);
  const pct = (p: number) => nearestRank(s, p);
  return {
    p50_ms: round(pct(0.5)),
    p99_ms: round(pct(0.99)),
    max_ms: round(s.at(-1) ?? 0),
    samples: s.length,
  };
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

/**
 * The bot path as people live it. The sandbox runs in its own process; the bot (real REST
 * client, real WebSocket, outbox) and the engine run here; approvers post through
 * POST /api/v4/posts with their own tokens, and a person's WebSocket client (also here, so it
 * shares the bot's event loop) sees the replies. For each number of jobs deciding at once:
 * deciding APPROVE posted → token committed, and → "approved" reply seen; next to it, the
 * sandbox's own post → WebSocket delivery to that client at the same concurrency (how fast a
 * person sees any post). Then chatter posts per second the bot filters.
 */
export async function benchBot(deps: {
  db: Db;
  keyRing: KeyRing;
  policies: PolicyService;
  log: Logger;
  rounds: number;
  chatter: number;
  levels: number[];
}) {
  const sandbox = await startSandboxProcess();
  const ws = sandbox.workspace;
  // As `serve` runs it: Mattermost's answers reused for MATTERMOST_FRESH_SECONDS' default.
  const rest = new MattermostRest({ url: ws.url, token: ws.botToken, log: deps.log, freshSeconds: 30 });
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
  const bot = new MattermostBot({ url: ws.url, token: ws.botToken, chat: rest, engine, log: deps.log });
  const committed = new Map<string, number>();
  bot.onHandled = (post) => committed.set(post.id, performance.now());
  bot.start();
  const people = restPoster(ws.url);
  const watch = await personClient(ws.url, ws.tokens.outsider);
  // The floor's stand-in for the bot: a client that only listens and answers.
  const echo = await personClient(ws.url, ws.tokens.grace);
  try {
    const started = performance.now();
    while (!bot.readiness().ok) {
      if (performance.now() - started > 30_000) throw new Error('the bot did not connect to the sandbox');
      await new Promise((r) => setTimeout(r, 10));
    }
    const fromBot = (root: string, text: string) => (p: SeenPost) =>
      p.root_id === root && p.user_id === ws.botUserId && p.message.includes(text);

    /** A job with one approval counted, waiting for its deciding one. */
    const prepare = async () => {
      const root = await people.post(ws.tokens.grace, {
        channel_id: ws.channel,
        message:
          '@clawbot run service-context service=payments-api query=bench notify_channel=payments-oncall',
      });
      const plan = await watch.waitFor(
        `the plan of ${root.id}`,
        (p) =>
          p.root_id === root.id && p.user_id === ws.botUserId && typeof p.props?.claw_job_id === 'string',
      );
      const jobId = Number(String(plan.post.props!.claw_job_id).slice(4));
      const counted = watch.waitFor(`alice's approval counted in ${root.id}`, fromBot(root.id, 'counted'));
      await people.post(ws.tokens.alice, {
        channel_id: ws.channel,
        message: `APPROVE job:${jobId} step:${STEP}`,
        root_id: root.id,
      });
      await counted;
      return { root: root.id, jobId };
    };
    const decide = async (jobs: { root: string; jobId: number }[]) => {
      const replies = jobs.map((j) =>
        watch.waitFor(`"approved by" in ${j.root}`, fromBot(j.root, 'approved by')),
      );
      const starts = await Promise.all(
        jobs.map(async (j) => {
          const t0 = performance.now();
          const p = await people.post(ws.tokens.chioma, {
            channel_id: ws.channel,
            message: `APPROVE job:${j.jobId} step:${STEP}`,
            root_id: j.root,
          });
          return { t0, id: p.id };
        }),
      );
      const arrived = await Promise.all(replies);
      await bot.settle();
      return starts.map((s, i) => ({
        token: (committed.get(s.id) ?? NaN) - s.t0,
        reply: arrived[i]!.at - s.t0,
      }));
    };
    /** The raw limit: `n` people's posts at once, from POST to a person's client seeing each. */
    let marker = 0;
    const delivery = async (n: number) => {
      const tag = `bench-delivery-${++marker}`;
      return Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const text = `${tag}-${i}: the deploy looks fine so far`;
          const seen = watch.waitFor(text, (p) => p.message === text);
          const t0 = performance.now();
          await people.post(ws.tokens.farid, { channel_id: ws.channel, message: text });
          return (await seen).at - t0;
        }),
      );
    };

    /**
     * The floor of the reply path: `n` posts at once, each answered in its thread by a client that
     * answers the moment its WebSocket brings the post (no database, no decision, nothing of ours),
     * from POST to the person's client seeing the answer. The same two hops as a reply of the bot.
     */
    const echoed = async (n: number) => {
      const tag = `bench-echo-${++marker}`;
      return Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const text = `${tag}-${i}: is the deploy done?`;
          const heard = echo.waitFor(text, (p) => p.message === text);
          const answered = watch.waitFor(`the answer to ${text}`, (p) => p.message === `re ${text}`);
          const t0 = performance.now();
          const posting = people.post(ws.tokens.farid, { channel_id: ws.channel, message: text });
          const { post } = await heard;
          await people.post(ws.tokens.grace, {
            channel_id: ws.channel,
            message: `re ${text}`,
            root_id: post.id,
          });
          await posting;
          return (await answered).at - t0;
        }),
      );
    };

    const byLevel: Record<string, unknown> = {};
    for (const level of deps.levels) {
      // At 1 job, enough rounds that the p99 is not simply the slowest sample (see nearestRank).
      const batches = level === 1 ? deps.rounds * 40 : deps.rounds;
      const results: { token: number; reply: number }[] = [];
      const raw: number[] = [];
      const floor: number[] = [];
      // One round more, first, whose figures are not kept: the level's first decisions, posts and
      // answers run code this process has not run at that concurrency yet (compiled on first use).
      for (let b = -1; b < batches; b++) {
        const jobs = await pool(
          Array.from({ length: level }, (_, i) => i),
          10,
          () => prepare(),
        );
        const got = {
          raw: await delivery(level),
          floor: await echoed(level),
          results: await decide(jobs),
        };
        if (b < 0) continue;
        raw.push(...got.raw);
        floor.push(...got.floor);
        results.push(...got.results);
      }
      byLevel[`concurrent_${level}`] = {
        to_committed_token: percentiles(results.map((x) => x.token)),
        to_reply_seen: percentiles(results.map((x) => x.reply)),
        raw_sandbox_post_to_client: percentiles(raw),
        raw_echo_reply_seen: percentiles(floor),
      };
    }

    // Chatter: posts in an allowlisted channel that are not for the bot.
    const before = bot.stats.observed;
    const seenBefore = watch.received;
    const t0 = performance.now();
    const { posted_ms } = await sandbox.command<{ posted_ms: number }>({
      chatter: deps.chatter,
      as: 'farid',
    });
    let observerDone = 0;
    const chatterStarted = performance.now();
    while (bot.stats.observed - before < deps.chatter) {
      if (!observerDone && watch.received - seenBefore >= deps.chatter) observerDone = performance.now();
      if (performance.now() - chatterStarted > 120_000)
        throw new Error('the bot did not see all the chatter');
      await new Promise((r) => setImmediate(r));
    }
    await bot.settle();
    const botDone = performance.now();
    while (watch.received - seenBefore < deps.chatter) await new Promise((r) => setImmediate(r));
    observerDone ||= performance.now();
    // The filter alone, in process: what the bot could take if the stream were faster.
    const sample = await people.post(ws.tokens.farid, {
      channel_id: ws.channel,
      message: 'one more for lunch',
    });
    const chatterPost = asChatPost(sample)!;
    const handlerDeps = { engine, chat: rest, bot: bot.user!, log: deps.log };
    const inProcess = await measure(() => handlePost(handlerDeps, chatterPost), 500);

    return {
      approval_to_token_and_reply: {
        what:
          'deciding APPROVE posted by an approver (POST /api/v4/posts, own token) -> token committed by the bot / ' +
          '"approved" reply received by a person\'s WebSocket client; the sandbox runs in a child process, the bot ' +
          "(real REST client, real WebSocket, outbox, the product's default timings) and the person's client in this one; " +
          'raw_sandbox_post_to_client: the same number of plain posts at once, POST to seen by that client; ' +
          'raw_echo_reply_seen: the same number of posts at once, each answered in its thread by a client that posts ' +
          'back the moment its WebSocket brings the post, POST to the answer seen (the floor of the reply path)',
        ...byLevel,
      },
      chatter_filtered: {
        what: `${deps.chatter} posts in an allowlisted channel not addressed to the bot, created inside the sandbox process as fast as it takes them`,
        bot_posts_per_sec: round(deps.chatter / ((botDone - t0) / 1000), 0),
        raw_websocket_client_posts_per_sec: round(deps.chatter / ((observerDone - t0) / 1000), 0),
        raw_sandbox_post_creation_per_sec: round(deps.chatter / (posted_ms / 1000), 0),
        handle_post_in_process_per_sec: inProcess.ops_per_sec,
      },
    };
  } finally {
    watch.close();
    echo.close();
    people.close();
    await bot.stop();
    await sandbox.close();
  }
}
