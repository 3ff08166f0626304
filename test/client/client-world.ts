import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ClawClient, type ClaimedToken, type JobView } from '@claw-approvals/client';
import type { FastifyInstance } from 'fastify';
import { createAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import type { ChatPost } from '../../src/chat/chat-port.js';
import { OUTBOX_KEY_PROP } from '../../src/chat/outbox-delivery.js';
import type { RateLimits } from '../../src/http/rate-limit.js';
import {
  createWorld,
  eventually,
  type Person,
  ready,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { OPS } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';
import { receiptFor } from '../helpers/receipts.js';

export const GATED = 'post-summary';
export const SERVICE_CONTEXT = {
  name: 'service-context',
  params: { service: 'payments-api', query: 'latency spikes', notify_channel: 'payments-oncall' },
};

/**
 * The real thing over a real socket: a sandbox Mattermost with the shipped policies' people,
 * a bot, and the HTTP API listening on 127.0.0.1, with the ops agent's key.
 */
export interface ClientWorld {
  w: World;
  b: RunningBot;
  /** The API the client talks to (listening at `url`). */
  app: FastifyInstance;
  url: string;
  agentKey: string;
  client: ClawClient;
  /** Another listening API over the same engine, with its own budgets (for 429s). */
  listen(rateLimits?: Partial<RateLimits>): Promise<string>;
  /** Submits the service-context runbook for `requester` through the client. */
  submit(requester?: Person): Promise<JobView>;
  planPost(jobId: number): Promise<ChatPost>;
  /** The named requester confirms and two approvers of distinct groups approve the gated step. */
  approveInChat(jobId: number, requester?: Person): Promise<void>;
  /** A bot reply in the job's thread containing `text`. */
  botSays(jobId: number, text: string): Promise<ChatPost>;
  close(): Promise<void>;
}

async function listening(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

export async function clientWorld(): Promise<ClientWorld> {
  const w = await createWorld();
  const b = await startBot(w);
  await ready(b);
  const apps: FastifyInstance[] = [];
  const listen = async (rateLimits?: Partial<RateLimits>) => {
    const app = buildApp({
      db: w.d.db,
      keyRing: b.engine.keyRing,
      policies: b.engine.policies,
      log: silentLogger(),
      engine: b.engine,
      ...(rateLimits ? { rateLimits } : {}),
    });
    apps.push(app);
    return listening(app);
  };
  const url = await listen();
  const app = apps[0]!;
  const { key: agentKey } = await createAgent(w.d.db, { id: OPS.executor, at: new Date() });
  const client = new ClawClient({ baseUrl: url, agentKey });
  // The plan post, once the server has bound it as the job's thread (the job view names it):
  // a reply that arrives before that is refused with ERR_WRONG_THREAD.
  const planPost = async (jobId: number) => {
    const post = await eventually(
      () =>
        w.sandbox
          .postsIn(w.channel)
          .find((p) => p.user_id === w.botUserId && p.props[OUTBOX_KEY_PROP] === `job:${jobId}:plan`),
      `the plan post of job:${jobId}`,
    );
    await eventually(
      async () => (await client.getJob(jobId)).root_post_id === post.id,
      `job:${jobId} bound to its thread`,
    );
    return post;
  };
  const botSays = async (jobId: number, text: string) => {
    const root = await planPost(jobId);
    return eventually(
      () => w.botReplies(root.id).find((p) => p.message.includes(text)),
      `a reply in job:${jobId} saying "${text}"`,
    );
  };
  return {
    w,
    b,
    app,
    url,
    agentKey,
    client,
    listen,
    submit: (requester = 'grace') =>
      client.submitJob({ channel_id: w.channel, requester_id: w.ids[requester], runbook: SERVICE_CONTEXT }),
    planPost,
    botSays,
    async approveInChat(jobId, requester = 'grace') {
      const root = await planPost(jobId);
      w.post(requester, `CONFIRM job:${jobId}`, root.id);
      await botSays(jobId, `job:${jobId} confirmed by its requester`);
      w.post('alice', `APPROVE job:${jobId} step:${GATED}`, root.id);
      await botSays(jobId, 'Approval by @alice counted');
      w.post('dmitri', `APPROVE job:${jobId} step:${GATED}`, root.id);
    },
    async close() {
      for (const app of apps) await app.close();
      await b.stop();
      await w.close();
    },
  };
}

/**
 * A stand-in for the gateway a step's tool call goes through: `POST /` with the claim's
 * `run_id` and `event_hash_b64u` answers the gateway receipt it signs for that call (the test
 * gateway of `receipts.ts`, which the bot's engine trusts).
 */
export async function standInGateway(): Promise<{
  url: string;
  calls: number;
  /** The `Authorization` header of each call (the agent's key must never be one). */
  authorizations: (string | undefined)[];
  close(): Promise<void>;
}> {
  const state = { calls: 0 };
  const authorizations: (string | undefined)[] = [];
  const server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString('utf8')));
    req.on('end', () => {
      state.calls += 1;
      authorizations.push(req.headers.authorization);
      const claim = JSON.parse(text) as Pick<ClaimedToken, 'run_id' | 'event_hash_b64u'>;
      const receipt = receiptFor({ runId: claim.run_id, eventHash: claim.event_hash_b64u });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(receipt));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    get calls() {
      return state.calls;
    },
    authorizations,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
