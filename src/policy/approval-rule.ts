import { matchesAny, matchesPattern } from './tool-pattern.js';
import type { ApprovalOverride, ApprovalRule, Wpc } from './types.js';

/** Exact keys first, then the pattern with the most literal characters, then lexical order. */
function bySpecificity(a: string, b: string): number {
  const exact = Number(!b.includes('*')) - Number(!a.includes('*'));
  const literal = b.replace(/\*/g, '').length - a.replace(/\*/g, '').length;
  return exact || literal || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * The effective approval rule for a tool. When several step_overrides keys match, each field
 * takes the strictest value among them, so no broad pattern can weaken a narrower gate: the
 * most approvals, the shortest TTL, distinct groups if any asks for them, requester approval
 * only if every one allows it. Approver groups come from the most specific key that names
 * them (an exact tool name, else the pattern with the most literal characters).
 */
export function approvalRuleFor(policy: Wpc, tool: string): ApprovalRule {
  const overrides = policy.execution.step_overrides ?? {};
  const matching = Object.keys(overrides)
    .sort(bySpecificity)
    .filter((k) => matchesPattern(k, tool))
    .map((k) => overrides[k]!);
  if (matching.length === 0) return policy.execution.approval_rule;
  const set = <K extends keyof ApprovalOverride>(field: K) =>
    matching.map((o) => o[field]).filter((v): v is NonNullable<ApprovalOverride[K]> => v !== undefined);
  const base = policy.execution.approval_rule;
  const approvals = set('required_approvals');
  const ttls = set('approval_ttl_seconds');
  const distinct = set('distinct_groups');
  const requester = set('allow_requester_approval');
  return {
    ...base,
    allowed_approver_groups: set('allowed_approver_groups')[0] ?? base.allowed_approver_groups,
    required_approvals: approvals.length ? Math.max(...approvals) : base.required_approvals,
    approval_ttl_seconds: ttls.length ? Math.min(...ttls) : base.approval_ttl_seconds,
    distinct_groups: distinct.length ? distinct.some(Boolean) : base.distinct_groups,
    allow_requester_approval: requester.length ? requester.every(Boolean) : base.allow_requester_approval,
  };
}

export function isToolAllowed(policy: Wpc, tool: string): boolean {
  return matchesAny(policy.tools.allow, tool) && !matchesAny(policy.tools.deny, tool);
}
