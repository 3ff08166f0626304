import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { canonicalize as independentJcs } from 'json-canonicalize';
import { afterEach, describe, expect, it } from 'vitest';
import { createJob } from '../../src/jobs/create-job.js';
import {
  classifyPlan,
  expandRunbook,
  MAX_PLAN_STEPS,
  type Plan,
  type PlanStep,
  planHash,
  planShapeProblems,
  TOOL_NAME,
} from '../../src/jobs/plan.js';
import { STEP_ID } from '../../src/approvals/parse-command.js';
import type { Runbook, Wpc } from '../../src/policy/types.js';
import { validatePolicy } from '../../src/policy/validate-policy.js';
import { createTestEngine, OPS, registerAgent, U, type TestEngine } from '../helpers/engine.js';
import { REPO_POLICIES_DIR } from '../helpers/fs.js';

function shippedPolicy(name: string): Wpc {
  const checked = validatePolicy(
    JSON.parse(readFileSync(path.join(REPO_POLICIES_DIR, `${name}.json`), 'utf8')),
  );
  if (!checked.ok) throw new Error(`shipped policy ${name} does not validate`);
  return checked.value;
}

const ops = shippedPolicy('mattermost-agent-prod');
const change = shippedPolicy('change-mgmt-prod-approval');
const refunds = shippedPolicy('customer-support-refund-assistant');

/** The ops policy plus one runbook exercising the param types the shipped runbooks do not use. */
const flagsRunbook: Runbook = {
  description: 'Exercises boolean, integer and enum params with defaults.',
  params: {
    dry_run: { type: 'boolean', description: 'Only pretend', default: true },
    limit: { type: 'integer', description: 'How many', default: 10, minimum: 1, maximum: 100 },
    priority: { type: 'integer', description: 'Priority', enum: [1, 2, 3] },
    label: { type: 'string', description: 'A label', default: 'none', max_length: 8 },
  },
  executor: 'agent:ops-mattermost-1',
  steps: [
    {
      id: 'search',
      tool: 'search',
      args: { dry_run: '{{dry_run}}', limit: '{{limit}}', text: 'limit={{limit}} dry={{dry_run}}' },
      summary: 'Search {{limit}} results labelled {{label}}',
    },
  ],
};
const opsWithFlags: Wpc = (() => {
  const p = structuredClone(ops);
  p.runbooks = { ...p.runbooks, flags: flagsRunbook };
  const checked = validatePolicy(p);
  if (!checked.ok) throw new Error('test policy does not validate');
  return checked.value;
})();

const serviceParams = { service: 'payments-api', query: 'latency spikes', notify_channel: 'payments-oncall' };
const refundParams = { ticket_id: 'SUP-48213', amount_cents: '1500', reason: 'double charge' };

function expand(policy: Wpc, name: string, params: Record<string, unknown>) {
  const e = expandRunbook(policy, name, params);
  if (!e.ok) throw new Error(`expected ${name} to expand: ${e.problems.join('; ')}`);
  return e;
}

function problemsOf(policy: Wpc, name: string, params: Record<string, unknown>): string[] {
  const e = expandRunbook(policy, name, params);
  expect(e.ok).toBe(false);
  return e.ok ? [] : e.problems;
}

function step(id: string, tool: string, args: PlanStep['args'] = {}): PlanStep {
  return { id, tool, args, summary: `run ${tool}` };
}

