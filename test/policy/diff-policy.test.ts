import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  diffPolicies,
  diffVersions,
  formatChanges,
  type PolicyChange,
  versionOfFile,
  versionOfPayload,
} from '../../src/policy/diff-policy.js';
import type { Wpc } from '../../src/policy/types.js';
import { toWpcPayload } from '../../src/policy/wpc-payload.js';

const policiesDir = new URL('../../policies/', import.meta.url);
const basePolicy = JSON.parse(
  readFileSync(new URL('change-mgmt-prod-approval.json', policiesDir), 'utf8'),
) as Wpc;
const base = (): Wpc => structuredClone(basePolicy);

describe('diffPolicies', () => {
  it('returns [] for identical policies', () => {
    expect(diffPolicies(base(), base())).toEqual([]);
    expect(diffPolicies(basePolicy, basePolicy)).toEqual([]);
  });

  it('ignores key order', () => {
    const reordered = Object.fromEntries(Object.entries(base()).reverse());
    expect(diffPolicies(base(), reordered)).toEqual([]);
  });

  it('reports a changed scalar with its path and both values', () => {
    const after = base();
    after.execution.approval_rule.approval_ttl_seconds = 7200;
    expect(diffPolicies(base(), after)).toEqual([
      { kind: 'changed', path: '$.execution.approval_rule.approval_ttl_seconds', before: 3600, after: 7200 },
    ]);
  });

  it('reports added and removed properties with their values', () => {
    const after = base();
    delete after.models;
    after.data_boundaries = { pii: 'deny' };
    expect(diffPolicies(base(), after)).toEqual([
      { kind: 'added', path: '$.data_boundaries', after: { pii: 'deny' } },
      { kind: 'removed', path: '$.models', before: basePolicy.models },
    ]);
  });

  it('quotes keys that are not identifiers', () => {
    const after = base();
    after.execution.step_overrides!['ticket.close']!.approval_ttl_seconds = 600;
    after.runbooks!['prod-change']!.executor = 'agent:change-prod-2';
    expect(diffPolicies(base(), after).map((c) => c.path)).toEqual([
      '$.execution.step_overrides["ticket.close"].approval_ttl_seconds',
      '$.runbooks["prod-change"].executor',
    ]);
  });

  it('unescapes "/" and "~" in keys', () => {
    expect(diffPolicies({ o: { 'mcp:crm/x': 1, 'a~b': 1 } }, { o: { 'mcp:crm/x': 2, 'a~b': 2 } })).toEqual([
      { kind: 'changed', path: '$.o["a~b"]', before: 1, after: 2 },
      { kind: 'changed', path: '$.o["mcp:crm/x"]', before: 1, after: 2 },
    ]);
  });

  it('reports string arrays as set differences', () => {
    const after = base();
    after.tools.allow = after.tools.allow.filter((t) => t !== 'ticket.close');
    after.tools.allow.unshift('ticket.reopen');
    after.tools.deny.push('mcp:*/shell');
    expect(diffPolicies(base(), after)).toEqual([
      { kind: 'removed', path: '$.tools.allow[]', before: 'ticket.close' },
      { kind: 'added', path: '$.tools.allow[]', after: 'ticket.reopen' },
      { kind: 'added', path: '$.tools.deny[]', after: 'mcp:*/shell' },
    ]);
  });

  it('ignores reordering of string arrays', () => {
    const after = base();
    after.tools.allow.reverse();
    after.channel_context.requester_groups = [...after.channel_context.requester_groups];
    expect(diffPolicies(base(), after)).toEqual([]);
  });

  it('compares arrays of objects element by element', () => {
    const after = base();
    const steps = after.runbooks!['prod-change']!.steps;
    steps[1]!.summary = 'Approve the change';
    steps[2]!.args!.environment = 'staging';
    expect(diffPolicies(base(), after)).toEqual([
      {
        kind: 'changed',
        path: '$.runbooks["prod-change"].steps[1].summary',
        before: basePolicy.runbooks!['prod-change']!.steps[1]!.summary,
        after: 'Approve the change',
      },
      {
        kind: 'changed',
        path: '$.runbooks["prod-change"].steps[2].args.environment',
        before: 'prod',
        after: 'staging',
      },
    ]);
  });

  it('reports appended and dropped array elements by index', () => {
    const extra = { id: 'notify', tool: 'ticket.comment', summary: 'Notify' };
    const longer = base();
    longer.runbooks!['change-review']!.steps.push(extra);
    expect(diffPolicies(base(), longer)).toEqual([
      { kind: 'added', path: '$.runbooks["change-review"].steps[3]', after: extra },
    ]);
    const shorter = base();
    const dropped = shorter.runbooks!['change-review']!.steps.pop();
    expect(diffPolicies(base(), shorter)).toEqual([
      { kind: 'removed', path: '$.runbooks["change-review"].steps[2]', before: dropped },
    ]);
  });

  it('reports a change of type as one change', () => {
    expect(diffPolicies({ a: ['x'] }, { a: 'x' })).toEqual([
      { kind: 'changed', path: '$.a', before: ['x'], after: 'x' },
    ]);
    expect(diffPolicies({ a: { b: 1 } }, { a: null })).toEqual([
      { kind: 'changed', path: '$.a', before: { b: 1 }, after: null },
    ]);
    expect(diffPolicies({ a: 1 }, { a: '1' })).toEqual([
      { kind: 'changed', path: '$.a', before: 1, after: '1' },
    ]);
    expect(diffPolicies(true, false)).toEqual([{ kind: 'changed', path: '$', before: true, after: false }]);
  });

  it('lists changes in sorted key order', () => {
    const changes = diffPolicies({ b: 1, a: 1, c: 1 }, { c: 2, a: 2, b: 2 });
    expect(changes.map((c) => c.path)).toEqual(['$.a', '$.b', '$.c']);
  });
});

