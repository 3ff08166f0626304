import { jcsHashB64u } from '../crypto/hash.js';
import { STEP_ID } from '../approvals/parse-command.js';
import { approvalRuleFor, isToolAllowed } from '../policy/approval-rule.js';
import { matchesAny } from '../policy/tool-pattern.js';
import type { ApprovalRule, Runbook, RunbookParam, Wpc } from '../policy/types.js';

export type ArgValue = string | number | boolean;

/** One proposed action. The plan is the ordered list of them; its hash is over their JCS. */
export interface PlanStep {
  id: string;
  tool: string;
  args: Record<string, ArgValue>;
  summary: string;
}

export type Plan = PlanStep[];

export const MAX_PLAN_STEPS = 32;
export const MAX_PARAM_LENGTH = 1000;
/**
 * A tool name: what a policy's tool patterns can match, and exactly `$defs.tool_name` of
 * policies/wpc.schema.json (a test holds them equal). Namespaced MCP names are real
 * (`mcp:crm-mcp/search_customer`, `mcp/server/tool`, `mcp__server__tool`), so `/` and `_` are
 * allowed; spaces, control characters, `*` and more than 128 characters never are.
 */
export const TOOL_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$/;
// Control characters (C0, DEL, C1), Unicode bidi/zero-width controls and lone surrogates (not
// text at all: JCS refuses them, so no event could record them) never belong in a param.
// eslint-disable-next-line no-control-regex -- matching control characters is the point.
const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\p{Cs}]/u;

export function hasUnsafeText(text: string): boolean {
  return UNSAFE_TEXT.test(text);
}

/** plan_hash_b64u = base64url(SHA-256(JCS(plan))). */
export function planHash(plan: Plan): string {
  return jcsHashB64u(plan);
}

export type Expansion =
  | { ok: true; plan: Plan; params: Record<string, ArgValue>; executor: string }
  | { ok: false; problems: string[] };

function coerce(name: string, spec: RunbookParam, raw: unknown): { value?: ArgValue; problem?: string } {
  let value: ArgValue;
  if (spec.type === 'integer') {
    if (typeof raw === 'number') value = raw;
    else if (typeof raw === 'string' && /^-?(0|[1-9][0-9]{0,15})$/.test(raw)) value = Number(raw);
    else return { problem: `${name} must be an integer` };
    if (!Number.isSafeInteger(value)) return { problem: `${name} must be an integer` };
    if (spec.minimum !== undefined && value < spec.minimum)
      return { problem: `${name} must be ≥ ${spec.minimum}` };
    if (spec.maximum !== undefined && value > spec.maximum)
      return { problem: `${name} must be ≤ ${spec.maximum}` };
  } else if (spec.type === 'boolean') {
    if (typeof raw === 'boolean') value = raw;
    else if (raw === 'true' || raw === 'false') value = raw === 'true';
    else return { problem: `${name} must be true or false` };
  } else {
    if (typeof raw !== 'string') return { problem: `${name} must be a string` };
    value = raw;
    if (raw.length > (spec.max_length ?? MAX_PARAM_LENGTH)) {
      return { problem: `${name} is longer than ${spec.max_length ?? MAX_PARAM_LENGTH} characters` };
    }
    if (UNSAFE_TEXT.test(raw)) return { problem: `${name} contains control or invisible characters` };
    if (spec.pattern !== undefined && !new RegExp(`^(?:${spec.pattern})$`, 'u').test(raw)) {
      return { problem: `${name} does not match ${spec.pattern}` };
    }
  }
  if (spec.enum !== undefined && !spec.enum.includes(value as string | number)) {
    return { problem: `${name} must be one of ${spec.enum.join(', ')}` };
  }
  return { value };
}

function substitute(template: string, params: Record<string, ArgValue>): ArgValue {
  const whole = /^\{\{([a-z][a-z0-9_]*)\}\}$/.exec(template);
  if (whole && whole[1]! in params) return params[whole[1]!]!;
  return template.replace(/\{\{([a-z][a-z0-9_]*)\}\}/g, (m, name: string) =>
    name in params ? String(params[name]) : m,
  );
}

/**
 * Expands a policy runbook into a plan. Every param is checked against its declaration
 * (type, required, pattern, enum, range, length); unknown params are refused rather than
 * ignored, so a typo never silently runs with a default.
 */
