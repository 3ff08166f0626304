/**
 * Where a gateway (clawproxy) binds its receipts for a call this plugin let run: the job's run
 * and the hash of the step's `token_claimed` event. A tool that does its work through such a
 * gateway looks its call up here by the `toolCallId` OpenClaw passes to `execute`, sends the
 * binding along, and returns the gateway's signed receipts in its result's
 * `details.claw_gateway_receipts`; the plugin hands them to the server with the result.
 *
 * The registry lives on `globalThis` under a registered symbol, so another plugin in the same
 * gateway process reads it without importing this module. It holds no credential: the CST is
 * redeemed and dropped before the call runs.
 */
export interface CallBinding {
  job_id: number;
  step: string;
  run_id: string;
  event_hash_b64u: string;
}

export const BINDINGS_KEY = Symbol.for('claw-approvals.openclaw.call-bindings');

export function callBindings(): Map<string, CallBinding> {
  const holder = globalThis as { [BINDINGS_KEY]?: Map<string, CallBinding> };
  holder[BINDINGS_KEY] ??= new Map();
  return holder[BINDINGS_KEY];
}
