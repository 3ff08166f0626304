import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createAgent } from '../../src/agents/agent-keys.js';
import type { ChatPost } from '../../src/chat/chat-port.js';
import { OUTBOX_KEY_PROP } from '../../src/chat/outbox-delivery.js';
import { loadConfig } from '../../src/config.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { createWorld, eventually, type Person, type World } from '../helpers/bot-world.js';
import { createTestDb, TEST_PG_URL, type TestDb } from '../helpers/db.js';
import { OPS } from '../helpers/engine.js';
import { captureLogger } from '../helpers/log.js';
import { testGateway } from '../helpers/receipts.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** The whole product as `serve` runs it, on a sandbox Mattermost, with the ops agent's key. */
export interface McpWorld {
  w: World;
  server: RunningServer;
  /** The key `agents create` printed for agent:ops-mattermost-1. */
  key: string;
  serverLog: () => string;
  /** The bot's plan post of a job, once delivered (its thread). */
  planPost(jobId: number): Promise<ChatPost>;
  /** The newest job's id once it is newer than `after`. */
  nextJob(after: number): Promise<number>;
  /** Someone posts in the job's thread, once it is the job's thread. */
  say(who: Person, jobId: number, text: string): Promise<ChatPost>;
  close(): Promise<void>;
}

/**
 * A directory kept for the whole file (the shared helpers' temporary directories go after each
 * test, and this world serves several).
 */
async function keptDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function startMcpWorld(): Promise<McpWorld> {
  const w = await createWorld();
  const policiesDir = await keptDir('claw-mcp-policies-');
  await fs.cp(w.policiesDir, policiesDir, { recursive: true });
  const dataDir = await keptDir('claw-mcp-data-');
  const serverDb: TestDb | null = TEST_PG_URL ? await createTestDb({ migrate: false }) : null;
  const env = {
    DATA_DIR: dataDir,
    ...(serverDb ? { DATABASE_URL: serverDb.url! } : {}),
    POLICIES_DIR: policiesDir,
    MATTERMOST_URL: w.sandbox.url,
    MATTERMOST_TOKEN: w.botToken,
    HOST: '127.0.0.1',
    PORT: '0',
    PUBLIC_URL: 'https://claw.example.test',
    GATEWAY_SIGNER_DIDS: testGateway.did,
  };
  const logs = captureLogger('info');
  const server = await startServer(loadConfig(env), logs.log, {
    bot: {
      minBackoffMs: 20,
      maxBackoffMs: 300,
      pingIntervalMs: 1_000,
      outboxPollMs: 100,
      firstCatchUpMs: 60_000,
    },
  });
  await eventually(() => server.bot?.readiness().ok, 'the bot connected');
  const db = server.runtime.database.db;
  const { key } = await createAgent(db, { id: OPS.executor, at: new Date() });
  const planPost = (jobId: number) =>
    eventually(
      () =>
        w.sandbox
          .postsIn(w.channel)
          .find((p) => p.user_id === w.botUserId && p.props[OUTBOX_KEY_PROP] === `job:${jobId}:plan`),
      `the plan post of job:${jobId}`,
    );
  return {
    w,
    server,
    key,
    serverLog: logs.text,
    planPost,
    nextJob: (after) =>
      eventually(async () => {
        const row = await db
          .selectFrom('jobs')
          .select((eb) => eb.fn.max('id').as('id'))
          .executeTakeFirst();
        const id = Number(row?.id ?? 0);
        return id > after ? id : undefined;
      }, `a job after job:${after}`),
    say: async (who, jobId, text) => {
      const plan = await planPost(jobId);
      // Decisions count only once the job is bound to its thread, a moment after the post.
      await eventually(async () => {
        const job = await db
          .selectFrom('jobs')
          .select('root_post_id')
          .where('id', '=', jobId)
          .executeTakeFirst();
        return job?.root_post_id === plan.id;
      }, `job:${jobId} bound to its thread`);
      return w.post(who, text, plan.id);
    },
    close: async () => {
      await server.stop();
      await serverDb?.close();
      await w.close();
      for (const dir of [policiesDir, dataDir]) await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

export type Transport = 'stdio' | 'http';

export interface McpSession {
  client: Client;
  /** Errors the client's transport reported (a stray line on stdout would be one). */
  transportErrors: Error[];
  /** What the stdio server wrote to stderr. */
  stderr: () => string;
  call(name: string, args: Record<string, unknown>): Promise<CallToolResult>;
  close(): Promise<void>;
}

export interface SessionSettings {
  key: string;
  channel?: string;
  requester?: string;
  permissionTimeout?: number;
}

/**
 * An MCP client (the SDK's own) connected to the tools: over stdio, `claw-approvals mcp`
 * spawned from source as an MCP client would spawn it; over HTTP, the server's `/mcp`.
 */
export async function connect(world: McpWorld, via: Transport, s: SessionSettings): Promise<McpSession> {
  const client = new Client({ name: 'claw-approvals-test', version: '1.0.0' });
  const transportErrors: Error[] = [];
  let stderr = '';
  if (via === 'stdio') {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: ['--import', 'tsx', 'src/main.ts', 'mcp'],
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        CLAW_URL: world.server.url,
        CLAW_AGENT_KEY: s.key,
        CLAW_MATTERMOST_URL: world.w.sandbox.url,
        ...(s.channel ? { CLAW_CHANNEL_ID: s.channel } : {}),
        ...(s.requester ? { CLAW_REQUESTER_ID: s.requester } : {}),
        ...(s.permissionTimeout ? { CLAW_PERMISSION_TIMEOUT: String(s.permissionTimeout) } : {}),
      },
      stderr: 'pipe',
    });
    transport.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    transport.onerror = (err) => transportErrors.push(err);
    await client.connect(transport);
  } else {
    const url = new URL(`${world.server.url}/mcp`);
    if (s.channel) url.searchParams.set('channel', s.channel);
    if (s.requester) url.searchParams.set('requester', s.requester);
    if (s.permissionTimeout) url.searchParams.set('permission_timeout', String(s.permissionTimeout));
    const transport = new StreamableHTTPClientTransport(url, {
      requestInit: { headers: { authorization: `Bearer ${s.key}` } },
    });
    transport.onerror = (err) => transportErrors.push(err);
    await client.connect(transport);
  }
  return {
    client,
    transportErrors,
    stderr: () => stderr,
    call: async (name, args) =>
      (await client.callTool({ name, arguments: args }, undefined, { timeout: 120_000 })) as CallToolResult,
    close: () => client.close(),
  };
}

/** The JSON a tool answered (its first text content). */
export function answerOf(r: CallToolResult): Record<string, unknown> {
  const first = r.content[0];
  if (first?.type !== 'text') throw new Error('no text content');
  return JSON.parse(first.text) as Record<string, unknown>;
}

/** The text of a tool error. */
export function errorText(r: CallToolResult): string {
  const first = r.content[0];
  if (!r.isError || first?.type !== 'text') throw new Error(`not a tool error: ${JSON.stringify(r)}`);
  return first.text;
}
