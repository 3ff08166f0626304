import { type BundleFailure, fail, type Passed, quote } from './check.js';
import type { Chain } from './event-chain.js';
import type { EventBody, Mint, OurMetadata, Tokens } from './our-bindings.js';
import type { HumanApprovalReceipt } from './schemas/human-approval-receipt.js';

/** The event each kind of approval receipt records, in a claw-approvals chain. */
const EVENT_OF: Record<string, string> = {
  explicit_approve: 'approval_recorded',
  explicit_deny: 'step_denied',
  auto_approve: 'token_minted',
};

interface Context {
  ours: OurMetadata;
  chain: Chain;
  decoded: ReadonlyMap<string, EventBody>;
  tokens: Tokens;
}

interface Counted {
  user_id?: unknown;
  decision_id?: unknown;
}

const counts = (mint: Mint, userId: string, decisionId: unknown) =>
  Array.isArray(mint.body.counted) &&
  (mint.body.counted as Counted[]).some((c) => c.user_id === userId && c.decision_id === decisionId);

/** The token_scope_hash_b64u the plan gave each step at job_created. */
function plannedScopes(ctx: Context): Map<string, unknown> {
  const created = ctx.decoded.get(ctx.chain.list[0]!.event_hash_b64u)!;
  const steps = Array.isArray(created.steps)
    ? (created.steps as { id?: unknown; token_scope_hash_b64u?: unknown }[])
    : [];
  return new Map(steps.map((s) => [String(s.id), s.token_scope_hash_b64u]));
}

/** The mint that counted this approval: it names the CST the receipt says the approval minted. */
function checkMinted(r: HumanApprovalReceipt, mint: Mint | undefined, where: string): void {
  if (!mint)
    fail('APPROVAL_RECEIPT_BINDING_MISMATCH', null, `${where} was not counted toward its step's token`);
  if (r.minted_capability_id !== mint.body.jti)
    fail('TOKEN_BINDING_MISMATCH', null, `${where} does not name the CST its approval minted`);
  if (r.minted_capability_ttl_seconds !== Number(mint.body.exp) - Number(mint.body.iat))
    fail('TOKEN_BINDING_MISMATCH', null, `${where} names another lifetime than its CST's`);
}

/**
 * One receipt against the event it is bound to: the event records that kind of decision,
 * by that person (or, for an auto approval, the policy) at that time, in a step whose
 * policy, plan, scope and minted CST the receipt repeats.
 */
function checkOne(r: HumanApprovalReceipt, i: number, ctx: Context, planned: Map<string, unknown>): void {
  const where = `human_approval_receipts[${i}]`;
  const bad = (reason: BundleFailure, why: string) => fail(reason, null, `${where} ${why}`);
  const binding = r.binding as {
    event_hash_b64u: string;
    policy_hash?: string;
    token_scope_hash_b64u?: string;
  };
  const header = ctx.chain.byHash.get(binding.event_hash_b64u)!;
  const event = ctx.decoded.get(binding.event_hash_b64u)!;
  const expected = EVENT_OF[r.approval_type];
  if (expected === undefined)
    bad('APPROVAL_RECEIPT_BINDING_MISMATCH', `is a ${r.approval_type}, which this project never records`);
  if (header.event_type !== expected)
    bad(
      'APPROVAL_RECEIPT_BINDING_MISMATCH',
      `(${r.approval_type}) points at a ${quote(header.event_type)} event, not ${expected}`,
    );
  const { policy, plan_hash_b64u: planHash } = ctx.ours.claw_approvals;
  if (r.approval_type === 'auto_approve') {
    if (event.gate !== 'auto')
      bad('APPROVAL_RECEIPT_BINDING_MISMATCH', 'is an auto approval of a gated step');
    if (r.approver_subject !== `policy:${policy.name}` || r.approver_method !== 'policy_auto')
      bad(
        'APPROVAL_RECEIPT_BINDING_MISMATCH',
        `does not name the policy ${quote(policy.name)} as its approver`,
      );
  } else {
    if (event.user_id !== r.approver_subject)
      bad('APPROVAL_RECEIPT_BINDING_MISMATCH', 'names another approver than its event');
    if (r.approver_method === 'policy_auto' || r.approver_method === 'timeout')
      bad(
        'APPROVAL_RECEIPT_BINDING_MISMATCH',
        `claims approver_method ${r.approver_method} for a person's decision`,
      );
  }
  if (r.timestamp !== header.timestamp)
    bad('APPROVAL_RECEIPT_BINDING_MISMATCH', "is not dated at its event's time");
  if (r.policy_hash_b64u !== policy.policy_hash_b64u || binding.policy_hash !== policy.policy_hash_b64u)
    bad('POLICY_BINDING_MISMATCH', 'names another policy');
  if (r.plan_hash_b64u !== planHash) bad('PLAN_BINDING_MISMATCH', 'names another plan');
  const step = String(event.step);
  if (r.approval_type === 'explicit_deny') {
    const scope = planned.get(step);
    if (r.scope_hash_b64u !== scope || binding.token_scope_hash_b64u !== scope)
      bad('TOKEN_BINDING_MISMATCH', "names another scope than its step's planned one");
    if (r.minted_capability_id !== undefined || r.minted_capability_ttl_seconds !== undefined)
      bad('APPROVAL_RECEIPT_INVALID', 'is a deny that names a minted CST');
    return;
  }
  const scope = ctx.tokens.scopeOfStep.get(step);
  if (scope === undefined || r.scope_hash_b64u !== scope || binding.token_scope_hash_b64u !== scope)
    bad('TOKEN_BINDING_MISMATCH', "names another scope than its step's CST");
  const mints = ctx.tokens.mints.get(step) ?? [];
  const mint =
    r.approval_type === 'auto_approve'
      ? mints.find((m) => m.header === header)
      : mints.find(
          (m) =>
            ctx.chain.list.indexOf(m.header) > ctx.chain.list.indexOf(header) &&
            counts(m, r.approver_subject, event.decision_id),
        );
  checkMinted(r, mint, where);
}

