import type { ClawClient, JobView } from '@claw-approvals/client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { FastifyBaseLogger } from 'fastify';
import { setImmediate as turn } from 'node:timers/promises';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { McpToolDeps } from '../../src/mcp/deps.js';
import { createMcpServer } from '../../src/mcp/mcp-server.js';
import { decidePermission } from '../../src/mcp/permission-prompt.js';

/**
 * A tool call withdrawn while its job is being submitted: the server may already have made
 * the job, and only the submission's answer says which. The tool sees the submission
 * through and closes that job, so people are never asked to approve what nobody waits for.
 */

const CHANNEL = 'c'.repeat(26);
const REQUESTER = 'r'.repeat(26);
const JOB = {
  job_id: 7,
  id: 'job:7',
  status: 'open',
  version: 1,
  root_post_id: null,
  steps: [],
  policy: { name: 'p' },
} as unknown as JobView;

/** A client whose submission is still on its way when `withdraw` is called. */
function fakeClient(submit: () => Promise<JobView>) {
  const closed: { job: unknown; reason: string | undefined }[] = [];
  const client = {
    submitJob: submit,
    closeJob: async (job: unknown, reason?: string) => {
      closed.push({ job, reason });
      return {};
    },
    getJob: () => Promise.reject(new Error('must not wait once withdrawn')),
    waitForDecision: () => Promise.reject(new Error('must not wait once withdrawn')),
  } as unknown as ClawClient;
  return { client, closed };
}

function depsWith(client: ClawClient): McpToolDeps {
  return {
    client,
    log: pino({ level: 'silent' }) as unknown as FastifyBaseLogger,
    mattermostUrl: 'https://chat.example.com',
    channelId: CHANNEL,
    requesterId: REQUESTER,
    teamId: null,
    permissionTimeoutSeconds: 60,
  };
}

describe('the permission prompt withdrawn while its job is being submitted', () => {
  const call = { tool_name: 'send_message', input: { text: 'bye' } };

  it('closes the job the submission made', async () => {
    const caller = new AbortController();
    const f = fakeClient(async () => {
      caller.abort(new Error('withdrawn'));
      return JOB;
    });
    await expect(decidePermission(depsWith(f.client), call, { signal: caller.signal })).rejects.toThrow(
      'withdrawn',
    );
    expect(f.closed).toEqual([{ job: JOB, reason: expect.stringContaining('withdrawn') as unknown }]);
  });

  it('closes nothing when the submission itself failed', async () => {
    const caller = new AbortController();
    const f = fakeClient(async () => {
      caller.abort(new Error('withdrawn'));
      throw new Error('connection reset');
    });
    await expect(decidePermission(depsWith(f.client), call, { signal: caller.signal })).rejects.toThrow(
      'connection reset',
    );
    expect(f.closed).toEqual([]);
  });
});

describe('request_approval cancelled by its MCP client while the job is being submitted', () => {
  let mcp: Client | undefined;
  afterEach(async () => {
    await mcp?.close();
  });

  it('closes the job the submission made', async () => {
    const cancel = new AbortController();
    let submitted!: () => void;
    const submitting = new Promise<void>((resolve) => (submitted = resolve));
    const f = fakeClient(async () => {
      cancel.abort();
      // The cancellation notice travels to the server before the submission answers.
      await turn();
      submitted();
      return JOB;
    });
    const server = createMcpServer(depsWith(f.client), '0.0.0');
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.connect(serverSide);
    mcp = new Client({ name: 'test', version: '1.0.0' });
    await mcp.connect(clientSide);
    const answer = mcp.callTool(
      { name: 'request_approval', arguments: { runbook: 'service-context', params: {} } },
      undefined,
      { signal: cancel.signal },
    );
    await expect(answer).rejects.toThrow();
    await submitting;
    await expect
      .poll(() => f.closed)
      .toEqual([{ job: JOB, reason: 'the request for approval was withdrawn' }]);
  });
});
