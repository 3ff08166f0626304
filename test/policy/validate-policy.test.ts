import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { GroupsFile, Runbook, Wpc } from '../../src/policy/types.js';
import {
  approvalRuleFor,
  formatProblems,
  isToolAllowed,
  type PolicyProblem,
  pointerToPath,
  validateGroups,
  validatePolicy,
} from '../../src/policy/validate-policy.js';

const policiesDir = new URL('../../policies/', import.meta.url);
const readJson = (name: string): unknown => JSON.parse(readFileSync(new URL(name, policiesDir), 'utf8'));

const groupsJson = readJson('groups.json') as GroupsFile;
const basePolicy = readJson('change-mgmt-prod-approval.json') as Wpc;
const wpcSchema = readJson('wpc.schema.json');
const policyFiles = readdirSync(policiesDir)
  .filter((n) => n.endsWith('.json') && n !== 'groups.json' && !n.endsWith('.schema.json'))
  .sort();

const RB = '$.runbooks["change-review"]';
const PC = '$.runbooks["prod-change"]';

const base = (): Wpc => structuredClone(basePolicy);
const reviewRunbook = (p: Wpc): Runbook => p.runbooks!['change-review']!;
const prodRunbook = (p: Wpc): Runbook => p.runbooks!['prod-change']!;

type Key = string | number;
type Mutation = (p: Wpc) => void;

function parentOf(root: unknown, keys: readonly Key[]): Record<string, unknown> {
  let node = root;
  for (const k of keys.slice(0, -1)) node = (node as Record<string, unknown>)[String(k)];
  return node as Record<string, unknown>;
}
/** Sets a value at a key path, ignoring the policy's types (the point is to make it invalid). */
const set =
  (keys: readonly Key[], value: unknown): Mutation =>
  (p) => {
    parentOf(p, keys)[String(keys.at(-1))] = value;
  };
const del =
  (keys: readonly Key[]): Mutation =>
  (p) => {
    Reflect.deleteProperty(parentOf(p, keys), String(keys.at(-1)));
  };

function problemsOf(value: unknown, opts: { groups?: GroupsFile } = {}): PolicyProblem[] {
  const result = validatePolicy(value, opts);
  expect(result.ok).toBe(false);
  return result.ok ? [] : result.problems;
}

function mutated(mutation: Mutation): Wpc {
  const p = base();
  mutation(p);
  return p;
}

describe('shipped policies', () => {
  it('groups.json validates', () => {
    const result = validateGroups(groupsJson);
    expect(result).toEqual({ ok: true, value: groupsJson });
  });

  it('finds the shipped policies', () => {
    expect(policyFiles).toContain('change-mgmt-prod-approval.json');
    expect(policyFiles.length).toBeGreaterThanOrEqual(5);
  });

  it.each(policyFiles)('%s validates with the shipped groups.json', (file) => {
    const value = readJson(file);
    const result = validatePolicy(value, { groups: groupsJson });
    if (!result.ok) throw new Error(`${file}:\n${formatProblems(result.problems)}`);
    expect(result.value).toBe(value);
  });

  it('the base policy uses simulate_first and step_overrides', () => {
    expect(basePolicy.execution.simulate_first).toBeDefined();
    expect(Object.keys(basePolicy.execution.step_overrides ?? {}).length).toBeGreaterThan(0);
  });
});

interface SchemaCase {
  name: string;
  mutate: Mutation;
  path: string;
  rule: string;
}

const validOverride = { approval_ttl_seconds: 900 };

