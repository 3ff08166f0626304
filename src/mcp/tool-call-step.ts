import { STEP_ID } from '../approvals/parse-command.js';
import { hasUnsafeText, type PlanStep, TOOL_NAME } from '../jobs/plan.js';

/**
 * A coding agent's tool call as the one step of a job, and back.
 *
 * A plan step's args hold only scalars (text without control characters, up to 4000
 * characters; safe integers; booleans), at most 32 of them. A tool's input is any JSON object.
 * So each field is carried as itself when it is such a scalar, and otherwise as its JSON text
 * under `<field>.json` (split into `<field>.json.1`, `.2`, … when longer than one arg may
 * be). Field names of the input may not contain a dot, so the two forms never collide: the
 * mapping is one-to-one, the plan hash over the args pins exactly one input, and
 * `stepInput(args)` gives that input back.
 */

const MAX_ARGS = 32;
const MAX_ARG_TEXT = 4000;
/** The API refuses bodies over 64 KiB; the submitted step must leave room for the rest. */
const MAX_STEP_BYTES = 60_000;
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
// Assigning `__proto__` would set an object's prototype instead of a field.
const isField = (name: string) => FIELD_NAME.test(name) && name !== '__proto__';
const ENCODED = /^([A-Za-z_][A-Za-z0-9_-]{0,63})\.json(?:\.([1-9][0-9]?))?$/;
// What hasUnsafeText refuses and JSON.stringify leaves as it is (it escapes C0 controls and
// lone surrogates already); inside JSON text these only ever occur within strings.
const UNESCAPED = /[\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type ToolInput = Record<string, unknown>;

export type ToolCallStep = { ok: true; step: PlanStep } | { ok: false; problem: string };

function isNative(v: unknown): v is string | number | boolean {
  if (typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isSafeInteger(v);
  return typeof v === 'string' && v.length <= MAX_ARG_TEXT && !hasUnsafeText(v);
}

/** JSON text with nothing in it that a plan arg may not hold. */
function jsonText(v: unknown): string {
  return JSON.stringify(v).replace(UNESCAPED, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Cuts text into pieces of at most `size` code units, never inside a surrogate pair. */
function pieces(text: string, size: number): string[] {
  const out: string[] = [];
  let at = 0;
  while (at < text.length) {
    let end = Math.min(at + size, text.length);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end -= 1;
    out.push(text.slice(at, end));
    at = end;
  }
  return out;
}

/** The step id approvers type (`APPROVE job:<n> step:<id>`): the tool's name, lower-cased. */
export function stepIdFor(toolName: string): string {
  const id = toolName
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 64);
  return STEP_ID.test(id) ? id : 'call';
}

export function toolCallStep(toolName: string, input: ToolInput): ToolCallStep {
  if (!TOOL_NAME.test(toolName))
    return { ok: false, problem: 'the tool name is not one a policy can name (letters, digits, _.:/-)' };
  const args: Record<string, string | number | boolean> = {};
  for (const [field, value] of Object.entries(input)) {
    if (!isField(field))
      return {
        ok: false,
        problem: 'an input field name is not a plain identifier (letters, digits, _ and -)',
      };
    if (value === undefined) continue;
    if (isNative(value)) {
      // JSON and the plan's canonical form know no negative zero: -0 is carried, and approved, as 0.
      args[field] = Object.is(value, -0) ? 0 : value;
      continue;
    }
    const parts = pieces(jsonText(value), MAX_ARG_TEXT);
    if (parts.length === 1) args[`${field}.json`] = parts[0]!;
    else parts.forEach((p, i) => (args[`${field}.json.${i + 1}`] = p));
  }
  const count = Object.keys(args).length;
  if (count > MAX_ARGS)
    return { ok: false, problem: `the input needs ${count} arguments; a step holds at most ${MAX_ARGS}` };
  const step: PlanStep = {
    id: stepIdFor(toolName),
    tool: toolName,
    args,
    summary: `Let the coding agent call ${toolName} with exactly these arguments`,
  };
  const bytes = Buffer.byteLength(JSON.stringify(step));
  if (bytes > MAX_STEP_BYTES)
    return {
      ok: false,
      problem: `the input is too large to put before approvers (${bytes} bytes; at most ${MAX_STEP_BYTES})`,
    };
  return { ok: true, step };
}

/** The tool input a step's args carry; throws on args `toolCallStep` cannot have made. */
export function stepInput(args: Readonly<Record<string, unknown>>): ToolInput {
  const input: ToolInput = {};
  const chunks = new Map<string, Map<number, string>>();
  for (const [key, value] of Object.entries(args)) {
    const m = ENCODED.exec(key);
    if (!m) {
      if (!isField(key) || !isNative(value)) throw new Error(`arg ${key} is not a carried field`);
      input[key] = value;
      continue;
    }
    if (typeof value !== 'string') throw new Error(`arg ${key} is not JSON text`);
    const field = m[1]!;
    if (!isField(field)) throw new Error(`arg ${key} is not a carried field`);
    const n = m[2] === undefined ? 0 : Number(m[2]);
    let parts = chunks.get(field);
    if (!parts) chunks.set(field, (parts = new Map()));
    parts.set(n, value);
  }
  for (const [field, parts] of chunks) {
    if (Object.hasOwn(input, field)) throw new Error(`field ${field} is carried twice`);
    let text: string;
    if (parts.has(0)) {
      if (parts.size !== 1) throw new Error(`field ${field} is carried twice`);
      text = parts.get(0)!;
    } else {
      const order = [...parts.keys()].sort((a, b) => a - b);
      if (order.length < 2 || order.some((n, i) => n !== i + 1))
        throw new Error(`field ${field} has missing pieces`);
      text = order.map((n) => parts.get(n)!).join('');
    }
    const value = JSON.parse(text) as unknown;
    // A value that fits as itself is always carried as itself: anything else is not our encoding.
    if (isNative(value)) throw new Error(`field ${field} is encoded although it need not be`);
    input[field] = value;
  }
  return input;
}
