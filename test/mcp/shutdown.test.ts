import { afterAll, beforeAll, expect, it } from 'vitest';
import { dialectName } from '../helpers/db.js';
import { answerOf, connect, errorText, type McpWorld, startMcpWorld } from './mcp-world.js';

let world: McpWorld;
beforeAll(async () => {
  world = await startMcpWorld();
}, 120_000);
afterAll(async () => {
  await world?.close();
});

it(`a server shutting down answers the MCP requests waiting for people at once, then stops (${dialectName})`, async () => {
  const settings = { key: world.key, channel: world.w.channel, requester: world.w.ids.grace };
  const agent = await connect(world, 'http', settings);
  const coder = await connect(world, 'http', settings);
  try {
    const job = answerOf(
      await agent.call('request_approval', {
        runbook: 'service-context',
        params: { service: 'payments-api', query: 'q', notify_channel: 'payments-oncall' },
      }),
    );
    // Both would wait ten minutes: stop() returns only because they are answered and ended.
    const waiting = agent.call('wait_for_decision', {
      job: job.job,
      step: 'post-summary',
      timeout_seconds: 600,
    });
    const prompt = coder.call('permission_prompt', { tool_name: 'send_message', input: { text: 'now' } });
    await world.nextJob(job.job_id as number);
    await world.server.stop();
    expect(errorText(await waiting)).toBe('ERR_UNREACHABLE: claw-approvals is shutting down; ask again');
    expect(answerOf(await prompt)).toEqual({
      behavior: 'deny',
      message: 'claw-approvals is shutting down; nothing was approved',
    });
  } finally {
    await agent.close();
    await coder.close();
  }
});