const schemaCases: SchemaCase[] = [
  // required
  {
    name: 'missing top-level attestation',
    mutate: del(['attestation']),
    path: '$.attestation',
    rule: 'schema:required',
  },
  {
    name: 'missing top-level policy_name',
    mutate: del(['policy_name']),
    path: '$.policy_name',
    rule: 'schema:required',
  },
  {
    name: 'missing nested requester_groups',
    mutate: del(['channel_context', 'requester_groups']),
    path: '$.channel_context.requester_groups',
    rule: 'schema:required',
  },
  {
    name: 'missing approval_rule.approval_phrase',
    mutate: del(['execution', 'approval_rule', 'approval_phrase']),
    path: '$.execution.approval_rule.approval_phrase',
    rule: 'schema:required',
  },
  {
    name: 'missing step summary',
    mutate: del(['runbooks', 'change-review', 'steps', 1, 'summary']),
    path: `${RB}.steps[1].summary`,
    rule: 'schema:required',
  },
  {
    name: 'missing param description',
    mutate: del(['runbooks', 'change-review', 'params', 'change_id', 'description']),
    path: `${RB}.params.change_id.description`,
    rule: 'schema:required',
  },
  // additionalProperties
  {
    name: 'unknown top-level property',
    mutate: set(['extra'], 1),
    path: '$.extra',
    rule: 'schema:additionalProperties',
  },
  {
    name: 'unknown property in a runbook step',
    mutate: set(['runbooks', 'change-review', 'steps', 0, 'timeout'], 5),
    path: `${RB}.steps[0].timeout`,
    rule: 'schema:additionalProperties',
  },
  {
    name: 'approval_phrase in a step override',
    mutate: set(
      ['execution', 'step_overrides', 'ticket.close', 'approval_phrase'],
      'APPROVE job:{job_id} step:{step}',
    ),
    path: '$.execution.step_overrides["ticket.close"].approval_phrase',
    rule: 'schema:additionalProperties',
  },
  // type
  {
    name: 'required_approvals as a string',
    mutate: set(['execution', 'approval_rule', 'required_approvals'], '2'),
    path: '$.execution.approval_rule.required_approvals',
    rule: 'schema:type',
  },
  {
    name: 'require_proof_bundle as a string',
    mutate: set(['attestation', 'require_proof_bundle'], 'yes'),
    path: '$.attestation.require_proof_bundle',
    rule: 'schema:type',
  },
  {
    name: 'non-integer cst_ttl_seconds_max',
    mutate: set(['token_requirements', 'cst_ttl_seconds_max'], 600.5),
    path: '$.token_requirements.cst_ttl_seconds_max',
    rule: 'schema:type',
  },
  { name: 'tools as an array', mutate: set(['tools'], []), path: '$.tools', rule: 'schema:type' },
  {
    name: 'object step arg',
    mutate: set(['runbooks', 'change-review', 'steps', 0, 'args', 'ticket_id'], { id: 1 }),
    path: `${RB}.steps[0].args.ticket_id`,
    rule: 'schema:type',
  },
  // const
  { name: 'wpc_version 2', mutate: set(['wpc_version'], '2'), path: '$.wpc_version', rule: 'schema:const' },
  {
    name: 'wpc_version as a number',
    mutate: set(['wpc_version'], 1),
    path: '$.wpc_version',
    rule: 'schema:const',
  },
  {
    name: 'other approval_phrase',
    mutate: set(['execution', 'approval_rule', 'approval_phrase'], 'APPROVE {job_id}'),
    path: '$.execution.approval_rule.approval_phrase',
    rule: 'schema:const',
  },
  {
    name: 'policy_hash_pinning optional',
    mutate: set(['token_requirements', 'policy_hash_pinning'], 'optional'),
    path: '$.token_requirements.policy_hash_pinning',
    rule: 'schema:const',
  },
  {
    name: 'job_scoped_binding false',
    mutate: set(['token_requirements', 'job_scoped_binding'], false),
    path: '$.token_requirements.job_scoped_binding',
    rule: 'schema:const',
  },
  {
    name: 'channel_context.system slack',
    mutate: set(['channel_context', 'system'], 'slack'),
    path: '$.channel_context.system',
    rule: 'schema:const',
  },
  // enum
  {
    name: 'tools.profile denylist',
    mutate: set(['tools', 'profile'], 'denylist'),
    path: '$.tools.profile',
    rule: 'schema:enum',
  },
  {
    name: 'models.route_through direct',
    mutate: set(['models', 'route_through'], 'direct'),
    path: '$.models.route_through',
    rule: 'schema:enum',
  },
  {
    name: 'param type number',
    mutate: set(['runbooks', 'change-review', 'params', 'change_id', 'type'], 'number'),
    path: `${RB}.params.change_id.type`,
    rule: 'schema:enum',
  },
  {
    name: 'data_boundaries.pii maybe',
    mutate: set(['data_boundaries'], { pii: 'maybe' }),
    path: '$.data_boundaries.pii',
    rule: 'schema:enum',
  },
  {
    name: 'a model provider the gateway cannot name',
    mutate: set(['models', 'provider'], 'mistral'),
    path: '$.models.provider',
    rule: 'schema:enum',
  },
  {
    name: 'redaction action the gateway does not know',
    mutate: set(['data_boundaries'], {
      redaction_rules: [{ path: '$.messages[*].content', action: 'blur' }],
    }),
    path: '$.data_boundaries.redaction_rules[0].action',
    rule: 'schema:enum',
  },
  // pattern
  {
    name: 'issuer_did that is not a DID',
    mutate: set(['issuer_did'], 'https://example.com'),
    path: '$.issuer_did',
    rule: 'schema:pattern',
  },
  {
    name: 'issuer_did without a method-specific id',
    mutate: set(['issuer_did'], 'did:web:'),
    path: '$.issuer_did',
    rule: 'schema:pattern',
  },
  {
    name: 'model pattern with a space (the gateway trims it)',
    mutate: set(['models', 'allowed_models'], ['openrouter/*', ' openrouter/x']),
    path: '$.models.allowed_models[1]',
    rule: 'schema:pattern',
  },
  {
    name: 'egress host with a path',
    mutate: set(['data_boundaries'], { egress_allowlist: ['api.example.com/v1'] }),
    path: '$.data_boundaries.egress_allowlist[0]',
    rule: 'schema:pattern',
  },
  {
    name: 'redaction path that is not JSONPath-like',
    mutate: set(['data_boundaries'], { redaction_rules: [{ path: 'messages', action: 'mask' }] }),
    path: '$.data_boundaries.redaction_rules[0].path',
    rule: 'schema:pattern',
  },
  {
    name: 'policy_name with spaces',
    mutate: set(['policy_name'], 'Change Mgmt'),
    path: '$.policy_name',
    rule: 'schema:pattern',
  },
  {
    name: 'upper-case step id',
    mutate: set(['runbooks', 'change-review', 'steps', 0, 'id'], 'Read'),
    path: `${RB}.steps[0].id`,
    rule: 'schema:pattern',
  },
  {
    name: 'step tool with a space',
    mutate: set(['runbooks', 'change-review', 'steps', 0, 'tool'], 'ticket read'),
    path: `${RB}.steps[0].tool`,
    rule: 'schema:pattern',
  },
  {
    name: 'allow pattern with a space',
    mutate: set(['tools', 'allow', 1], 'ticket comment'),
    path: '$.tools.allow[1]',
    rule: 'schema:pattern',
  },
  {
    name: 'simulation_tool with a glob',
    mutate: set(['execution', 'simulate_first', 'simulation_tool'], 'change.*'),
    path: '$.execution.simulate_first.simulation_tool',
    rule: 'schema:pattern',
  },
  {
    name: 'upper-case channel id',
    mutate: set(['channel_context', 'allowed_channel_ids', 0], 'Town-Square'),
    path: '$.channel_context.allowed_channel_ids[0]',
    rule: 'schema:pattern',
  },
  {
    name: 'audience with a space',
    mutate: set(['token_requirements', 'audience'], 'claw proxy'),
    path: '$.token_requirements.audience',
    rule: 'schema:pattern',
  },
  {
    name: 'extra_scopes item without a colon',
    mutate: set(['token_requirements', 'extra_scopes'], ['proxy:call', 'proxycall']),
    path: '$.token_requirements.extra_scopes[1]',
    rule: 'schema:pattern',
  },
  {
    name: 'executor with upper case',
    mutate: set(['runbooks', 'change-review', 'executor'], 'Agent:change-prod-1'),
    path: `${RB}.executor`,
    rule: 'schema:pattern',
  },
  // minimum / maximum
  {
    name: 'required_approvals 0',
    mutate: set(['execution', 'approval_rule', 'required_approvals'], 0),
    path: '$.execution.approval_rule.required_approvals',
    rule: 'schema:minimum',
  },
  {
    name: 'required_approvals 11',
    mutate: set(['execution', 'approval_rule', 'required_approvals'], 11),
    path: '$.execution.approval_rule.required_approvals',
    rule: 'schema:maximum',
  },
  {
    name: 'cst_ttl_seconds_max 29',
    mutate: set(['token_requirements', 'cst_ttl_seconds_max'], 29),
    path: '$.token_requirements.cst_ttl_seconds_max',
    rule: 'schema:minimum',
  },
  {
    name: 'cst_ttl_seconds_max 3601',
    mutate: set(['token_requirements', 'cst_ttl_seconds_max'], 3601),
    path: '$.token_requirements.cst_ttl_seconds_max',
    rule: 'schema:maximum',
  },
  {
    name: 'approval_ttl_seconds 59',
    mutate: set(['execution', 'approval_rule', 'approval_ttl_seconds'], 59),
    path: '$.execution.approval_rule.approval_ttl_seconds',
    rule: 'schema:minimum',
  },
  {
    name: 'approval_ttl_seconds 604801',
    mutate: set(['execution', 'approval_rule', 'approval_ttl_seconds'], 604801),
    path: '$.execution.approval_rule.approval_ttl_seconds',
    rule: 'schema:maximum',
  },
  {
    name: 'override approval_ttl_seconds 59',
    mutate: set(['execution', 'step_overrides', 'ticket.close', 'approval_ttl_seconds'], 59),
    path: '$.execution.step_overrides["ticket.close"].approval_ttl_seconds',
    rule: 'schema:minimum',
  },
  // minItems / maxItems
  {
    name: 'empty allowed_channel_ids',
    mutate: set(['channel_context', 'allowed_channel_ids'], []),
    path: '$.channel_context.allowed_channel_ids',
    rule: 'schema:minItems',
  },
  {
    name: 'runbook without steps',
    mutate: set(['runbooks', 'change-review', 'steps'], []),
    path: `${RB}.steps`,
    rule: 'schema:minItems',
  },
  {
    name: 'empty allowed_models (the gateway would read it as "any model")',
    mutate: set(['models', 'allowed_models'], []),
    path: '$.models.allowed_models',
    rule: 'schema:minItems',
  },
  {
    name: 'empty egress_allowlist (the gateway would read it as "anywhere")',
    mutate: set(['data_boundaries'], { egress_allowlist: [] }),
    path: '$.data_boundaries.egress_allowlist',
    rule: 'schema:minItems',
  },
  {
    name: 'empty simulate_first.required_before',
    mutate: set(['execution', 'simulate_first', 'required_before'], []),
    path: '$.execution.simulate_first.required_before',
    rule: 'schema:minItems',
  },
  {
    name: '257 allowed_channel_ids',
    mutate: set(
      ['channel_context', 'allowed_channel_ids'],
      Array.from({ length: 257 }, (_, i) => `channel${i}`),
    ),
    path: '$.channel_context.allowed_channel_ids',
    rule: 'schema:maxItems',
  },
  {
    name: '17 extra_scopes',
    mutate: set(
      ['token_requirements', 'extra_scopes'],
      Array.from({ length: 17 }, (_, i) => `proxy:call${i}`),
    ),
    path: '$.token_requirements.extra_scopes',
    rule: 'schema:maxItems',
  },
  // uniqueItems
  {
    name: 'duplicate allow pattern',
    mutate: set(['tools', 'allow'], ['ticket.read', 'ticket.read']),
    path: '$.tools.allow',
    rule: 'schema:uniqueItems',
  },
  {
    name: 'duplicate requester group',
    mutate: set(['channel_context', 'requester_groups'], ['change-requesters', 'change-requesters']),
    path: '$.channel_context.requester_groups',
    rule: 'schema:uniqueItems',
  },
  // minLength / maxLength
  {
    name: 'empty description',
    mutate: set(['description'], ''),
    path: '$.description',
    rule: 'schema:minLength',
  },
  {
    name: '501-char description',
    mutate: set(['description'], 'x'.repeat(501)),
    path: '$.description',
    rule: 'schema:maxLength',
  },
  {
    name: 'empty step summary',
    mutate: set(['runbooks', 'change-review', 'steps', 2, 'summary'], ''),
    path: `${RB}.steps[2].summary`,
    rule: 'schema:minLength',
  },
  {
    name: '1025-char step arg',
    mutate: set(['runbooks', 'change-review', 'steps', 2, 'args', 'body'], 'x'.repeat(1025)),
    path: `${RB}.steps[2].args.body`,
    rule: 'schema:maxLength',
  },
  // minProperties / maxProperties
  {
    name: 'empty step override',
    mutate: set(['execution', 'step_overrides', 'ticket.approve'], {}),
    path: '$.execution.step_overrides["ticket.approve"]',
    rule: 'schema:minProperties',
  },
  {
    name: 'empty data_boundaries',
    mutate: set(['data_boundaries'], {}),
    path: '$.data_boundaries',
    rule: 'schema:minProperties',
  },
  {
    name: '65 step overrides',
    mutate: set(
      ['execution', 'step_overrides'],
      Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`tool${i}`, validOverride])),
    ),
    path: '$.execution.step_overrides',
    rule: 'schema:maxProperties',
  },
  {
    name: '33 step args',
    mutate: set(
      ['runbooks', 'change-review', 'steps', 0, 'args'],
      Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`a${i}`, 'v'])),
    ),
    path: `${RB}.steps[0].args`,
    rule: 'schema:maxProperties',
  },
  // propertyNames
  {
    name: 'bad runbook name',
    mutate: (p) => {
      p.runbooks!['Bad Name'] = reviewRunbook(p);
    },
    path: '$.runbooks["Bad Name"]',
    rule: 'schema:propertyNames',
  },
  {
    name: 'bad step_overrides key',
    mutate: set(['execution', 'step_overrides', 'ticket approve'], validOverride),
    path: '$.execution.step_overrides["ticket approve"]',
    rule: 'schema:propertyNames',
  },
  {
    name: 'bad param name',
    mutate: set(['runbooks', 'change-review', 'params', 'ChangeId'], { type: 'string', description: 'x' }),
    path: `${RB}.params.ChangeId`,
    rule: 'schema:propertyNames',
  },
  {
    name: 'bad arg name',
    mutate: set(['runbooks', 'change-review', 'steps', 0, 'args', '9lives'], 'x'),
    path: `${RB}.steps[0].args["9lives"]`,
    rule: 'schema:propertyNames',
  },
];

