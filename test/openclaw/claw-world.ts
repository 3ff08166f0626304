import type { FastifyInstance } from 'fastify';
import net from 'node:net';
import { createAgent } from '../../src/agents/agent-keys.js';
import { buildApp } from '../../src/app.js';
import type { ChatPost } from '../../src/chat/chat-port.js';
import {
  createWorld,
  eventually,
  jobIdIn,
  ready,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { createSecurityChannel } from '../helpers/bot-thread.js';
import { OPS } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';

/** The step id the plugin gives a `send_message` call: what approvers type. */
export const SEND = 'send_message';

/**
 * A claw-approvals server as an OpenClaw gateway reaches it: the Mattermost sandbox, a bot
 * connected to it, and the HTTP API listening on a real port (the plugin runs in another
 * process, or talks over fetch). The ops agent has a key.
 */
export interface ClawServer {
  w: World;
  b: RunningBot;
  app: FastifyInstance;
  url: string;
  agentKey: string;
  /** The hash the ops channel's policy is pinned to (what an operator puts in the plugin config). */
  policyHash: string;
  /** Waits (up to `ms`) for a plan post not seen before. */
  nextPlan(ms?: number): Promise<{ post: ChatPost; jobId: number }>;
  /** Waits until the job counts decisions in its thread (before that, each is ERR_WRONG_THREAD). */
  bound(plan: { post: ChatPost; jobId: number }): Promise<void>;
  /** The requester confirms and alice (ops-oncall) and chioma (sec-reviewers) approve. */
  approve(plan: { post: ChatPost; jobId: number }, step?: string): Promise<void>;
  /** Stops the HTTP API only: the plugin then finds the server unreachable. */
  stopApi(): Promise<void>;
  close(): Promise<void>;
}

export async function startClawServer(): Promise<ClawServer> {
  const w = await createWorld();
  // The security group (who may REVOKE) counts the members of this channel: it must exist.
  createSecurityChannel(w);
  const b = await startBot(w);
  await ready(b);
  const app = buildApp({
    db: w.d.db,
    keyRing: b.engine.keyRing,
    policies: b.engine.policies,
    log: silentLogger(),
    engine: b.engine,
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const { key } = await createAgent(w.d.db, { id: OPS.executor, at: new Date() });
  const pinned = b.engine.policies.channelPolicy(w.channel);
  if (!pinned.open) throw new Error(`the ops channel has no policy: ${pinned.reasons.join('; ')}`);
  const seen = new Set<string>();
  let apiOpen = true;

  const nextPlan = async (ms = 15_000) => {
    const post = await eventually(
      () =>
        w.sandbox
          .postsIn(w.channel)
          .find(
            (p) => p.user_id === w.botUserId && p.root_id === '' && p.props.claw_job_id && !seen.has(p.id),
          ),
      'a new plan post',
      ms,
    );
    seen.add(post.id);
    return { post, jobId: jobIdIn(post) };
  };

  const bound = async (plan: { post: ChatPost; jobId: number }) => {
    await eventually(() => eventOf(w, plan.jobId, 'thread_bound'), `job:${plan.jobId} bound to its thread`);
  };

  const approve = async (plan: { post: ChatPost; jobId: number }, step = SEND) => {
    await bound(plan);
    w.post('grace', `CONFIRM job:${plan.jobId}`, plan.post.id);
    await eventually(() => eventOf(w, plan.jobId, 'requester_confirmed'), `job:${plan.jobId} confirmed`);
    w.post('alice', `APPROVE job:${plan.jobId} step:${step}`, plan.post.id);
    w.post('chioma', `APPROVE job:${plan.jobId} step:${step}`, plan.post.id);
  };

  return {
    w,
    b,
    app,
    url,
    agentKey: key,
    policyHash: pinned.hash,
    nextPlan,
    bound,
    approve,
    stopApi: async () => {
      if (apiOpen) await app.close();
      apiOpen = false;
    },
    close: async () => {
      if (apiOpen) await app.close();
      await b.stop();
      await w.close();
    },
  };
}

/** The first event of a type in a job's chain, if any. */
export async function eventOf(w: World, jobId: number, type: string) {
  return w.d.db
    .selectFrom('job_events')
    .select(['event_type', 'payload'])
    .where('job_id', '=', jobId)
    .where('event_type', '=', type)
    .executeTakeFirst();
}

export async function jobRow(w: World, jobId: number) {
  return w.d.db
    .selectFrom('jobs')
    .select(['status', 'end_reason', 'bundle_id'])
    .where('id', '=', jobId)
    .executeTakeFirstOrThrow();
}

export async function stepRow(w: World, jobId: number, step = SEND) {
  return w.d.db
    .selectFrom('job_steps')
    .select(['status', 'tool', 'result_summary'])
    .where('job_id', '=', jobId)
    .where('step_id', '=', step)
    .executeTakeFirstOrThrow();
}

export async function jobCount(w: World): Promise<number> {
  const row = await w.d.db
    .selectFrom('jobs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** The step's CST row: when it was claimed and redeemed. */
export async function tokenRow(w: World, jobId: number, step = SEND) {
  return w.d.db
    .selectFrom('tokens')
    .select(['claimed_at', 'redeemed_at', 'revoked_at', 'compact'])
    .where('job_id', '=', jobId)
    .where('step_id', '=', step)
    .executeTakeFirst();
}

/** A local port nothing listens on (it was free a moment ago). */
export async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}
