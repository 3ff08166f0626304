import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { GROUPS_SCHEMA_FILE, WPC_SCHEMA_FILE } from '../paths.js';
import { classifyPlan, hasUnsafeText, planShapeProblems } from '../jobs/plan.js';
import { approvalRuleFor, isToolAllowed } from './approval-rule.js';
import { matchesAny, matchesPattern } from './tool-pattern.js';
import * as precompiled from './policy-schema-validators.js';
import type { ApprovalRule, GroupsFile, Runbook, Wpc } from './types.js';

// Callers that know these by their old home keep working.
export { approvalRuleFor, isToolAllowed } from './approval-rule.js';

/** One reason a policy is refused: where (JSONPath), which rule, and in words. */
export interface PolicyProblem {
  path: string;
  rule: string;
  message: string;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; problems: PolicyProblem[] };

interface SchemaValidators {
  wpc: ValidateFunction;
  groups: ValidateFunction;
  /** Whether these are the build's compiled validators (the files are the ones they were compiled from). */
  precompiled: boolean;
}

let compiled: SchemaValidators | undefined;

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/**
 * Validators for the schema files: the compiled ones of policy-schema-validators.js when both
 * files hash to what they were compiled from (compiling them here costs 90 ms and more at
 * start), else compiled now from the files as they are.
 */
export function schemaValidators(
  files: { wpc: string; groups: string } = { wpc: WPC_SCHEMA_FILE, groups: GROUPS_SCHEMA_FILE },
): SchemaValidators {
  const wpcBytes = readFileSync(files.wpc);
  const groupsBytes = readFileSync(files.groups);
  if (
    sha256(wpcBytes) === precompiled.SCHEMA_SHA256.wpc &&
    sha256(groupsBytes) === precompiled.SCHEMA_SHA256.groups
  )
    return { wpc: precompiled.wpc, groups: precompiled.groups, precompiled: true };
  const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
  return {
    wpc: ajv.compile(JSON.parse(wpcBytes.toString('utf8'))),
    groups: ajv.compile(JSON.parse(groupsBytes.toString('utf8'))),
    precompiled: false,
  };
}

function validators(): SchemaValidators {
  compiled ??= schemaValidators();
  return compiled;
}

/** `/a/0/b~1c` -> `$.a[0]['b/c']` */
export function pointerToPath(pointer: string, extra?: string): string {
  const segments =
    pointer === ''
      ? []
      : pointer
          .slice(1)
          .split('/')
          .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (extra !== undefined) segments.push(extra);
  return segments.reduce(
    (acc, seg) =>
      /^\d+$/.test(seg)
        ? `${acc}[${seg}]`
        : /^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)
          ? `${acc}.${seg}`
          : `${acc}[${JSON.stringify(seg)}]`,
    '$',
  );
}

