import { GATE_MARGIN_MS } from './approval-gate.js';

/** What the plugin asks OpenClaw for on top of the approval wait: the gate's margin and slack. */
export const HOOK_MARGIN_MS = 60_000;
/** Between the gate's own deadline and OpenClaw's: the gate answers before OpenClaw gives up. */
export const HOOK_SLACK_MS = 30_000;

function positiveMs(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : undefined;
}

/**
 * The `before_tool_call` timeout OpenClaw will apply, and the gate's deadline inside it. The
 * plugin asks for the approval wait + {@link HOOK_MARGIN_MS}; an operator's
 * `plugins.entries.<id>.hooks.timeouts.before_tool_call` (else `hooks.timeoutMs`) wins, as
 * OpenClaw's loader decides. The gate stops {@link HOOK_SLACK_MS} before that, and never
 * later than the approval wait + its margin, so OpenClaw never times a gate out that then
 * claims a token for a call OpenClaw has already blocked.
 */
export function hookTimeouts(
  approvalTimeoutMs: number,
  operatorHooks: unknown,
): { requestedMs: number; hookTimeoutMs: number; gateDeadlineMs: number } {
  const requestedMs = approvalTimeoutMs + HOOK_MARGIN_MS;
  const hooks = (typeof operatorHooks === 'object' && operatorHooks !== null ? operatorHooks : {}) as {
    timeouts?: unknown;
    timeoutMs?: unknown;
  };
  const perHook = (typeof hooks.timeouts === 'object' && hooks.timeouts !== null ? hooks.timeouts : {}) as {
    before_tool_call?: unknown;
  };
  const hookTimeoutMs = positiveMs(perHook.before_tool_call) ?? positiveMs(hooks.timeoutMs) ?? requestedMs;
  const gateDeadlineMs = Math.min(approvalTimeoutMs + GATE_MARGIN_MS, hookTimeoutMs - HOOK_SLACK_MS);
  return { requestedMs, hookTimeoutMs, gateDeadlineMs };
}

/** The operator's hook settings for this plugin in OpenClaw's config, if any. */
export function operatorHooksOf(openclawConfig: unknown, pluginId: string): unknown {
  const plugins = (
    openclawConfig as { plugins?: { entries?: Record<string, { hooks?: unknown } | undefined> } }
  )?.plugins;
  const entries = plugins?.entries;
  if (typeof entries !== 'object' || entries === null || !Object.hasOwn(entries, pluginId)) return undefined;
  return entries[pluginId]?.hooks;
}