describe('validatePolicy: schema rules', () => {
  it('the unmutated base policy is valid', () => {
    expect(validatePolicy(base(), { groups: groupsJson }).ok).toBe(true);
  });

  it.each(schemaCases)('$name -> $rule at $path', ({ mutate, path, rule }) => {
    const problems = problemsOf(mutated(mutate), { groups: groupsJson });
    expect(problems).toContainEqual(expect.objectContaining({ path, rule }));
    for (const p of problems) expect(p.rule).toMatch(/^schema:/);
  });

  it('covers every validation keyword used in wpc.schema.json', () => {
    const annotations = new Set([
      '$schema',
      '$id',
      'title',
      'description',
      '$defs',
      'properties',
      '$ref',
      'items',
    ]);
    const used = new Set<string>();
    const walk = (node: unknown): void => {
      if (typeof node !== 'object' || node === null || Array.isArray(node)) return;
      const schema = node as Record<string, unknown>;
      for (const k of Object.keys(schema)) if (!annotations.has(k)) used.add(k);
      for (const k of ['properties', '$defs'])
        for (const sub of Object.values((schema[k] ?? {}) as object)) walk(sub);
      for (const k of ['items', 'additionalProperties', 'propertyNames']) walk(schema[k]);
    };
    walk(wpcSchema);
    expect(used.size).toBeGreaterThanOrEqual(16);
    const covered = new Set(schemaCases.map((c) => c.rule));
    const missing = [...used].filter((k) => !covered.has(`schema:${k}`));
    expect(missing).toEqual([]);
  });

  it('reports every problem at once (allErrors)', () => {
    const problems = problemsOf(
      mutated((p) => {
        set(['wpc_version'], '2')(p);
        del(['channel_context', 'requester_groups'])(p);
        set(['execution', 'approval_rule', 'required_approvals'], 0)(p);
      }),
    );
    expect(problems).toContainEqual(expect.objectContaining({ path: '$.wpc_version', rule: 'schema:const' }));
    expect(problems).toContainEqual(
      expect.objectContaining({ path: '$.channel_context.requester_groups', rule: 'schema:required' }),
    );
    expect(problems).toContainEqual(
      expect.objectContaining({
        path: '$.execution.approval_rule.required_approvals',
        rule: 'schema:minimum',
      }),
    );
  });

  it('gives required and additionalProperties problems readable messages', () => {
    const problems = problemsOf(
      mutated((p) => {
        del(['attestation'])(p);
        set(['extra'], 1)(p);
      }),
    );
    expect(problems).toContainEqual({
      path: '$.attestation',
      rule: 'schema:required',
      message: 'is required',
    });
    expect(problems).toContainEqual({
      path: '$.extra',
      rule: 'schema:additionalProperties',
      message: 'is not an allowed property',
    });
  });

  it('names the allowed value in const and enum messages', () => {
    const constProblem = problemsOf(mutated(set(['wpc_version'], '2'))).find(
      (p) => p.rule === 'schema:const',
    );
    expect(constProblem?.message).toContain('"1"');
    const enumProblem = problemsOf(mutated(set(['tools', 'profile'], 'denylist'))).find(
      (p) => p.rule === 'schema:enum',
    );
    expect(enumProblem?.message).toContain('"allowlist"');
  });

  it.each([
    ['null', null],
    ['an array', []],
    ['a string', 'policy'],
    ['a number', 42],
  ])('rejects %s at $', (_label, value) => {
    const problems = problemsOf(value);
    expect(problems).toContainEqual(expect.objectContaining({ path: '$', rule: 'schema:type' }));
  });
});