describe('expandRunbook: params', () => {
  it('names every missing required param', () => {
    expect(problemsOf(ops, 'service-context', {})).toEqual([
      'missing required parameter service',
      'missing required parameter query',
      'missing required parameter notify_channel',
    ]);
  });

  it('refuses an unknown param instead of ignoring it', () => {
    expect(problemsOf(ops, 'service-context', { ...serviceParams, servcie: 'x' })).toEqual([
      'unknown parameter "servcie"',
    ]);
  });

  it('refuses an unknown runbook and lists the ones the channel offers', () => {
    expect(problemsOf(change, 'prod-chnage', {})).toEqual([
      'unknown runbook "prod-chnage"; this channel offers: change-review, prod-change',
    ]);
  });

  it('does not resolve runbook names through the prototype chain', () => {
    expect(problemsOf(ops, 'constructor', {})).toHaveLength(1);
    expect(problemsOf(ops, '__proto__', {})).toHaveLength(1);
  });

  it('checks patterns against the whole value', () => {
    expect(problemsOf(ops, 'service-context', { ...serviceParams, service: 'Payments_API' })).toEqual([
      'service does not match ^[a-z0-9][a-z0-9-]{0,62}$',
    ]);
    expect(
      problemsOf(ops, 'service-context', { ...serviceParams, service: 'payments-api; rm -rf /' }),
    ).toEqual(['service does not match ^[a-z0-9][a-z0-9-]{0,62}$']);
    expect(problemsOf(change, 'change-review', { change_id: 'xCHG0031337' })).toEqual([
      'change_id does not match ^CHG[0-9]{7}$',
    ]);
  });

  it('enforces max_length, accepting exactly the limit', () => {
    expect(expandRunbook(ops, 'service-context', { ...serviceParams, query: 'q'.repeat(200) }).ok).toBe(true);
    expect(problemsOf(ops, 'service-context', { ...serviceParams, query: 'q'.repeat(201) })).toEqual([
      'query is longer than 200 characters',
    ]);
  });

  it.each([
    ['a NUL', 'a\u0000b'],
    ['a newline', 'line one\nline two'],
    ['a bell', 'ding\u0007'],
    ['DEL', 'x\u007f'],
    ['a C1 control', 'x\u0085'],
    ['right-to-left override', 'spike\u202egnp.exe'],
    ['a bidi isolate', 'x\u2066y\u2069'],
    ['a zero-width space', 'pay\u200bments'],
    ['a byte order mark', '\ufeffquery'],
  ])('refuses %s in a string param', (_, query) => {
    expect(problemsOf(ops, 'service-context', { ...serviceParams, query })).toEqual([
      'query contains control or invisible characters',
    ]);
  });

  it('refuses any string holding a control or invisible character (property)', () => {
    const unsafe = fc.constantFrom(
      ...'\u0000\u0001\u0009\u000a\u000d\u001b\u001f\u007f\u0080\u009f\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff',
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), unsafe, fc.string({ maxLength: 40 }), (a, bad, b) => {
        const e = expandRunbook(ops, 'service-context', { ...serviceParams, query: `${a}${bad}${b}` });
        return !e.ok && e.problems.includes('query contains control or invisible characters');
      }),
    );
  });

  it('accepts ordinary printable text and places it verbatim (property)', () => {
    const printable = fc
      // Whole characters (`[...text]`): half an emoji is not printable text, and is refused.
      .string({ unit: fc.constantFrom(...[...'abcXYZ 019-_.:/?!éü漢😀{}$']), maxLength: 200 })
      .filter((s) => s.length <= 200);
    fc.assert(
      fc.property(printable, (query) => {
        const e = expand(ops, 'service-context', { ...serviceParams, query });
        return e.plan[0]!.args.query === `${query} service:payments-api` && e.params.query === query;
      }),
    );
  });

  it('refuses a non-string value for a string param', () => {
    expect(problemsOf(ops, 'service-context', { ...serviceParams, query: 42 })).toEqual([
      'query must be a string',
    ]);
  });

  it('coerces integers from decimal text and keeps their type in whole-placeholder args', () => {
    const e = expand(refunds, 'refund-request', refundParams);
    expect(e.params.amount_cents).toBe(1500);
    expect(e.plan.find((s) => s.id === 'request-refund')!.args.amount_cents).toBe(1500);
    expect(
      expand(refunds, 'refund-request', { ...refundParams, amount_cents: 1500 }).params.amount_cents,
    ).toBe(1500);
  });

  it.each([
    ['0', 'amount_cents must be ≥ 1'],
    ['-5', 'amount_cents must be ≥ 1'],
    ['50001', 'amount_cents must be ≤ 50000'],
    ['12.5', 'amount_cents must be an integer'],
    ['01', 'amount_cents must be an integer'],
    ['1e3', 'amount_cents must be an integer'],
    [' 15', 'amount_cents must be an integer'],
    ['0x10', 'amount_cents must be an integer'],
    ['99999999999999999', 'amount_cents must be an integer'],
    ['', 'amount_cents must be an integer'],
    [1.5, 'amount_cents must be an integer'],
    [Number.MAX_SAFE_INTEGER + 1, 'amount_cents must be an integer'],
    [true, 'amount_cents must be an integer'],
  ])('refuses amount_cents %j', (amount, problem) => {
    expect(problemsOf(refunds, 'refund-request', { ...refundParams, amount_cents: amount })).toEqual([
      problem,
    ]);
  });

  it('accepts both ends of an integer range', () => {
    expect(
      expand(refunds, 'refund-request', { ...refundParams, amount_cents: '1' }).params.amount_cents,
    ).toBe(1);
    expect(
      expand(refunds, 'refund-request', { ...refundParams, amount_cents: '50000' }).params.amount_cents,
    ).toBe(50000);
  });

  it('accepts any integer inside the range and refuses any outside it (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1_000_000, max: 1_000_000 }), (n) => {
        const e = expandRunbook(refunds, 'refund-request', { ...refundParams, amount_cents: String(n) });
        return e.ok === (n >= 1 && n <= 50000) && (!e.ok || e.params.amount_cents === n);
      }),
    );
  });

  it('applies defaults, and checks enums for strings and integers', () => {
    expect(expand(refunds, 'refund-request', refundParams).params.currency).toBe('USD');
    expect(expand(refunds, 'refund-request', { ...refundParams, currency: 'EUR' }).params.currency).toBe(
      'EUR',
    );
    expect(problemsOf(refunds, 'refund-request', { ...refundParams, currency: 'JPY' })).toEqual([
      'currency must be one of USD, EUR, GBP',
    ]);
    expect(problemsOf(refunds, 'refund-request', { ...refundParams, currency: 'usd' })).toEqual([
      'currency must be one of USD, EUR, GBP',
    ]);
    expect(expand(opsWithFlags, 'flags', { priority: '2' }).params.priority).toBe(2);
    expect(problemsOf(opsWithFlags, 'flags', { priority: '4' })).toEqual(['priority must be one of 1, 2, 3']);
  });

  it('takes booleans as true/false only', () => {
    expect(expand(opsWithFlags, 'flags', {}).params).toEqual({ dry_run: true, limit: 10, label: 'none' });
    expect(expand(opsWithFlags, 'flags', { dry_run: 'false' }).params.dry_run).toBe(false);
    expect(expand(opsWithFlags, 'flags', { dry_run: 'true' }).params.dry_run).toBe(true);
    expect(expand(opsWithFlags, 'flags', { dry_run: false }).params.dry_run).toBe(false);
    for (const bad of ['yes', '1', 'TRUE', 'False', '', 0]) {
      expect(problemsOf(opsWithFlags, 'flags', { dry_run: bad })).toEqual(['dry_run must be true or false']);
    }
  });

  it('collects every problem at once', () => {
    expect(
      problemsOf(opsWithFlags, 'flags', { dry_run: 'maybe', limit: '0', label: 'too long label', x: 1 }),
    ).toEqual([
      'unknown parameter "x"',
      'dry_run must be true or false',
      'limit must be ≥ 1',
      'label is longer than 8 characters',
    ]);
  });
});

