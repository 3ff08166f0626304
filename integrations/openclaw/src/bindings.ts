/**
 * Where a gateway (clawproxy) binds its receipts for a call this plugin let run: the job's run
 * and the hash of the step's `token_claimed` event. A tool that does its work through such a
 * gateway looks its call up here, sends the binding along, and returns the gateway's signed
 * receipts in its result's `details.claw_gateway_receipts`; the plugin hands them to the
 * server with the result.
 *
 * Calls are told apart by OpenClaw's run id and the call id: a model names its calls itself
 * (`call_1`), so two runs can hold the same call id at once. `get(toolCallId, runId)` finds
 * exactly one call; `get(toolCallId)` (a tool's `execute` is given the call id, not the run)
 * answers only while no other run holds that call id, and never guesses between two.
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

const keyOf = (toolCallId: string, runId: string | undefined) => `${runId ?? ''}\u0000${toolCallId}`;

export class CallBindings {
  readonly #byCall = new Map<string, CallBinding>();

  /** The binding of one call: by its run and call id, or by the call id while that is unique. */
  get(toolCallId: string, runId?: string): CallBinding | undefined {
    if (typeof toolCallId !== 'string') return undefined;
    if (runId !== undefined) return this.#byCall.get(keyOf(toolCallId, runId));
    let found: CallBinding | undefined;
    for (const [key, binding] of this.#byCall) {
      if (key.slice(key.indexOf('\u0000') + 1) !== toolCallId) continue;
      if (found) return undefined;
      found = binding;
    }
    return found;
  }

  has(toolCallId: string, runId?: string): boolean {
    return this.get(toolCallId, runId) !== undefined;
  }

  set(toolCallId: string, runId: string | undefined, binding: CallBinding): void {
    this.#byCall.set(keyOf(toolCallId, runId), binding);
  }

  /** Drops a call's binding, if it is still that job's (a later call may have reused the ids). */
  delete(toolCallId: string, runId: string | undefined, jobId: number): void {
    const key = keyOf(toolCallId, runId);
    if (this.#byCall.get(key)?.job_id === jobId) this.#byCall.delete(key);
  }

  get size(): number {
    return this.#byCall.size;
  }
}

/** Another copy of this module in the process (loaded twice) shares the one registry. */
function isRegistry(value: unknown): value is CallBindings {
  if (typeof value !== 'object' || value === null || value instanceof Map) return false;
  const r = value as Record<string, unknown>;
  return typeof r.get === 'function' && typeof r.set === 'function' && typeof r.delete === 'function';
}

export function callBindings(): CallBindings {
  const holder = globalThis as { [BINDINGS_KEY]?: unknown };
  const held = holder[BINDINGS_KEY];
  if (isRegistry(held)) return held;
  const fresh = new CallBindings();
  holder[BINDINGS_KEY] = fresh;
  return fresh;
}