interface LintCase {
  name: string;
  mutate: Mutation;
  path: string;
  rule: string;
}

const lintCases: LintCase[] = [
  {
    name: 'pattern both allowed and denied',
    mutate: (p) => {
      p.tools.allow.push('exec');
    },
    path: '$.tools.allow[6]',
    rule: 'lint:tool-allowed-and-denied',
  },
  {
    name: 'base rule needs more distinct groups than it allows',
    mutate: set(['execution', 'approval_rule', 'required_approvals'], 3),
    path: '$.execution.approval_rule',
    rule: 'lint:quorum-unsatisfiable',
  },
  {
    name: 'step override needs more distinct groups than it allows',
    mutate: set(['execution', 'step_overrides', 'ticket.close', 'required_approvals'], 3),
    path: '$.execution.step_overrides["ticket.close"]',
    rule: 'lint:quorum-unsatisfiable',
  },
  {
    name: 'step override inherits groups from the base rule',
    mutate: set(['execution', 'step_overrides', 'change.execute'], { required_approvals: 3 }),
    path: '$.execution.step_overrides["change.execute"]',
    rule: 'lint:quorum-unsatisfiable',
  },
  {
    name: 'unknown requester group',
    mutate: set(['channel_context', 'requester_groups'], ['change-requesters', 'nobody']),
    path: '$.channel_context.requester_groups[1]',
    rule: 'lint:unknown-group',
  },
  {
    name: 'unknown approver group',
    mutate: (p) => {
      p.execution.approval_rule.allowed_approver_groups.push('ghosts');
    },
    path: '$.execution.approval_rule.allowed_approver_groups[2]',
    rule: 'lint:unknown-group',
  },
  {
    name: 'unknown override approver group',
    mutate: set(
      ['execution', 'step_overrides', 'ticket.approve', 'allowed_approver_groups'],
      ['service_owner', 'ghosts'],
    ),
    path: '$.execution.step_overrides["ticket.approve"].allowed_approver_groups[1]',
    rule: 'lint:unknown-group',
  },
  {
    name: 'simulation tool not allowed',
    mutate: set(['execution', 'simulate_first', 'simulation_tool'], 'change.dryrun'),
    path: '$.execution.simulate_first.simulation_tool',
    rule: 'lint:simulation-tool-not-allowed',
  },
  {
    name: 'simulation tool denied',
    mutate: (p) => {
      p.tools.deny.push('change.sim*');
    },
    path: '$.execution.simulate_first.simulation_tool',
    rule: 'lint:simulation-tool-not-allowed',
  },
  {
    name: 'executor outside token subject',
    mutate: set(['runbooks', 'change-review', 'executor'], 'agent:billing-1'),
    path: `${RB}.executor`,
    rule: 'lint:executor-not-permitted',
  },
  {
    name: 'duplicate step id',
    mutate: set(['runbooks', 'change-review', 'steps', 2, 'id'], 'read-change'),
    path: `${RB}.steps[2].id`,
    rule: 'lint:duplicate-step-id',
  },
  {
    name: 'runbook step uses a denied tool',
    mutate: (p) => {
      p.tools.deny.push('ticket.comm*');
    },
    path: `${RB}.steps[2].tool`,
    rule: 'lint:runbook-tool-not-allowed',
  },
  {
    name: 'runbook step uses a tool outside the allowlist',
    mutate: set(['runbooks', 'change-review', 'steps', 0, 'tool'], 'ticket.delete'),
    path: `${RB}.steps[0].tool`,
    rule: 'lint:runbook-tool-not-allowed',
  },
  {
    name: 'gated step before the simulation',
    mutate: (p) => {
      const steps = prodRunbook(p).steps;
      [steps[0], steps[1]] = [steps[1]!, steps[0]!];
    },
    path: `${PC}.steps[0].tool`,
    rule: 'lint:simulation-missing',
  },
  {
    name: 'gated step without any simulation',
    mutate: (p) => {
      prodRunbook(p).steps.shift();
    },
    path: `${PC}.steps[2].tool`,
    rule: 'lint:simulation-missing',
  },
  {
    name: 'undeclared placeholder in args',
    mutate: set(['runbooks', 'change-review', 'steps', 0, 'args', 'ticket_id'], 'CHG-{{change}}'),
    path: `${RB}.steps[0].args.ticket_id`,
    rule: 'lint:unknown-param',
  },
  {
    name: 'undeclared placeholder in summary',
    mutate: set(['runbooks', 'change-review', 'steps', 1, 'summary'], 'Dry-run {{ ticket }}'),
    path: `${RB}.steps[1].summary`,
    rule: 'lint:unknown-param',
  },
  {
    name: 'invalid param pattern',
    mutate: set(['runbooks', 'change-review', 'params', 'change_id', 'pattern'], '(CHG'),
    path: `${RB}.params.change_id.pattern`,
    rule: 'lint:param-pattern-invalid',
  },
  {
    name: 'pattern on an integer param',
    mutate: set(['runbooks', 'change-review', 'params', 'count'], {
      type: 'integer',
      description: 'n',
      pattern: '[0-9]+',
    }),
    path: `${RB}.params.count.pattern`,
    rule: 'lint:param-constraint-type',
  },
  {
    name: 'minimum on a string param',
    mutate: set(['runbooks', 'change-review', 'params', 'change_id', 'minimum'], 1),
    path: `${RB}.params.change_id`,
    rule: 'lint:param-constraint-type',
  },
  {
    name: 'maximum on a boolean param',
    mutate: set(['runbooks', 'change-review', 'params', 'dry'], {
      type: 'boolean',
      description: 'd',
      maximum: 1,
    }),
    path: `${RB}.params.dry`,
    rule: 'lint:param-constraint-type',
  },
  {
    name: 'minimum above maximum',
    mutate: set(['runbooks', 'change-review', 'params', 'count'], {
      type: 'integer',
      description: 'n',
      minimum: 5,
      maximum: 1,
    }),
    path: `${RB}.params.count.minimum`,
    rule: 'lint:param-range-empty',
  },
  {
    name: 'integer in a string enum',
    mutate: set(['runbooks', 'change-review', 'params', 'change_id', 'enum'], ['CHG0000001', 7]),
    path: `${RB}.params.change_id.enum[1]`,
    rule: 'lint:param-enum-type',
  },
  {
    name: 'string in an integer enum',
    mutate: set(['runbooks', 'change-review', 'params', 'count'], {
      type: 'integer',
      description: 'n',
      enum: [1, '2'],
    }),
    path: `${RB}.params.count.enum[1]`,
    rule: 'lint:param-enum-type',
  },
  {
    name: 'enum on a boolean param',
    mutate: set(['runbooks', 'change-review', 'params', 'dry'], {
      type: 'boolean',
      description: 'd',
      enum: ['yes'],
    }),
    path: `${RB}.params.dry.enum[0]`,
    rule: 'lint:param-enum-type',
  },
  {
    name: 'default of the wrong type',
    mutate: set(['runbooks', 'change-review', 'params', 'change_id', 'default'], 5),
    path: `${RB}.params.change_id.default`,
    rule: 'lint:param-default-invalid',
  },
  {
    name: 'boolean param with a string default',
    mutate: set(['runbooks', 'change-review', 'params', 'dry'], {
      type: 'boolean',
      description: 'd',
      default: 'true',
    }),
    path: `${RB}.params.dry.default`,
    rule: 'lint:param-default-invalid',
  },
  {
    name: 'default not matching the pattern',
    mutate: set(['runbooks', 'change-review', 'params', 'change_id', 'default'], 'CHG1'),
    path: `${RB}.params.change_id.default`,
    rule: 'lint:param-default-invalid',
  },
  {
    name: 'default outside the enum',
    mutate: set(['runbooks', 'change-review', 'params', 'env'], {
      type: 'string',
      description: 'environment',
      enum: ['prod', 'staging'],
      default: 'dev',
    }),
    path: `${RB}.params.env.default`,
    rule: 'lint:param-default-invalid',
  },
  {
    name: 'default below minimum',
    mutate: set(['runbooks', 'change-review', 'params', 'count'], {
      type: 'integer',
      description: 'n',
      minimum: 1,
      maximum: 9,
      default: 0,
    }),
    path: `${RB}.params.count.default`,
    rule: 'lint:param-default-invalid',
  },
  {
    name: 'default longer than max_length',
    mutate: set(['runbooks', 'change-review', 'params', 'note'], {
      type: 'string',
      description: 'n',
      max_length: 3,
      default: 'abcd',
    }),
    path: `${RB}.params.note.default`,
    rule: 'lint:param-default-invalid',
  },
  {
    name: 'default carrying a bidirectional override',
    mutate: set(['runbooks', 'change-review', 'params', 'note'], {
      type: 'string',
      description: 'n',
      default: 'txt.\u202eexe',
    }),
    path: `${RB}.params.note.default`,
    rule: 'lint:param-default-invalid',
  },
  {
    name: 'openrouter-via-fal with a direct OpenAI model (the gateway would allow all of openai)',
    mutate: set(['models', 'allowed_models'], ['openrouter/*', 'gpt-4o']),
    path: '$.models.allowed_models',
    rule: 'lint:provider-models-mismatch',
  },
  {
    name: 'openrouter-via-fal without allowed_models',
    mutate: del(['models', 'allowed_models']),
    path: '$.models',
    rule: 'lint:provider-models-mismatch',
  },
  {
    name: 'runbook arg the plan would refuse (a control character)',
    mutate: set(['runbooks', 'change-review', 'steps', 1, 'args', 'environment'], 'prod\u0007'),
    path: `${RB}.steps`,
    rule: 'lint:runbook-unplannable',
  },
];