describe('expandRunbook: placeholders', () => {
  it('expands service-context into the exact plan', () => {
    const e = expand(ops, 'service-context', serviceParams);
    expect(e.executor).toBe('agent:ops-mattermost-1');
    expect(e.params).toEqual(serviceParams);
    expect(e.plan).toEqual([
      {
        id: 'search-kb',
        tool: 'search',
        args: { query: 'latency spikes service:payments-api', index: 'ops-kb', limit: 20 },
        summary: 'Search the ops knowledge base for the question, scoped to the service',
      },
      {
        id: 'read-runbook',
        tool: 'read',
        args: { path: 'runbooks/payments-api.md' },
        summary: "Read the service's runbook from the read-only workspace",
      },
      {
        id: 'fetch-status',
        tool: 'http_get',
        args: { url: 'https://status.internal.example.com/api/v1/services/payments-api' },
        summary: "GET the service's internal status page",
      },
      {
        id: 'post-summary',
        tool: 'send_message',
        args: { channel: 'payments-oncall', text: 'Context summary for payments-api: latency spikes' },
        summary: 'Post the gathered context to payments-oncall (two-person approval)',
      },
    ]);
  });

  it('keeps the type of a whole-placeholder arg and stringifies embedded ones', () => {
    const e = expand(opsWithFlags, 'flags', { dry_run: 'false', limit: '7' });
    expect(e.plan[0]!.args).toEqual({ dry_run: false, limit: 7, text: 'limit=7 dry=false' });
    expect(e.plan[0]!.summary).toBe('Search 7 results labelled none');
  });

  it('substitutes once: a value that looks like a placeholder stays literal', () => {
    const e = expand(ops, 'service-context', { ...serviceParams, query: '{{service}} {{notify_channel}}' });
    expect(e.plan[0]!.args.query).toBe('{{service}} {{notify_channel}} service:payments-api');
    expect(e.plan[3]!.args.text).toBe('Context summary for payments-api: {{service}} {{notify_channel}}');
  });

  it('leaves a placeholder that names no param as written', () => {
    const p = structuredClone(opsWithFlags);
    p.runbooks!.flags!.steps[0]!.summary = 'Search {{nothing}}';
    expect(expand(p, 'flags', {}).plan[0]!.summary).toBe('Search {{nothing}}');
  });
});