describe('formatChanges', () => {
  it('renders one line per change with +, - and ~', () => {
    const changes: PolicyChange[] = [
      { kind: 'added', path: '$.tools.allow[]', after: 'ticket.reopen' },
      { kind: 'removed', path: '$.models', before: { route_through: 'clawproxy' } },
      { kind: 'changed', path: '$.execution.approval_rule.required_approvals', before: 2, after: 3 },
    ];
    expect(formatChanges(changes).split('\n')).toEqual([
      '+ $.tools.allow[]: "ticket.reopen"',
      '- $.models: {"route_through":"clawproxy"}',
      '~ $.execution.approval_rule.required_approvals: 2 -> 3',
    ]);
  });

  it('renders nothing for no changes', () => {
    expect(formatChanges([])).toBe('');
  });

  it('formats a real diff', () => {
    const after = base();
    after.token_requirements.cst_ttl_seconds_max = 300;
    after.tools.deny.push('mcp:*/shell');
    expect(formatChanges(diffPolicies(base(), after))).toBe(
      ['~ $.token_requirements.cst_ttl_seconds_max: 600 -> 300', '+ $.tools.deny[]: "mcp:*/shell"'].join(
        '\n',
      ),
    );
  });
});

describe('diffVersions: registered payloads and files of either form', () => {
  it('compares approval policies, so a WPC v1 payload and its file show no difference', () => {
    expect(diffVersions(versionOfPayload(toWpcPayload(base())), versionOfFile(base()))).toEqual([]);
    expect(diffVersions(versionOfFile(toWpcPayload(base())), versionOfFile(base()))).toEqual([]);
  });

  it('names the change of payload form first when a legacy version is compared with a WPC v1 one', () => {
    const after = base();
    after.execution.approval_rule.approval_ttl_seconds = 900;
    const changes = diffVersions(versionOfPayload(base()), versionOfPayload(toWpcPayload(after)));
    expect(formatChanges(changes)).toBe(
      [
        '~ (payload form): "legacy approval policy (signed before WPC v1)" -> "Claw Bureau WPC v1"',
        '~ $.execution.approval_rule.approval_ttl_seconds: 3600 -> 900',
      ].join('\n'),
    );
  });

  it('shows a declared issuer as a change of the approval policy', () => {
    const after = base();
    after.issuer_did = 'did:web:acme.example';
    expect(diffVersions(versionOfFile(base()), versionOfFile(after))).toEqual([
      { kind: 'added', path: '$.issuer_did', after: 'did:web:acme.example' },
    ]);
  });

  it('refuses a registered payload whose gateway fields disagree with its approval policy', () => {
    const payload = { ...toWpcPayload(base()), allowed_models: ['*'] };
    expect(() => versionOfPayload(payload)).toThrow(expect.objectContaining({ code: 'ERR_POLICY_INVALID' }));
  });
});