describe('validatePolicy: semantic lints', () => {
  it.each(lintCases)('$name -> $rule at $path', ({ mutate, path, rule }) => {
    const problems = problemsOf(mutated(mutate), { groups: groupsJson });
    expect(problems).toContainEqual(expect.objectContaining({ path, rule }));
    for (const p of problems) expect(p.rule).toMatch(/^lint:/);
  });

  it('covers every lint rule in validate-policy.ts', () => {
    const source = readFileSync(new URL('../../src/policy/validate-policy.ts', import.meta.url), 'utf8');
    const rules = new Set(source.match(/lint:[a-z-]+/g));
    expect(rules.size).toBeGreaterThanOrEqual(14);
    const covered = new Set(lintCases.map((c) => c.rule));
    expect([...rules].filter((r) => !covered.has(r))).toEqual([]);
  });

  it('checks groups only when groups are passed', () => {
    const p = mutated((q) => {
      q.channel_context.requester_groups = ['nobody'];
      q.execution.approval_rule.allowed_approver_groups = ['ghost-a', 'ghost-b'];
      q.execution.step_overrides!['ticket.approve']!.allowed_approver_groups = ['ghost-a', 'ghost-c'];
    });
    expect(validatePolicy(p).ok).toBe(true);
    const problems = problemsOf(p, { groups: groupsJson });
    expect(problems.map((x) => [x.path, x.rule])).toEqual([
      ['$.channel_context.requester_groups[0]', 'lint:unknown-group'],
      ['$.execution.approval_rule.allowed_approver_groups[0]', 'lint:unknown-group'],
      ['$.execution.approval_rule.allowed_approver_groups[1]', 'lint:unknown-group'],
      ['$.execution.step_overrides["ticket.approve"].allowed_approver_groups[0]', 'lint:unknown-group'],
      ['$.execution.step_overrides["ticket.approve"].allowed_approver_groups[1]', 'lint:unknown-group'],
    ]);
  });

  it('does not flag a quorum that does not need distinct groups', () => {
    const p = mutated((q) => {
      q.execution.approval_rule.required_approvals = 5;
      q.execution.approval_rule.distinct_groups = false;
    });
    expect(validatePolicy(p, { groups: groupsJson }).ok).toBe(true);
  });

  it('flags only the gated steps that come before the simulation', () => {
    const p = mutated((q) => {
      const steps = prodRunbook(q).steps;
      [steps[0], steps[1]] = [steps[1]!, steps[0]!];
    });
    const problems = problemsOf(p, { groups: groupsJson });
    expect(problems).toEqual([
      expect.objectContaining({ path: `${PC}.steps[0].tool`, rule: 'lint:simulation-missing' }),
    ]);
  });

  it('accepts placeholders with surrounding whitespace and valid defaults', () => {
    const p = mutated((q) => {
      const rb = reviewRunbook(q);
      rb.steps[0]!.summary = 'Read {{ change_id }} and {{env}} ({{count}})';
      rb.params!.env = { type: 'string', description: 'e', enum: ['prod', 'staging'], default: 'prod' };
      rb.params!.count = { type: 'integer', description: 'n', minimum: 1, maximum: 9, default: 9 };
      rb.params!.dry = { type: 'boolean', description: 'd', default: false };
      rb.params!.change_id!.default = 'CHG0000001';
    });
    const result = validatePolicy(p, { groups: groupsJson });
    if (!result.ok) throw new Error(formatProblems(result.problems));
    expect(result.ok).toBe(true);
  });

  it('refuses a runbook no request could ever plan, with the plan’s own reason', () => {
    const p = mutated(set(['runbooks', 'change-review', 'steps', 1, 'args', 'environment'], 'prod\u202e'));
    expect(problemsOf(p, { groups: groupsJson })).toEqual([
      {
        path: `${RB}.steps`,
        rule: 'lint:runbook-unplannable',
        message: 'steps[1].args.environment contains control or invisible characters',
      },
    ]);
  });

  it('does not run the lints when the schema fails', () => {
    const p = mutated((q) => {
      q.tools.allow.push('exec');
      set(['wpc_version'], '2')(q);
    });
    const problems = problemsOf(p, { groups: groupsJson });
    expect(problems.map((x) => x.rule)).toEqual(['schema:const']);
  });
});