function schemaProblems(errors: ErrorObject[] | null | undefined): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  for (const err of errors ?? []) {
    // oneOf/anyOf branches already produced their own, more precise errors.
    if (err.keyword === 'oneOf' && problems.some((p) => p.path.startsWith(pointerToPath(err.instancePath))))
      continue;
    const params = err.params as Record<string, unknown>;
    let path = pointerToPath(err.instancePath);
    let message = err.message ?? 'is invalid';
    if (err.keyword === 'required') {
      path = pointerToPath(err.instancePath, String(params.missingProperty));
      message = 'is required';
    } else if (err.keyword === 'additionalProperties') {
      path = pointerToPath(err.instancePath, String(params.additionalProperty));
      message = 'is not an allowed property';
    } else if (err.keyword === 'propertyNames' || err.propertyName !== undefined) {
      // Ajv reports a bad property name twice: the inner rule (with propertyName) and propertyNames.
      const name = err.propertyName ?? (params.propertyName as string | undefined);
      if (name !== undefined) path = pointerToPath(err.instancePath, name);
      message = err.keyword === 'propertyNames' ? 'is not an allowed name' : `name ${message}`;
    } else if (err.keyword === 'const') {
      message = `must be ${JSON.stringify(params.allowedValue)}`;
    } else if (err.keyword === 'enum') {
      message = `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    }
    const rule = `schema:${err.keyword}`;
    if (!problems.some((p) => p.path === path && p.rule === rule)) problems.push({ path, rule, message });
  }
  return problems;
}

const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;

function paramProblems(base: string, runbook: Runbook): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  for (const [name, param] of Object.entries(runbook.params ?? {})) {
    const at = `${base}.params.${name}`;
    let re: RegExp | undefined;
    if (param.pattern !== undefined) {
      if (param.type !== 'string') {
        problems.push({
          path: `${at}.pattern`,
          rule: 'lint:param-constraint-type',
          message: 'pattern applies only to string params',
        });
      }
      try {
        re = new RegExp(`^(?:${param.pattern})$`, 'u');
      } catch {
        problems.push({
          path: `${at}.pattern`,
          rule: 'lint:param-pattern-invalid',
          message: 'is not a valid regular expression',
        });
      }
    }
    if ((param.minimum !== undefined || param.maximum !== undefined) && param.type !== 'integer') {
      problems.push({
        path: at,
        rule: 'lint:param-constraint-type',
        message: 'minimum/maximum apply only to integer params',
      });
    }
    if (param.minimum !== undefined && param.maximum !== undefined && param.minimum > param.maximum) {
      problems.push({
        path: `${at}.minimum`,
        rule: 'lint:param-range-empty',
        message: 'is greater than maximum',
      });
    }
    for (const [i, v] of (param.enum ?? []).entries()) {
      if ((param.type === 'integer') !== (typeof v === 'number') || param.type === 'boolean') {
        problems.push({
          path: `${at}.enum[${i}]`,
          rule: 'lint:param-enum-type',
          message: `does not have type ${param.type}`,
        });
      }
    }
    if (param.default !== undefined) {
      const d = param.default;
      const typeOk =
        param.type === 'boolean'
          ? typeof d === 'boolean'
          : param.type === 'integer'
            ? Number.isInteger(d)
            : typeof d === 'string';
      const valueOk =
        typeOk &&
        (param.enum === undefined || param.enum.includes(d as string | number)) &&
        (re === undefined || re.test(String(d))) &&
        (param.minimum === undefined || (d as number) >= param.minimum) &&
        (param.maximum === undefined || (d as number) <= param.maximum) &&
        (param.max_length === undefined || String(d).length <= param.max_length) &&
        !(typeof d === 'string' && hasUnsafeText(d));
      if (!valueOk) {
        problems.push({
          path: `${at}.default`,
          rule: 'lint:param-default-invalid',
          message: 'does not satisfy the param’s own type and constraints',
        });
      }
    }
  }
  return problems;
}

/**
 * What the plan itself would say about this runbook's steps (placeholders left in place; the
 * params that fill them are checked when a job is requested). Run after the precise checks
 * above, so that lint can never pass a runbook that no request could ever plan.
 */
function unplannable(policy: Wpc, runbook: Runbook): string[] {
  const template = runbook.steps.map((s) => ({
    id: s.id,
    tool: s.tool,
    args: s.args ?? {},
    summary: s.summary,
  }));
  const shape = planShapeProblems(template);
  if (shape.length > 0) return shape;
  const classified = classifyPlan(policy, template);
  return classified.ok ? [] : classified.denied.map((d) => `step ${d.step}: ${d.reason}`);
}

/** Rules JSON Schema cannot express: cross-references, satisfiability, and unreachable runbooks. */
function semanticProblems(policy: Wpc, groups?: GroupsFile): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const push = (path: string, rule: string, message: string) => problems.push({ path, rule, message });

  for (const [i, pattern] of policy.tools.allow.entries()) {
    if (policy.tools.deny.includes(pattern))
      push(`$.tools.allow[${i}]`, 'lint:tool-allowed-and-denied', `"${pattern}" is also in tools.deny`);
  }

  const rules: [string, ApprovalRule][] = [['$.execution.approval_rule', policy.execution.approval_rule]];
  for (const key of Object.keys(policy.execution.step_overrides ?? {})) {
    rules.push([
      pointerToPath('/execution/step_overrides', key),
      { ...policy.execution.approval_rule, ...policy.execution.step_overrides?.[key] },
    ]);
  }
  for (const [path, rule] of rules) {
    if (rule.distinct_groups && rule.required_approvals > rule.allowed_approver_groups.length) {
      push(
        path,
        'lint:quorum-unsatisfiable',
        `needs ${rule.required_approvals} approvals from distinct groups but allows only ${rule.allowed_approver_groups.length} group(s)`,
      );
    }
  }

  if (groups) {
    const known = new Set(Object.keys(groups.groups));
    const refs: [string, string[]][] = [
      ['$.channel_context.requester_groups', policy.channel_context.requester_groups],
      [
        '$.execution.approval_rule.allowed_approver_groups',
        policy.execution.approval_rule.allowed_approver_groups,
      ],
      ...Object.entries(policy.execution.step_overrides ?? {}).map(
        ([k, o]) =>
          [
            `${pointerToPath('/execution/step_overrides', k)}.allowed_approver_groups`,
            o.allowed_approver_groups ?? [],
          ] as [string, string[]],
      ),
    ];
    for (const [path, names] of refs) {
      for (const [i, name] of names.entries()) {
        if (!known.has(name))
          push(`${path}[${i}]`, 'lint:unknown-group', `group "${name}" is not defined in groups.json`);
      }
    }
  }

  // The gateway sees OpenRouter calls as provider "openai": only the model ids tell them apart.
  const models = policy.models;
  if (
    models?.provider === 'openrouter-via-fal' &&
    !models.allowed_models?.every((m) => m.startsWith('openrouter/'))
  ) {
    push(
      models.allowed_models ? '$.models.allowed_models' : '$.models',
      'lint:provider-models-mismatch',
      'provider "openrouter-via-fal" reaches the gateway as "openai", so allowed_models must name only openrouter/ models',
    );
  }

  const sim = policy.execution.simulate_first;
  if (sim && !isToolAllowed(policy, sim.simulation_tool)) {
    push(
      '$.execution.simulate_first.simulation_tool',
      'lint:simulation-tool-not-allowed',
      `"${sim.simulation_tool}" is not an allowed tool`,
    );
  }

  for (const [name, runbook] of Object.entries(policy.runbooks ?? {})) {
    const base = pointerToPath('/runbooks', name);
    const before = problems.length;
    problems.push(...paramProblems(base, runbook));
    if (!matchesPattern(policy.token_requirements.subject, runbook.executor)) {
      push(
        `${base}.executor`,
        'lint:executor-not-permitted',
        `"${runbook.executor}" does not match token_requirements.subject`,
      );
    }
    const declared = new Set(Object.keys(runbook.params ?? {}));
    const seen = new Set<string>();
    let simulated = false;
    for (const [i, step] of runbook.steps.entries()) {
      const at = `${base}.steps[${i}]`;
      if (seen.has(step.id)) push(`${at}.id`, 'lint:duplicate-step-id', `step id "${step.id}" is used twice`);
      seen.add(step.id);
      const effective = approvalRuleFor(policy, step.tool);
      if (
        effective.distinct_groups &&
        effective.required_approvals > effective.allowed_approver_groups.length
      ) {
        push(
          `${at}.tool`,
          'lint:quorum-unsatisfiable',
          `"${step.tool}" needs ${effective.required_approvals} approvals from distinct groups but its effective rule allows only ${effective.allowed_approver_groups.length} group(s)`,
        );
      }
      if (!isToolAllowed(policy, step.tool)) {
        push(
          `${at}.tool`,
          'lint:runbook-tool-not-allowed',
          `"${step.tool}" is denied or not allowed, so this runbook could never run`,
        );
      }
      if (sim && matchesAny(sim.required_before, step.tool) && !simulated) {
        push(
          `${at}.tool`,
          'lint:simulation-missing',
          `"${step.tool}" needs an earlier "${sim.simulation_tool}" step`,
        );
      }
      if (sim && step.tool === sim.simulation_tool) simulated = true;
      const texts: [string, string][] = [[`${at}.summary`, step.summary]];
      for (const [k, v] of Object.entries(step.args ?? {}))
        if (typeof v === 'string') texts.push([pointerToPath('', k).replace('$', `${at}.args`), v]);
      for (const [path, text] of texts) {
        for (const m of text.matchAll(PLACEHOLDER)) {
          if (!declared.has(m[1] ?? ''))
            push(path, 'lint:unknown-param', `placeholder {{${m[1]}}} is not a declared param`);
        }
      }
    }
    if (problems.length === before) {
      for (const message of unplannable(policy, runbook))
        push(`${base}.steps`, 'lint:runbook-unplannable', message);
    }
  }
  return problems;
}

/** Validates a parsed policy against the schema, then against the semantic rules. */
export function validatePolicy(value: unknown, opts: { groups?: GroupsFile } = {}): Checked<Wpc> {
  const { wpc } = validators();
  if (!wpc(value)) return { ok: false, problems: schemaProblems(wpc.errors) };
  const policy = value as Wpc;
  const problems = semanticProblems(policy, opts.groups);
  return problems.length ? { ok: false, problems } : { ok: true, value: policy };
}

export function validateGroups(value: unknown): Checked<GroupsFile> {
  const { groups } = validators();
  if (!groups(value)) return { ok: false, problems: schemaProblems(groups.errors) };
  return { ok: true, value: value as GroupsFile };
}

export function formatProblems(problems: readonly PolicyProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.message} [${p.rule}]`).join('\n');
}
