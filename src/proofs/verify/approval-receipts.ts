import { fail, type Passed, quote } from './check.js';
import type { Chain } from './event-chain.js';
import { checkChainBinding } from './receipt-binding.js';
import { type HumanApprovalReceipt, humanApprovalReceipt } from './schemas/human-approval-receipt.js';
import { validate } from './schemas/validate.js';

/**
 * Every human approval receipt of any bundle: names the bundle's agent, satisfies its own
 * schema (`human_approval_receipt.v1`, stricter than the bundle's item schema Claw Bureau
 * applies), has a receipt id of its own, and is bound to an event of this run's chain.
 */
export function checkApprovalReceipts(
  receipts: unknown[] | undefined,
  agentDid: string,
  chain: Chain,
): { value: HumanApprovalReceipt[] } & Passed {
  const list = receipts ?? [];
  const ids = new Set<string>();
  for (const [i, r] of list.entries()) {
    const where = `human_approval_receipts[${i}]`;
    if ((r as { agent_did?: unknown }).agent_did !== agentDid)
      fail(
        'APPROVAL_RECEIPT_INVALID',
        'PROOF_BUNDLE_AGENT_MISMATCH',
        `${where} names another agent than the bundle's`,
      );
    const shape = validate(humanApprovalReceipt, r, where);
    if (!shape.ok) fail('APPROVAL_RECEIPT_INVALID', null, `${shape.message} (human_approval_receipt.v1)`);
    const receipt = r as HumanApprovalReceipt;
    if (ids.has(receipt.receipt_id))
      fail('APPROVAL_RECEIPT_INVALID', null, `${where} repeats receipt_id ${quote(receipt.receipt_id)}`);
    ids.add(receipt.receipt_id);
    checkChainBinding(receipt.binding, chain, where, 'APPROVAL_RECEIPT_BINDING_MISMATCH', null);
  }
  return {
    value: list as HumanApprovalReceipt[],
    message:
      list.length === 0
        ? 'no human approval receipts'
        : `${list.length} human approval receipts of this agent match human_approval_receipt.v1, each bound to an event of this run`,
  };
}
