import { groupsDirectory } from '../../src/approvals/directory.js';
import { MattermostBot } from '../../src/bot/bot.js';
import type { Handled } from '../../src/bot/handle-post.js';
import type { ChatPost } from '../../src/chat/chat-port.js';
import { MattermostRest } from '../../src/chat/mattermost-rest.js';
import { systemClock } from '../../src/clock.js';
import { type EngineContext, JobNotifier } from '../../src/jobs/context.js';
import { PolicyService } from '../../src/policy/policy-service.js';
import { ChatPresenter } from '../../src/presenter/chat-presenter.js';
import { type Sandbox, startSandbox } from '@claw-approvals/mattermost-sandbox';
import { tokenVerifier } from '../../src/tokens/verify-token.js';
import { createTestDb, type TestDb } from './db.js';
import { copyPolicies } from './fs.js';
import { silentLogger } from './log.js';
import { testGateway } from './receipts.js';
import { newKey, ringOf } from './state.js';
import { OPS, U } from './engine.js';
import type { Logger } from 'pino';

/** The people of `policies/groups.json`, as Mattermost users of the sandbox (same ids). */
export const PEOPLE = {
  alice: U.alice, // ops-oncall
  bruno: U.bruno, // ops-oncall and requester
  chioma: U.chioma, // sec-reviewers and security
  dmitri: U.dmitri, // sec-reviewers
  erin: U.erin, // security
  farid: U.farid, // requester
  grace: U.grace, // requester
} as const;
export type Person = keyof typeof PEOPLE | 'outsider';

export const RUN =
  '@clawbot run service-context service=payments-api query="latency spikes" notify_channel=payments-oncall';

export interface World {
  sandbox: Sandbox;
  d: TestDb;
  policiesDir: string;
  botToken: string;
  botUserId: string;
  tokens: Record<Person, string>;
  ids: Record<Person, string>;
  channel: string;
  otherChannel: string;
  team: string;
  post(who: Person, message: string, rootId?: string, channelId?: string): ChatPost;
  /** Bot posts in a thread, oldest first. */
  botReplies(rootId: string): ChatPost[];
  close(): Promise<void>;
}

/**
 * A sandbox Mattermost seeded with the team, channel and people the shipped policies name,
 * a bot account, and a fresh database. Bots are started separately (`startBot`), so a test
 * can kill one, start two, or start one before Mattermost is up.
 */
export async function createWorld(opts: { sandbox?: Sandbox; d?: TestDb } = {}): Promise<World> {
  const sandbox = opts.sandbox ?? (await startSandbox());
  const d = opts.d ?? (await createTestDb());
  const policiesDir = await copyPolicies();
  const team = sandbox.createTeam({ id: OPS.team, name: 'ops' }).id;
  const channel = sandbox.createChannel({
    id: OPS.channel,
    team_id: team,
    name: 'ops-requests',
    type: 'O',
  }).id;
  const otherChannel = sandbox.createChannel({ team_id: team, name: 'random', type: 'O' }).id;
  const bot = sandbox.createUser({ username: 'clawbot', is_bot: true });
  const tokens = {} as Record<Person, string>;
  const ids = {} as Record<Person, string>;
  for (const [name, id] of [...Object.entries(PEOPLE), ['outsider', undefined] as const]) {
    const u = sandbox.createUser({ username: name, ...(id ? { id } : {}) });
    tokens[name as Person] = u.token;
    ids[name as Person] = u.user.id;
  }
  for (const ch of [channel, otherChannel]) {
    sandbox.addChannelMember(ch, bot.user.id);
    for (const id of Object.values(ids)) sandbox.addChannelMember(ch, id);
  }
  return {
    sandbox,
    d,
    policiesDir,
    botToken: bot.token,
    botUserId: bot.user.id,
    tokens,
    ids,
    channel,
    otherChannel,
    team,
    post: (who, message, rootId, channelId) =>
      sandbox.createPost(ids[who], {
        channel_id: channelId ?? channel,
        message,
        ...(rootId ? { root_id: rootId } : {}),
      }),
    botReplies: (rootId) => sandbox.thread(rootId).filter((p) => p.user_id === bot.user.id),
    close: async () => {
      await sandbox.close();
      await d.close();
    },
  };
}

export interface RunningBot {
  bot: MattermostBot;
  engine: EngineContext;
  rest: MattermostRest;
  handled: { post: ChatPost; result: Handled | Error }[];
  /** Resolves once `pred` holds, polling the sandbox/database state; fails after `ms`. */
  stop(): Promise<void>;
}

/** A bot over the world's database, as `serve` would run it (real REST client, real WebSocket). */
export async function startBot(
  w: World,
  opts: { log?: Logger; url?: string; complaintsPerMinute?: number; start?: boolean } = {},
): Promise<RunningBot> {
  const log = opts.log ?? silentLogger();
  const url = opts.url ?? w.sandbox.url;
  const keyRing = ringOf(sharedKey);
  const policies = new PolicyService({
    db: w.d.db,
    keyRing,
    clock: systemClock,
    log,
    policiesDir: w.policiesDir,
  });
  await policies.reload();
  const rest = new MattermostRest({ url, token: w.botToken, log, minBackoffMs: 20, maxBackoffMs: 200 });
  const engine: EngineContext = {
    db: w.d.db,
    keyRing,
    verifier: tokenVerifier(keyRing),
    policies,
    directory: groupsDirectory(() => policies.current()?.groups ?? null, rest),
    clock: systemClock,
    log,
    notifier: new JobNotifier(),
    gatewaySigners: new Set([testGateway.did]),
    securityGroup: 'security',
    version: 'test',
    publicUrl: 'https://claw.example.test',
    events: new ChatPresenter({ publicUrl: 'https://claw.example.test' }),
    chat: rest,
  };
  const bot = new MattermostBot({
    url,
    token: w.botToken,
    chat: rest,
    engine,
    log,
    pingIntervalMs: 1_000,
    minBackoffMs: 20,
    maxBackoffMs: 300,
    outboxPollMs: 100,
    firstCatchUpMs: 60_000,
    ...(opts.complaintsPerMinute !== undefined ? { complaintsPerMinute: opts.complaintsPerMinute } : {}),
  });
  const handled: RunningBot['handled'] = [];
  bot.onHandled = (post, result) => handled.push({ post, result });
  if (opts.start !== false) bot.start();
  return { bot, engine, rest, handled, stop: () => bot.stop() };
}

// One signing key for every bot of a test file: replicas share it, as they would share DATA_DIR.
const sharedKey = newKey();

/** Polls until `check` returns a truthy value; the value is returned. */
export async function eventually<T>(
  check: () => T | Promise<T>,
  what: string,
  ms = 15_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits for the bot to be connected and caught up. */
export async function ready(b: RunningBot): Promise<void> {
  await eventually(() => b.bot.readiness().ok, 'bot readiness');
  await b.bot.settle();
}

export function jobIdIn(post: ChatPost): number {
  const m = /^job:(\d+)$/.exec(String(post.props.claw_job_id ?? ''));
  if (!m) throw new Error(`post ${post.id} carries no claw_job_id`);
  return Number(m[1]);
}
