import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { PLUGIN_DIR, requireOpenClawInstall } from './openclaw-gateway.js';

interface Registration {
  hook: string;
  handler: (...args: unknown[]) => unknown;
  opts: { priority?: number; timeoutMs?: number } | undefined;
}
interface Entry {
  id: string;
  register(api: unknown): void;
}

// The entry as OpenClaw's SDK builds it (`definePluginEntry` from the installed `openclaw`
// package), registered against a recording API: what the gateway test cannot look at.
let entry: Entry;
beforeAll(async () => {
  requireOpenClawInstall();
  const url = pathToFileURL(path.join(PLUGIN_DIR, 'src/index.ts')).href;
  entry = ((await import(url)) as { default: Entry }).default;
});

function register(pluginConfig: unknown) {
  const hooks: Registration[] = [];
  const logged: string[] = [];
  const log = (m: string) => logged.push(m);
  entry.register({
    id: 'claw-approvals',
    pluginConfig,
    logger: { info: log, warn: log, error: log },
    on: (hook: string, handler: Registration['handler'], opts: Registration['opts']) =>
      hooks.push({ hook, handler, opts }),
  });
  return { hooks, logged };
}

const config = {
  serverUrl: 'http://127.0.0.1:1',
  agentKeyFile: '/dev/null',
  channelId: '7sczj5rye83784zqootng6sb48',
  policyHash: 'a3MIY61y3pyimg9tIUepz4Cu34cb6hiO19O-SUWcm_0',
  approvalTimeoutSeconds: 120,
};

describe('the plugin entry', () => {
  it('has the id its manifest declares', () => {
    const manifest = JSON.parse(readFileSync(path.join(PLUGIN_DIR, 'openclaw.plugin.json'), 'utf8')) as {
      id: string;
    };
    expect(entry.id).toBe(manifest.id);
  });

  it('gates every tool call last, with a budget for the wait, and reports outcomes', () => {
    process.env.CLAW_APPROVALS_ENTRY_TEST_KEY = 'key_entry_test_0123';
    const { hooks, logged } = register({
      ...config,
      agentKeyFile: undefined,
      agentKeyEnv: 'CLAW_APPROVALS_ENTRY_TEST_KEY',
    });
    expect(logged).toEqual([]);
    expect(hooks.map((h) => [h.hook, h.opts])).toEqual([
      ['before_tool_call', { priority: -1_000_000, timeoutMs: 180_000 }],
      ['after_tool_call', undefined],
      ['gateway_stop', undefined],
    ]);
  });

  it('blocks every tool call, with the problems, when it is misconfigured', async () => {
    // /dev/null reads as an empty key.
    const { hooks, logged } = register({ ...config, channelId: 'ops' });
    expect(hooks.map((h) => h.hook)).toEqual(['before_tool_call']);
    const reason =
      'claw-approvals: the plugin is misconfigured (agentKeyFile is empty; channelId must be a Mattermost channel id (26 characters a-z, 0-9)); every tool call is blocked';
    expect(logged).toEqual([reason]);
    expect(await hooks[0]!.handler({ toolName: 'read', params: {} }, {})).toEqual({
      block: true,
      blockReason: reason,
    });
  });
});