export function expandRunbook(policy: Wpc, name: string, raw: Readonly<Record<string, unknown>>): Expansion {
  const runbooks = policy.runbooks ?? {};
  if (!Object.hasOwn(runbooks, name)) {
    const known = Object.keys(runbooks).sort();
    return {
      ok: false,
      problems: [
        `unknown runbook "${name}"; this channel offers: ${known.length ? known.join(', ') : '(none)'}`,
      ],
    };
  }
  const runbook: Runbook = runbooks[name]!;
  const specs = runbook.params ?? {};
  const problems: string[] = [];
  for (const key of Object.keys(raw)) {
    if (!Object.hasOwn(specs, key)) problems.push(`unknown parameter "${key.slice(0, 64)}"`);
  }
  const params: Record<string, ArgValue> = {};
  for (const [param, spec] of Object.entries(specs)) {
    const given = Object.hasOwn(raw, param) ? raw[param] : undefined;
    if (given === undefined) {
      if (spec.default !== undefined) params[param] = spec.default;
      else if (spec.required) problems.push(`missing required parameter ${param}`);
      continue;
    }
    const { value, problem } = coerce(param, spec, given);
    if (problem) problems.push(problem);
    else params[param] = value!;
  }
  if (problems.length > 0) return { ok: false, problems };
  const plan = runbook.steps.map((s) => ({
    id: s.id,
    tool: s.tool,
    args: Object.fromEntries(
      Object.entries(s.args ?? {}).map(([k, v]) => [k, typeof v === 'string' ? substitute(v, params) : v]),
    ),
    summary: String(substitute(s.summary, params)),
  }));
  return { ok: true, plan, params, executor: runbook.executor };
}

/** Structural checks for a plan submitted over the API (runbook plans pass them by construction). */
export function planShapeProblems(plan: Plan): string[] {
  const problems: string[] = [];
  if (plan.length === 0) problems.push('a plan needs at least one step');
  if (plan.length > MAX_PLAN_STEPS) problems.push(`a plan has at most ${MAX_PLAN_STEPS} steps`);
  const seen = new Set<string>();
  for (const [i, s] of plan.entries()) {
    if (!STEP_ID.test(s.id)) problems.push(`steps[${i}].id must match ${STEP_ID.source}`);
    if (seen.has(s.id)) problems.push(`steps[${i}].id "${s.id}" is used twice`);
    seen.add(s.id);
    if (!TOOL_NAME.test(s.tool)) problems.push(`steps[${i}].tool is not a valid tool name`);
    for (const [k, v] of Object.entries(s.args)) {
      if (typeof v === 'string' && UNSAFE_TEXT.test(v)) {
        problems.push(`steps[${i}].args.${k} contains control or invisible characters`);
      }
    }
  }
  return problems;
}

export type StepGate = { gate: 'auto' } | { gate: 'gated'; rule: ApprovalRule };

export interface ClassifiedStep extends PlanStep {
  classification: StepGate;
  /** The simulation step that must succeed before this step may be minted (simulate-first). */
  simulationStep: string | null;
}

export type Classification =
  | { ok: true; steps: ClassifiedStep[] }
  | { ok: false; denied: { step: string; tool: string; reason: string }[] };

/**
 * Classifies every step against the pinned policy: denied (the whole plan is refused),
 * auto-allowed, or gated with its effective approval rule. Simulate-first: a step whose tool
 * the policy lists under `required_before` needs an earlier step running the simulation
 * tool; a plan without one is refused.
 */
export function classifyPlan(policy: Wpc, plan: Plan): Classification {
  const denied: { step: string; tool: string; reason: string }[] = [];
  const steps: ClassifiedStep[] = [];
  const simulate = policy.execution.simulate_first;
  let lastSimulation: string | null = null;
  for (const step of plan) {
    if (matchesAny(policy.tools.deny, step.tool)) {
      denied.push({
        step: step.id,
        tool: step.tool,
        reason: `tool ${step.tool} is on the policy's deny list`,
      });
      continue;
    }
    if (!isToolAllowed(policy, step.tool)) {
      denied.push({
        step: step.id,
        tool: step.tool,
        reason: `tool ${step.tool} is not on the policy's allow list`,
      });
      continue;
    }
    let simulationStep: string | null = null;
    if (simulate && matchesAny(simulate.required_before, step.tool)) {
      if (lastSimulation === null) {
        denied.push({
          step: step.id,
          tool: step.tool,
          reason: `simulate-first: ${step.tool} needs an earlier ${simulate.simulation_tool} step`,
        });
        continue;
      }
      simulationStep = lastSimulation;
    }
    if (simulate && step.tool === simulate.simulation_tool) lastSimulation = step.id;
    const gated = matchesAny(policy.execution.require_human_approval_for, step.tool);
    steps.push({
      ...step,
      classification: gated ? { gate: 'gated', rule: approvalRuleFor(policy, step.tool) } : { gate: 'auto' },
      simulationStep,
    });
  }
  return denied.length > 0 ? { ok: false, denied } : { ok: true, steps };
}