/**
 * Every decision the chain records as counted, denied or auto-approved has its receipt, once:
 * a bundle cannot drop a counted approval nor show one twice.
 */
function checkComplete(approvals: HumanApprovalReceipt[], ctx: Context): void {
  const sealed = new Set<string>();
  for (const [i, r] of approvals.entries()) {
    const key = `${r.binding!.event_hash_b64u}|${r.approver_subject}`;
    if (sealed.has(key))
      fail(
        'APPROVAL_RECEIPT_BINDING_MISMATCH',
        null,
        `human_approval_receipts[${i}] repeats a decision already receipted`,
      );
    sealed.add(key);
  }
  const approvalEvent = new Map<unknown, string>();
  for (const h of ctx.chain.list)
    if (h.event_type === 'approval_recorded')
      approvalEvent.set(ctx.decoded.get(h.event_hash_b64u)!.decision_id, h.event_hash_b64u);
  const missing = (what: string) =>
    fail('APPROVAL_RECEIPT_BINDING_MISMATCH', null, `no human approval receipt records ${what}`);
  for (const h of ctx.chain.list) {
    const body = ctx.decoded.get(h.event_hash_b64u)!;
    if (h.event_type === 'step_denied' && !sealed.has(`${h.event_hash_b64u}|${String(body.user_id)}`))
      missing(`the denial of step ${quote(body.step)}`);
    if (h.event_type !== 'token_minted') continue;
    if (body.gate === 'auto') {
      if (!sealed.has(`${h.event_hash_b64u}|policy:${ctx.ours.claw_approvals.policy.name}`))
        missing(`the auto approval of step ${quote(body.step)}`);
      continue;
    }
    for (const c of Array.isArray(body.counted) ? (body.counted as Counted[]) : []) {
      const hash = approvalEvent.get(c.decision_id);
      if (hash !== undefined && !sealed.has(`${hash}|${String(c.user_id)}`))
        missing(`an approval counted toward step ${quote(body.step)}`);
    }
  }
}

/**
 * Beyond Claw Bureau, which never reads the chain's payloads: every approval receipt of a
 * claw-approvals bundle is checked against the event it is bound to, and against the
 * decisions the chain records.
 */
export function checkApprovalEvents(approvals: HumanApprovalReceipt[], ctx: Context): Passed {
  const planned = plannedScopes(ctx);
  approvals.forEach((r, i) => checkOne(r, i, ctx, planned));
  checkComplete(approvals, ctx);
  return {
    message:
      approvals.length === 0
        ? 'the chain records no decision that needs a receipt'
        : `${approvals.length} approval receipts match their events: kind, approver, time, policy, plan, scope and minted CST; every recorded decision has its receipt`,
  };
}