describe('planHash', () => {
  const independent = (plan: Plan) =>
    createHash('sha256').update(independentJcs(plan), 'utf8').digest('base64url');

  it('is base64url(SHA-256(JCS(plan))) as json-canonicalize computes it', () => {
    const plan = expand(ops, 'service-context', serviceParams).plan;
    expect(planHash(plan)).toBe(independent(plan));
    expect(planHash(plan)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  const argValue = fc.oneof(
    fc.string({ maxLength: 20 }),
    fc.integer(),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
  );
  const planArb = fc.array(
    fc.record({
      id: fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,10}$/),
      tool: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,10}$/),
      args: fc.dictionary(fc.string({ maxLength: 8 }), argValue, { maxKeys: 5 }),
      summary: fc.string({ maxLength: 40 }),
    }),
    { minLength: 1, maxLength: 6 },
  );

  it('agrees with the independent implementation on any plan (property)', () => {
    fc.assert(fc.property(planArb, (plan) => planHash(plan) === independent(plan)));
  });

  it('ignores key order and changes with any content (property)', () => {
    fc.assert(
      fc.property(planArb, fc.string({ minLength: 1, maxLength: 5 }), (plan, extra) => {
        const reordered = plan.map((s) => ({
          summary: s.summary,
          args: Object.fromEntries(Object.entries(s.args).reverse()),
          tool: s.tool,
          id: s.id,
        }));
        const changed = plan.map((s, i) => (i === 0 ? { ...s, summary: s.summary + extra } : s));
        return planHash(reordered) === planHash(plan) && planHash(changed) !== planHash(plan);
      }),
    );
  });

  it('depends on step order', () => {
    const plan = expand(ops, 'service-context', serviceParams).plan;
    expect(planHash([...plan].reverse())).not.toBe(planHash(plan));
  });
});

describe('classifyPlan', () => {
  it('refuses the whole plan for a denied tool and gives every reason', () => {
    const c = classifyPlan(ops, [
      step('look', 'read'),
      step('shell', 'exec'),
      step('save', 'write_file'),
      step('drop', 'delete_database'),
      step('click', 'browser_control'),
      step('tell', 'send_message'),
    ]);
    expect(c).toEqual({
      ok: false,
      denied: [
        { step: 'shell', tool: 'exec', reason: "tool exec is on the policy's deny list" },
        { step: 'save', tool: 'write_file', reason: "tool write_file is on the policy's deny list" },
        {
          step: 'drop',
          tool: 'delete_database',
          reason: "tool delete_database is not on the policy's allow list",
        },
        {
          step: 'click',
          tool: 'browser_control',
          reason: "tool browser_control is on the policy's deny list",
        },
      ],
    });
  });

  it('refuses a tool that is merely not on the allow list', () => {
    expect(classifyPlan(ops, [step('x', 'Read')])).toEqual({
      ok: false,
      denied: [{ step: 'x', tool: 'Read', reason: "tool Read is not on the policy's allow list" }],
    });
  });

  it('marks steps auto or gated, with the gated rule', () => {
    const plan = expand(ops, 'service-context', serviceParams).plan;
    const c = classifyPlan(ops, plan);
    if (!c.ok) throw new Error('service-context must classify');
    expect(c.steps.map((s) => [s.id, s.classification.gate, s.simulationStep])).toEqual([
      ['search-kb', 'auto', null],
      ['read-runbook', 'auto', null],
      ['fetch-status', 'auto', null],
      ['post-summary', 'gated', null],
    ]);
    expect(c.steps[3]!.classification).toEqual({ gate: 'gated', rule: ops.execution.approval_rule });
    expect(c.steps.map(({ id, tool, args, summary }) => ({ id, tool, args, summary }))).toEqual(plan);
  });

  it('applies step overrides to the effective rule and ties gated steps to their simulation (simulate-first)', () => {
    const plan = expand(change, 'prod-change', {
      change_id: 'CHG0031337',
      review_bundle_id: 'pb_AAAAAAAAAAAAAAAAAAAAAA',
    }).plan;
    const c = classifyPlan(change, plan);
    if (!c.ok) throw new Error('prod-change must classify');
    const base = change.execution.approval_rule;
    const overridden = { ...base, approval_ttl_seconds: 1800 };
    expect(c.steps.map((s) => [s.id, s.classification, s.simulationStep])).toEqual([
      ['simulate', { gate: 'auto' }, null],
      ['approve-change', { gate: 'gated', rule: overridden }, 'simulate'],
      ['execute', { gate: 'gated', rule: base }, 'simulate'],
      ['close-change', { gate: 'gated', rule: overridden }, 'simulate'],
    ]);
  });

  it('refuses a gated step that comes before any simulation', () => {
    expect(
      classifyPlan(change, [
        step('approve', 'ticket.approve'),
        step('simulate', 'change.simulate'),
        step('run', 'change.execute'),
      ]),
    ).toEqual({
      ok: false,
      denied: [
        {
          step: 'approve',
          tool: 'ticket.approve',
          reason: 'simulate-first: ticket.approve needs an earlier change.simulate step',
        },
      ],
    });
    expect(classifyPlan(change, [step('read', 'ticket.read'), step('run', 'change.execute')])).toMatchObject({
      ok: false,
      denied: [{ step: 'run', tool: 'change.execute' }],
    });
  });

  it('ties a gated step to the latest simulation before it', () => {
    const c = classifyPlan(change, [
      step('sim-1', 'change.simulate'),
      step('approve', 'ticket.approve'),
      step('sim-2', 'change.simulate'),
      step('run', 'change.execute'),
    ]);
    if (!c.ok) throw new Error('plan must classify');
    expect(c.steps.map((s) => s.simulationStep)).toEqual([null, 'sim-1', null, 'sim-2']);
  });

  it('does not ask for simulation under a policy without simulate_first', () => {
    const c = classifyPlan(ops, [step('tell', 'send_message')]);
    expect(c).toMatchObject({ ok: true, steps: [{ simulationStep: null }] });
  });
});