describe('formatProblems', () => {
  it('puts path, message and rule on one line per problem', () => {
    const problems: PolicyProblem[] = [
      { path: '$.a', rule: 'schema:type', message: 'must be object' },
      { path: '$.b[0]', rule: 'lint:unknown-group', message: 'group "x" is not defined' },
    ];
    expect(formatProblems(problems)).toBe(
      '$.a: must be object [schema:type]\n$.b[0]: group "x" is not defined [lint:unknown-group]',
    );
    expect(formatProblems([])).toBe('');
  });

  it('formats real validation problems', () => {
    const problems = problemsOf(mutated(set(['wpc_version'], '2')));
    const text = formatProblems(problems);
    for (const p of problems) {
      expect(text).toContain(p.path);
      expect(text).toContain(p.message);
      expect(text).toContain(`[${p.rule}]`);
    }
  });
});

describe('pointerToPath', () => {
  it.each([
    ['', undefined, '$'],
    ['/a/0/b', undefined, '$.a[0].b'],
    ['/a/b~1c', undefined, '$.a["b/c"]'],
    ['/a/b~0c', undefined, '$.a["b~c"]'],
    ['/runbooks', 'prod-change', '$.runbooks["prod-change"]'],
    ['/x', 'snake_case', '$.x.snake_case'],
  ])('%j + %j -> %s', (pointer, extra, expected) => {
    expect(pointerToPath(pointer, extra)).toBe(expected);
  });
});

