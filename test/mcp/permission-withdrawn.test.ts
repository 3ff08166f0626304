import type { ClawClient, JobView } from '@claw-approvals/client';
import type { FastifyBaseLogger } from 'fastify';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { McpToolDeps } from '../../src/mcp/deps.js';
import { decidePermission } from '../../src/mcp/permission-prompt.js';

const CHANNEL = 'c'.repeat(26);
const REQUESTER = 'r'.repeat(26);
const job = { job_id: 7, id: 'job:7' } as JobView;

/** A client whose submission is still on its way when the caller withdraws. */
function world(submit: (withdraw: () => void) => Promise<JobView>) {
  const caller = new AbortController();
  const closed: { job: unknown; reason: string | undefined }[] = [];
  const client = {
    submitJob: () => submit(() => caller.abort(new Error('withdrawn'))),
    closeJob: async (j: unknown, reason?: string) => {
      closed.push({ job: j, reason });
      return {};
    },
    waitForDecision: () => Promise.reject(new Error('must not wait once withdrawn')),
  } as unknown as ClawClient;
  const deps: McpToolDeps = {
    client,
    log: pino({ level: 'silent' }) as unknown as FastifyBaseLogger,
    mattermostUrl: null,
    channelId: CHANNEL,
    requesterId: REQUESTER,
    teamId: null,
    permissionTimeoutSeconds: 60,
  };
  const call = { tool_name: 'send_message', input: { text: 'bye' } };
  return { closed, answer: () => decidePermission(deps, call, { signal: caller.signal }) };
}

describe('a permission prompt withdrawn while its job is being submitted', () => {
  it('closes the job the submission made, instead of leaving it open for people', async () => {
    const w = world(async (withdraw) => {
      withdraw();
      return job;
    });
    await expect(w.answer()).rejects.toThrow('withdrawn');
    expect(w.closed).toEqual([{ job, reason: expect.stringContaining('withdrawn') as unknown }]);
  });

  it('closes nothing when the submission itself failed', async () => {
    const w = world(async (withdraw) => {
      withdraw();
      throw new Error('connection reset');
    });
    await expect(w.answer()).rejects.toThrow('connection reset');
    expect(w.closed).toEqual([]);
  });
});