describe('planShapeProblems', () => {
  it('accepts a runbook plan and a plan of the maximum size', () => {
    expect(planShapeProblems(expand(ops, 'service-context', serviceParams).plan)).toEqual([]);
    const max = Array.from({ length: MAX_PLAN_STEPS }, (_, i) => step(`s${i}`, 'read'));
    expect(planShapeProblems(max)).toEqual([]);
  });

  it('refuses an empty plan and one with too many steps', () => {
    expect(planShapeProblems([])).toEqual(['a plan needs at least one step']);
    const tooMany = Array.from({ length: MAX_PLAN_STEPS + 1 }, (_, i) => step(`s${i}`, 'read'));
    expect(planShapeProblems(tooMany)).toEqual([`a plan has at most ${MAX_PLAN_STEPS} steps`]);
  });

  it('refuses duplicate step ids', () => {
    expect(planShapeProblems([step('a', 'read'), step('b', 'read'), step('a', 'search')])).toEqual([
      'steps[2].id "a" is used twice',
    ]);
  });

  it.each(['', 'Step1', '-lead', '.dot', 'has space', 'émoji', 'x'.repeat(65), 'a/b', 'a\nb'])(
    'refuses the step id %j',
    (id) => {
      expect(planShapeProblems([step(id, 'read')])).toEqual([
        'steps[0].id must match ^[a-z0-9][a-z0-9_.-]{0,63}$',
      ]);
    },
  );

  it('accepts step ids at the edges of the pattern', () => {
    expect(planShapeProblems([step('0', 'read'), step(`a${'_.-'.repeat(21)}`, 'read')])).toEqual([]);
  });

  it('refuses bad tool names and control characters in args', () => {
    expect(
      planShapeProblems([
        step('a', 'rm -rf'),
        step('b', ''),
        step('c', 'read', { path: 'x\u202eexe.txt', n: 3 }),
      ]),
    ).toEqual([
      'steps[0].tool is not a valid tool name',
      'steps[1].tool is not a valid tool name',
      'steps[2].args.path contains control or invisible characters',
    ]);
  });

  it.each([
    'mcp:crm-mcp/search_customer',
    'mcp/server/tool',
    'mcp__server__tool',
    '_internal',
    'ticket.read',
    `a${'b'.repeat(127)}`,
  ])('accepts the namespaced tool name %j (MCP and Claude Code spell tools this way)', (tool) => {
    expect(planShapeProblems([step('a', tool)])).toEqual([]);
  });

  it.each([
    'mcp/server tool',
    'mcp/server\ttool',
    'mcp/server\u0000tool',
    'mcp/server\u202etool',
    '/leading-slash',
    'mcp:*/shell',
    'tool\n',
    `a${'b'.repeat(128)}`,
  ])('refuses the tool name %j (spaces, control characters, wildcards, over 128 characters)', (tool) => {
    expect(planShapeProblems([step('a', tool)])).toEqual(['steps[0].tool is not a valid tool name']);
  });
});