describe('approvalRuleFor', () => {
  it('falls back to the base rule when no override matches', () => {
    const p = base();
    expect(approvalRuleFor(p, 'change.execute')).toEqual(p.execution.approval_rule);
    expect(approvalRuleFor(p, 'ticket.approvex')).toEqual(p.execution.approval_rule);
  });

  it('merges the matching override over the base rule', () => {
    const p = base();
    p.execution.step_overrides = { 'ticket.close': { approval_ttl_seconds: 120, required_approvals: 1 } };
    expect(approvalRuleFor(p, 'ticket.close')).toEqual({
      ...p.execution.approval_rule,
      approval_ttl_seconds: 120,
      required_approvals: 1,
    });
  });

  it('combines every matching key strictly, so a broad pattern cannot weaken a narrower gate', () => {
    const p = base();
    p.execution.step_overrides = {
      'ticket.*': { required_approvals: 1 },
      'ticket.c*': { approval_ttl_seconds: 200 },
      'ticket.close': { required_approvals: 3, allowed_approver_groups: ['a', 'b', 'c'] },
      'change.*': { approval_ttl_seconds: 400 },
    };
    // A broad, weaker wildcard must never shadow the exact rule ('*' sorts before letters).
    expect(approvalRuleFor(p, 'ticket.close').required_approvals).toBe(3);
    expect(approvalRuleFor(p, 'ticket.comment').approval_ttl_seconds).toBe(200);
    expect(approvalRuleFor(p, 'ticket.read').required_approvals).toBe(1);
    expect(approvalRuleFor(p, 'change.execute').approval_ttl_seconds).toBe(400);
    expect(approvalRuleFor(p, 'exec').approval_ttl_seconds).toBe(
      p.execution.approval_rule.approval_ttl_seconds,
    );
    // The review's case: a looser broad key and a stricter narrower one both match.
    p.execution.step_overrides = {
      'ticket.*': { required_approvals: 1, allow_requester_approval: true, approval_ttl_seconds: 7200 },
      '*.close': { required_approvals: 2, allow_requester_approval: false, distinct_groups: true },
    };
    expect(approvalRuleFor(p, 'ticket.close')).toMatchObject({
      required_approvals: 2,
      allow_requester_approval: false,
      distinct_groups: true,
      approval_ttl_seconds: 7200,
    });
    // Approver groups come from the most specific key that names them, whatever the insertion order.
    p.execution.step_overrides = {
      'x*': { allowed_approver_groups: ['broad'] },
      'x*y': { allowed_approver_groups: ['narrow'] },
      xy: { approval_ttl_seconds: 60 },
    };
    expect(approvalRuleFor(p, 'xy').allowed_approver_groups).toEqual(['narrow']);
    expect(approvalRuleFor(p, 'xay').allowed_approver_groups).toEqual(['narrow']);
    expect(approvalRuleFor(p, 'xa').allowed_approver_groups).toEqual(['broad']);
  });

  it('uses the shipped overrides of the base policy', () => {
    const p = base();
    expect(approvalRuleFor(p, 'ticket.approve').approval_ttl_seconds).toBe(1800);
    expect(approvalRuleFor(p, 'change.execute').approval_ttl_seconds).toBe(3600);
  });
});

