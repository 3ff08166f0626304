import { ClawClient } from '@claw-approvals/client';
import { definePluginEntry } from 'openclaw/plugin-sdk/plugin-entry';
import { ApprovalGate } from './approval-gate.js';
import { parseConfig } from './config.js';
import { hookTimeouts, operatorHooksOf } from './hook-timeout.js';
import { pinnedPolicyLoader } from './policy.js';

export const PLUGIN_ID = 'claw-approvals';
/** Below every ordinary handler, so the input this plugin returns is the one that runs. */
export const HOOK_PRIORITY = -1_000_000;

export default definePluginEntry({
  id: PLUGIN_ID,
  name: 'claw-approvals',
  description:
    "Tool calls the channel's pinned WPC gates wait for the two-person approval in Mattermost and run only with a redeemed CST.",
  register(api) {
    const parsed = parseConfig(api.pluginConfig, { env: process.env });
    if (!parsed.ok) {
      // Fail closed: a gate that cannot be set up lets nothing through.
      const reason = `claw-approvals: the plugin is misconfigured (${parsed.problems.join('; ')}); every tool call is blocked`;
      api.logger.error(reason);
      api.on('before_tool_call', () => ({ block: true, blockReason: reason }), { priority: HOOK_PRIORITY });
      return;
    }
    const { config } = parsed;
    const timeouts = hookTimeouts(config.approvalTimeoutMs, operatorHooksOf(api.config, PLUGIN_ID));
    if (timeouts.gateDeadlineMs <= 0)
      api.logger.warn(
        `claw-approvals: the before_tool_call timeout of ${timeouts.hookTimeoutMs} ms leaves the gate no time; every gated call is blocked`,
      );
    const gate = new ApprovalGate({
      config,
      client: new ClawClient({
        baseUrl: config.serverUrl,
        agentKey: config.agentKey,
        userAgent: 'claw-approvals-openclaw/0.1.0',
      }),
      policy: pinnedPolicyLoader({ serverUrl: config.serverUrl, policyHash: config.policyHash }),
      log: api.logger,
      deadlineMs: timeouts.gateDeadlineMs,
    });
    api.on('before_tool_call', (event, ctx) => gate.beforeToolCall(event, ctx), {
      priority: HOOK_PRIORITY,
      timeoutMs: timeouts.requestedMs,
    });
    api.on('after_tool_call', (event, ctx) => gate.afterToolCall(event, ctx));
    api.on('gateway_stop', () => gate.stop());
  },
});