describe('the plan and the policy schema agree', () => {
  const schema = JSON.parse(readFileSync(path.join(REPO_POLICIES_DIR, 'wpc.schema.json'), 'utf8')) as {
    $defs: {
      tool_name: { pattern: string };
      step: { properties: { id: { pattern: string } } };
      runbook: { properties: { steps: { maxItems: number } } };
    };
  };

  it('on what a tool name is, what a step id is, and how many steps a plan may have', () => {
    expect(TOOL_NAME.source).toBe(schema.$defs.tool_name.pattern);
    expect(STEP_ID.source).toBe(schema.$defs.step.properties.id.pattern);
    expect(MAX_PLAN_STEPS).toBe(schema.$defs.runbook.properties.steps.maxItems);
  });

  it('so every shipped runbook plans with its example params', () => {
    const mcp = shippedPolicy('mcp-enterprise-agent-minimal');
    const e = expand(mcp, 'customer-case-update', {
      customer_email: 'pat@example.com',
      case_id: 'CASE-88121',
      ticket_id: 'TCK-5521',
      comment: 'Refund processed',
    });
    expect(planShapeProblems(e.plan)).toEqual([]);
    const c = classifyPlan(mcp, e.plan);
    expect(c.ok && c.steps.map((s) => [s.id, s.classification.gate])).toEqual([
      ['search-customer', 'auto'],
      ['get-case', 'auto'],
      ['read-ticket', 'auto'],
      ['comment-ticket', 'gated'],
    ]);
  });
});

describe('createJob with an API plan', () => {
  let e: TestEngine | undefined;
  afterEach(async () => {
    await e?.close();
    e = undefined;
  });
  const origin = { kind: 'api' as const, agentId: OPS.executor, channelId: OPS.channel, teamId: OPS.team };

  it('refuses a plan with a denied tool, with every reason, and stores nothing', async () => {
    e = await createTestEngine();
    await expect(
      createJob(e.ctx, {
        origin,
        requesterId: U.grace,
        steps: [step('look', 'read'), step('shell', 'exec'), step('drop', 'delete_database')],
      }),
    ).rejects.toMatchObject({
      code: 'ERR_PLAN_DENIED',
      details: [
        { step: 'shell', tool: 'exec' },
        { step: 'drop', tool: 'delete_database' },
      ],
    });
    expect(await e.ctx.db.selectFrom('jobs').selectAll().execute()).toEqual([]);
  });

  it('refuses a malformed plan before classifying it', async () => {
    e = await createTestEngine();
    await expect(
      createJob(e.ctx, { origin, requesterId: U.grace, steps: [step('a', 'read'), step('a', 'read')] }),
    ).rejects.toMatchObject({ code: 'ERR_PLAN_INVALID', details: ['steps[1].id "a" is used twice'] });
    await expect(
      createJob(e.ctx, {
        origin: { kind: 'mattermost', teamId: OPS.team, channelId: OPS.channel, rootPostId: 'r'.repeat(26) },
        requesterId: U.grace,
        runbook: { name: 'service-context', params: { ...serviceParams, query: 'x\u0000' } },
      }),
    ).rejects.toMatchObject({ code: 'ERR_PLAN_INVALID' });
  });

  it('records the plan hash of the plan it stores', async () => {
    e = await createTestEngine();
    await registerAgent(e.ctx);
    const plan = [step('look', 'read', { path: 'a.md' }), step('tell', 'send_message', { channel: 'x' })];
    const job = await createJob(e.ctx, { origin, requesterId: U.grace, steps: plan });
    const row = await e.ctx.db
      .selectFrom('jobs')
      .selectAll()
      .where('id', '=', job.jobId)
      .executeTakeFirstOrThrow();
    expect(job.planHash).toBe(createHash('sha256').update(independentJcs(plan)).digest('base64url'));
    expect(row.plan_hash_b64u).toBe(job.planHash);
    expect(JSON.parse(row.plan)).toEqual(plan);
  });
});