describe('isToolAllowed', () => {
  const withTools = (allow: string[], deny: string[]): Wpc => {
    const p = base();
    p.tools = { profile: 'allowlist', allow, deny };
    return p;
  };

  it('allows only what an allow pattern matches', () => {
    const p = base();
    expect(isToolAllowed(p, 'ticket.read')).toBe(true);
    expect(isToolAllowed(p, 'ticket.delete')).toBe(false);
    expect(isToolAllowed(p, 'shell.exec')).toBe(false);
  });

  it('lets deny win over allow', () => {
    const p = withTools(['*'], ['shell.*', 'secrets.export']);
    expect(isToolAllowed(p, 'ticket.read')).toBe(true);
    expect(isToolAllowed(p, 'shell.exec')).toBe(false);
    expect(isToolAllowed(p, 'secrets.export')).toBe(false);
    expect(isToolAllowed(withTools(['ticket.read'], ['ticket.read']), 'ticket.read')).toBe(false);
  });

  it('matches globs in allow and deny', () => {
    const p = withTools(['mcp:crm/*', 'ticket.*'], ['mcp:*/http_request']);
    expect(isToolAllowed(p, 'mcp:crm/search')).toBe(true);
    expect(isToolAllowed(p, 'mcp:crm/http_request')).toBe(false);
    expect(isToolAllowed(p, 'mcp:other/search')).toBe(false);
    expect(isToolAllowed(p, 'ticket.read')).toBe(true);
    expect(isToolAllowed(p, 'ticketXread')).toBe(false);
  });
});

describe('validateGroups', () => {
  const groupsWith = (member: unknown): unknown => {
    const g = structuredClone(groupsJson) as unknown as { groups: Record<string, { members: unknown[] }> };
    g.groups.security!.members[1] = member;
    return g;
  };
  const groupProblems = (value: unknown): PolicyProblem[] => {
    const result = validateGroups(value);
    expect(result.ok).toBe(false);
    return result.ok ? [] : result.problems;
  };
  const M = '$.groups.security.members[1]';

  it('accepts each member kind, by id or by name, with a note', () => {
    for (const member of [
      { user_id: 'fn5tnqd3rq1k6a6rjes4egzp8n' },
      { user_id: '@alice.nguyen' },
      { mattermost_group: 'uibxf4oba4dbo6fisi3knuwnjy', note: 'n' },
      { mattermost_group: '@ops-oncall', note: 'n' },
      { mattermost_channel: '5xcnr99t1annwkxri4w1b9a75b', note: 'n' },
      { mattermost_channel: 'ops/security-response', note: 'n' },
    ]) {
      expect(validateGroups(groupsWith(member)).ok).toBe(true);
    }
  });

  it('refuses what is neither an id nor a name: short ids, bare usernames, @ alone, controls, over-long names', () => {
    for (const member of [
      { user_id: 'abc123' },
      { user_id: 'alice' },
      { user_id: '@' },
      { user_id: '@Alice' },
      { user_id: '@1alice' },
      { user_id: '@alice\u0000' },
      { user_id: '@ali\nce' },
      { user_id: `@${'a'.repeat(65)}` },
      { user_id: '@alice/../../x' },
      { mattermost_group: 'ops-oncall' },
      { mattermost_group: '@' },
      { mattermost_channel: 'security-response' },
      { mattermost_channel: 'ops/' },
      { mattermost_channel: '/security' },
      { mattermost_channel: 'ops/sec/x' },
      { mattermost_channel: `ops/${'c'.repeat(65)}` },
      { mattermost_channel: 'ops/sec\u202e' },
    ]) {
      const field = Object.keys(member)[0]!;
      expect(groupProblems(groupsWith(member)), JSON.stringify(member)).toContainEqual(
        expect.objectContaining({ path: `${M}.${field}`, rule: 'schema:pattern' }),
      );
    }
  });

  it('rejects a member with an unknown key', () => {
    const problems = groupProblems(groupsWith({ user_id: 'fn5tnqd3rq1k6a6rjes4egzp8n', role: 'admin' }));
    expect(problems).toContainEqual(
      expect.objectContaining({ path: `${M}.role`, rule: 'schema:additionalProperties' }),
    );
  });

  it('rejects a member with two kinds at once', () => {
    const problems = groupProblems(groupsWith({ user_id: '@alice', mattermost_group: '@ops-oncall' }));
    expect(problems).toContainEqual(
      expect.objectContaining({ path: `${M}.mattermost_group`, rule: 'schema:additionalProperties' }),
    );
    expect(problems).toContainEqual(
      expect.objectContaining({ path: `${M}.user_id`, rule: 'schema:additionalProperties' }),
    );
  });

  it('rejects a member with a bad id', () => {
    const problems = groupProblems(groupsWith({ user_id: 'Not An Id' }));
    expect(problems).toContainEqual(
      expect.objectContaining({ path: `${M}.user_id`, rule: 'schema:pattern' }),
    );
  });

  it('rejects an empty member', () => {
    const problems = groupProblems(groupsWith({}));
    expect(problems).toContainEqual(
      expect.objectContaining({ path: `${M}.user_id`, rule: 'schema:required' }),
    );
  });

  it('rejects a bad version, a bad group name and a missing members list', () => {
    const g = structuredClone(groupsJson) as unknown as Record<string, unknown> & {
      groups: Record<string, unknown>;
    };
    g.groups_version = '2';
    g.groups['bad name'] = { members: [] };
    g.groups.empty = {};
    const problems = groupProblems(g);
    expect(problems).toContainEqual(
      expect.objectContaining({ path: '$.groups_version', rule: 'schema:const' }),
    );
    expect(problems).toContainEqual(
      expect.objectContaining({ path: '$.groups["bad name"]', rule: 'schema:propertyNames' }),
    );
    expect(problems).toContainEqual(
      expect.objectContaining({ path: '$.groups.empty.members', rule: 'schema:required' }),
    );
  });

  it('rejects non-objects at $', () => {
    for (const value of [null, [], 'groups']) {
      expect(groupProblems(value)).toContainEqual(
        expect.objectContaining({ path: '$', rule: 'schema:type' }),
      );
    }
  });
});
