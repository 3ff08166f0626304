import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import type { ChatPost } from '../../src/chat/chat-port.js';
import { OUTBOX_KEY_PROP } from '../../src/chat/outbox-delivery.js';
import { eventually, type RunningBot, type World } from './bot-world.js';
import { OPS } from './engine.js';
import { silentLogger } from './log.js';

/** The HTTP API over a running bot's engine, with the ops agent's key: agents submit jobs here. */
export interface AgentApi {
  app: FastifyInstance;
  headers: Record<string, string>;
  /** Submits the service-context runbook for `requesterId`; the job id. */
  submit(requesterId: string): Promise<number>;
  /** The bot's plan post of an agent's job, once delivered (a root post in the channel). */
  planPost(jobId: number): Promise<ChatPost>;
  close(): Promise<void>;
}

export async function agentApi(w: World, b: RunningBot): Promise<AgentApi> {
  const app = buildApp({
    db: w.d.db,
    keyRing: b.engine.keyRing,
    policies: b.engine.policies,
    log: silentLogger(),
    engine: b.engine,
  });
  const agent = await createAgent(w.d.db, { id: OPS.executor, at: new Date() });
  const headers = { authorization: `Bearer ${agent.key}` };
  return {
    app,
    headers,
    async submit(requesterId) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/jobs',
        headers,
        payload: {
          channel_id: w.channel,
          requester_id: requesterId,
          runbook: {
            name: 'service-context',
            params: { service: 'payments-api', query: 'latency spikes', notify_channel: 'payments-oncall' },
          },
        },
      });
      expect(res.statusCode, res.body).toBe(201);
      return (res.json() as { job_id: number }).job_id;
    },
    planPost: (jobId) =>
      eventually(
        () =>
          w.sandbox
            .postsIn(w.channel)
            .find((p) => p.user_id === w.botUserId && p.props[OUTBOX_KEY_PROP] === `job:${jobId}:plan`),
        `the plan post of job:${jobId}`,
      ),
    close: () => app.close(),
  };
}

/** What the bot recorded for a chat post (`chat_posts.action`), if anything. */
export async function actionOf(w: World, postId: string): Promise<string | undefined> {
  const row = await w.d.db
    .selectFrom('chat_posts')
    .select('action')
    .where('post_id', '=', postId)
    .executeTakeFirst();
  return row?.action;
}
