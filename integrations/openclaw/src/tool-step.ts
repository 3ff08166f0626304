import type { PlanStep, Scalar } from '@claw-approvals/client';
import { canonicalJson, jcsSha256B64u } from './jcs.js';

/** As the server checks them (`src/jobs/plan.ts`, the `POST /v1/jobs` schema). */
export const STEP_ID = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
export const TOOL_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$/;
export const MAX_ARGS = 32;
export const MAX_ARG_TEXT = 4000;
// Control characters (C0, DEL, C1), bidi and zero-width controls, BOM and lone surrogates:
// the server refuses them in step args, and they have no place in what people approve.
// eslint-disable-next-line no-control-regex -- matching control characters is the point.
const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\p{Cs}]/u;
// eslint-disable-next-line no-control-regex -- as above, for replacing every one of them.
const UNSAFE_TEXT_ALL = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/gu;
const AGENT_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
/**
 * An input field name people can read and every JSON parser keeps as a field: as the MCP
 * server's permission prompt allows them (`src/mcp/tool-call-step.ts`). `__proto__` matches
 * the pattern but sets an object's prototype when assigned, so it is refused by name.
 */
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
export const isField = (name: string): boolean => FIELD_NAME.test(name) && name !== '__proto__';

export type ToolStep =
  | { ok: true; step: PlanStep & { args: Record<string, Scalar> }; paramsHash: string }
  | { ok: false; reason: string };

/** The step id people will type in the phrase: the tool's name, as far as a step id allows. */
export function stepIdFor(tool: string): string {
  let id = tool.toLowerCase().replace(/[^a-z0-9_.-]/g, '-');
  if (!/^[a-z0-9]/.test(id)) id = `call-${id}`;
  id = id.slice(0, 64);
  return STEP_ID.test(id) ? id : 'call';
}

/**
 * JSON text of a value that is not a plain step arg (an object, a list, a fraction, text with
 * line breaks), with every character the server refuses in an arg written as a `\uXXXX`
 * escape: still JSON, and the same value.
 */
export function argText(value: unknown): string {
  return canonicalJson(value).replace(
    UNSAFE_TEXT_ALL,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * The plan step for one tool call. Each input becomes an arg: strings, whole numbers and
 * booleans as they are, anything else as its JSON text. The summary carries the SHA-256 of
 * the input's JCS, so the approved step names exactly one input even where a string and a
 * JSON text would read alike. Input that cannot be shown whole (too many fields, too long, a
 * field name that is not a plain identifier, no JSON form) is refused rather than cut: people
 * never approve part of a call. Before the step is handed back, its args are read back against
 * the input: every field there, each the same value.
 */
export function toolCallStep(
  tool: string,
  params: Readonly<Record<string, unknown>>,
  from: { agentId?: string | undefined } = {},
): ToolStep {
  if (!TOOL_NAME.test(tool)) return { ok: false, reason: 'the tool name is not one a policy can name' };
  let paramsHash: string;
  try {
    paramsHash = jcsSha256B64u(params);
  } catch {
    return { ok: false, reason: `the input of ${tool} has no JSON form, so it cannot be approved` };
  }
  const entries = Object.entries(params).filter(([, v]) => v !== undefined);
  if (entries.length > MAX_ARGS)
    return {
      ok: false,
      reason: `${tool} has ${entries.length} inputs; at most ${MAX_ARGS} can be shown for approval`,
    };
  for (const [key] of entries) {
    if (!isField(key))
      return {
        ok: false,
        reason: `${tool} has an input name that is not a plain identifier (letters, digits, _ and -), so it cannot be shown for approval`,
      };
  }
  const pairs: [string, Scalar][] = [];
  for (const [key, value] of entries) {
    let arg: Scalar;
    if (typeof value === 'boolean' || (typeof value === 'number' && Number.isSafeInteger(value))) arg = value;
    else if (typeof value === 'string' && !UNSAFE_TEXT.test(value)) arg = value;
    else arg = argText(value);
    if (typeof arg === 'string' && arg.length > MAX_ARG_TEXT) {
      return {
        ok: false,
        reason: `input ${key} of ${tool} is ${arg.length} characters; at most ${MAX_ARG_TEXT} can be shown for approval`,
      };
    }
    pairs.push([key, arg]);
  }
  // Own data properties whatever the key (`constructor`, `prototype`): no assignment through a
  // prototype's setter, so nothing is dropped or turned into something else on the way.
  const args = Object.fromEntries(pairs) as Record<string, Scalar>;
  if (!argsCarry(args, params))
    return { ok: false, reason: `the input of ${tool} cannot be shown whole, so it cannot be approved` };
  const agent =
    from.agentId !== undefined && AGENT_NAME.test(from.agentId) ? ` by agent ${from.agentId}` : '';
  return {
    ok: true,
    step: {
      id: stepIdFor(tool),
      tool,
      args,
      summary: `OpenClaw tool call ${tool}${agent}; input JCS SHA-256 ${paramsHash}`,
    },
    paramsHash,
  };
}

/**
 * Whether step args carry exactly this input: the same field names (the input's `undefined`
 * fields aside, as JSON leaves them out), each arg either the value itself or the JSON text of
 * it. Checked on every step before it is submitted, so a step that lost or changed a field on
 * the way is blocked rather than shown to approvers.
 */
export function argsCarry(
  args: Readonly<Record<string, unknown>>,
  params: Readonly<Record<string, unknown>>,
) {
  const fields = Object.keys(params).filter((k) => params[k] !== undefined);
  const carried = Object.keys(args);
  if (carried.length !== fields.length || !fields.every((k) => Object.hasOwn(args, k))) return false;
  try {
    return fields.every((k) => {
      const arg = args[k];
      const want = canonicalJson(params[k]);
      if (typeof arg === 'boolean' || typeof arg === 'number') return canonicalJson(arg) === want;
      if (typeof arg !== 'string') return false;
      if (JSON.stringify(arg) === want) return true;
      try {
        return canonicalJson(JSON.parse(arg)) === want;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}
