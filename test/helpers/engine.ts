import { ChatPresenter } from '../../src/presenter/chat-presenter.js';
import { markDelivered, statusPatchKey } from '../../src/chat/outbox.js';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { ChatMembership } from '../../src/approvals/directory.js';
import { groupsDirectory } from '../../src/approvals/directory.js';
import type { ChatFacts } from '../../src/ports/chat.js';
import { createAgent } from '../../src/agents/agent-keys.js';
import { type EngineContext, JobNotifier } from '../../src/jobs/context.js';
import { createJob } from '../../src/jobs/create-job.js';
import { PolicyService } from '../../src/policy/policy-service.js';
import { tokenVerifier } from '../../src/tokens/verify-token.js';
import { createTestDb, type TestDb } from './db.js';
import { copyPolicies } from './fs.js';
import { silentLogger } from './log.js';
import { testGateway } from './receipts.js';
import { newKey, ringOf } from './state.js';

/** People of `policies/groups.json` used across engine tests. */
export const U = {
  alice: 'fn5tnqd3rq1k6a6rjes4egzp8n', // ops-oncall
  bruno: 'f9g6ejxi8rtawyzhfgrt6tynuc', // ops-oncall and mattermost-agent-requesters
  chioma: 'e8t3kac4ppqwfhe17uzapx175t', // sec-reviewers and security
  dmitri: '7fsnwmidynb3dhd94dh9i8rmtn', // sec-reviewers and platform_security
  erin: 'qbkw593ocga7d4hr5d1fmk36ru', // security
  farid: 'yxnxux4daa14kiqo56aekuhd6x', // mattermost-agent-requesters, change-requesters
  grace: 'dse6eipg5ijztcxx8bhb384g5d', // requester in both
  priya: 'caw75ht33fz5f5y39d4aq51hxc', // service_owner
  rosa: 'x7ccu61x179f3uq6qj8nnyprda', // platform_security
  outsider: 'zzzzzzzzzzzzzzzzzzzzzzzzzz',
} as const;

export const OPS = {
  team: '9d3bnaiagttz34jro16b6815ia',
  channel: '7sczj5rye83784zqootng6sb48',
  executor: 'agent:ops-mattermost-1',
};

/** A clock tests can move. */
export function movableClock(start = '2026-11-21T10:00:00Z') {
  let now = new Date(start).getTime();
  const clock = () => new Date(now);
  return Object.assign(clock, {
    advance(seconds: number) {
      now += seconds * 1000;
    },
  });
}

export interface TestEngine {
  ctx: EngineContext;
  d: TestDb;
  clock: ReturnType<typeof movableClock>;
  policiesDir: string;
  close(): Promise<void>;
}

/**
 * A real engine over a fresh database (PostgreSQL or PGlite, as the run says) and a copy of
 * the shipped policies; `edit` may change policy files before they load.
 */
export async function createTestEngine(
  opts: {
    edit?: (dir: string) => Promise<void>;
    chat?: ChatMembership;
    /** Defaults to the test gateway of `receipts.ts`. */
    gatewaySigners?: string[];
    log?: Logger;
    /** What the engine re-reads from Mattermost at quorum time; absent, as in API-only mode. */
    facts?: ChatFacts;
  } = {},
): Promise<TestEngine> {
  const d = await createTestDb();
  const policiesDir = await copyPolicies();
  if (opts.edit) await opts.edit(policiesDir);
  const key = newKey();
  const keyRing = ringOf(key);
  const clock = movableClock();
  const log = opts.log ?? silentLogger();
  const policies = new PolicyService({ db: d.db, keyRing, clock, log, policiesDir });
  await policies.reload();
  const ctx: EngineContext = {
    db: d.db,
    keyRing,
    verifier: tokenVerifier(keyRing),
    policies,
    directory: groupsDirectory(() => policies.current()?.groups ?? null, opts.chat),
    clock,
    log,
    notifier: new JobNotifier(),
    gatewaySigners: new Set(opts.gatewaySigners ?? [testGateway.did]),
    securityGroup: 'security',
    // The thread hears about every job as it would with the bot configured.
    events: new ChatPresenter({ publicUrl: null }),
    version: 'test',
    ...(opts.facts ? { chat: opts.facts } : {}),
  };
  return { ctx, d, clock, policiesDir, close: () => d.close() };
}

export async function editJson(dir: string, file: string, edit: (v: Record<string, unknown>) => void) {
  const p = path.join(dir, file);
  const v = JSON.parse(await fs.readFile(p, 'utf8')) as Record<string, unknown>;
  edit(v);
  await fs.writeFile(p, JSON.stringify(v, null, 2));
}

let rootCounter = 0;
/** A `service-context` job in the ops channel requested by grace; its gated step is post-summary. */
export async function opsJob(ctx: EngineContext, requesterId: string = U.grace) {
  rootCounter += 1;
  return createJob(ctx, {
    origin: {
      kind: 'mattermost',
      teamId: OPS.team,
      channelId: OPS.channel,
      rootPostId: `root${String(rootCounter).padStart(22, '0')}`,
    },
    requesterId,
    runbook: {
      name: 'service-context',
      params: { service: 'payments-api', query: 'latency spikes', notify_channel: 'payments-oncall' },
    },
  });
}

/** The job's status post marked posted (as the bot's delivery would have), so its edits are due. */
export async function markStatusPostDelivered(ctx: EngineContext, jobId: number, at: Date): Promise<void> {
  const status = await ctx.db
    .selectFrom('outbox')
    .select('target_key')
    .where('dedupe_key', '=', statusPatchKey(jobId))
    .executeTakeFirstOrThrow();
  const plan = await ctx.db
    .selectFrom('outbox')
    .select(['id', 'lease_owner'])
    .where('dedupe_key', '=', status.target_key!)
    .executeTakeFirstOrThrow();
  await markDelivered(ctx.db, plan, 'planpost0000000000000000000', at);
}

export async function registerAgent(ctx: EngineContext, id = OPS.executor) {
  return createAgent(ctx.db, { id, at: ctx.clock() });
}

/**
 * The same `service-context` job submitted by the ops agent (registered here) for grace: an
 * agent's job, whose requester must confirm it in the thread its plan post starts.
 */
export async function agentJob(ctx: EngineContext): Promise<number> {
  await registerAgent(ctx);
  const job = await createJob(ctx, {
    origin: { kind: 'api', agentId: OPS.executor, channelId: OPS.channel },
    requesterId: U.grace,
    runbook: {
      name: 'service-context',
      params: { service: 'payments-api', query: 'latency spikes', notify_channel: 'payments-oncall' },
    },
  });
  return job.jobId;
}
