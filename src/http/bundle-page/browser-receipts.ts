/**
 * The receipts of any bundle in the page's verifier, as the server checks them
 * (src/proofs/verify/gateway-receipts.ts, approval-receipts.ts, receipt-binding.ts): gateway
 * receipts signed by an allowlisted gateway, human approval receipts of the bundle's agent that
 * satisfy `human_approval_receipt.v1`, and every one bound to an event of this run. Inlined into
 * the page (see page-script.ts): imports only the page's other inlined modules.
 */
import { type Chain, failWith, isDateTime, isObject, type Obj, quote, sha256B64u } from './browser-common.js';
import { checkEnvelopeFormat, checkEnvelopeSignature } from './browser-envelope.js';

/**
 * A receipt's binding names this bundle's run and an event of its chain, so that a receipt
 * signed for another run cannot be carried over (as the server's `checkChainBinding`).
 */
function checkChainBinding(binding: unknown, chain: Chain, where: string, reason: string): void {
  if (!isObject(binding)) failWith(reason, `${where} has no binding to this run's event chain`);
  const b = binding as Obj;
  if (b.run_id === undefined || b.event_hash_b64u === undefined)
    failWith(reason, `${where}.binding must name both run_id and event_hash_b64u`);
  if (b.run_id !== chain.runId)
    failWith(reason, `${where} is bound to run ${quote(b.run_id)}, not this bundle's ${quote(chain.runId)}`);
  if (typeof b.event_hash_b64u !== 'string' || !chain.byHash.has(b.event_hash_b64u))
    failWith(reason, `${where} is bound to an event that is not in the event chain`);
}

/** Every gateway receipt: its envelope, payload hash and signature by an allowlisted gateway, bound to this run. */
export async function checkGatewayReceipts(
  receipts: unknown,
  gatewaySigners: string[],
  chain: Chain,
): Promise<number> {
  if (receipts === undefined) return 0;
  if (!Array.isArray(receipts) || receipts.length === 0)
    failWith('BUNDLE_PAYLOAD_INVALID', 'receipts must be a non-empty array');
  for (const [i, r] of (receipts as unknown[]).entries()) {
    const rules = {
      type: 'gateway_receipt',
      prefix: 'RECEIPT',
      where: `receipts[${i}]: `,
      now: null,
    } as const;
    const e = checkEnvelopeFormat(r, rules);
    await checkEnvelopeSignature(e, rules, (payload) => sha256B64u(JSON.stringify(payload)), gatewaySigners);
    checkChainBinding((e.payload as Obj).binding, chain, `receipts[${i}]`, 'RECEIPT_BINDING_MISMATCH');
  }
  return (receipts as unknown[]).length;
}

const APPROVAL_TYPES = ['explicit_approve', 'explicit_deny', 'auto_approve', 'timeout_deny'];
const APPROVER_METHODS = ['ui_click', 'cli_confirm', 'api_call', 'policy_auto', 'timeout'];

const isText = (v: unknown, min = 0): boolean => typeof v === 'string' && [...v].length >= min;
const optional = (v: unknown, holds: (v: unknown) => boolean) => v === undefined || holds(v);

/** `human_approval_receipt.v1`, field by field: each field's type, and no field it does not name. */
const RECEIPT_FIELDS: Record<string, (v: unknown) => boolean> = {
  receipt_version: (v) => v === '1',
  receipt_id: (v) => isText(v, 1),
  approval_type: (v) => APPROVAL_TYPES.includes(v as string),
  approver_subject: (v) => isText(v, 1),
  approver_method: (v) => optional(v, (m) => APPROVER_METHODS.includes(m as string)),
  agent_did: (v) => isText(v, 1),
  scope_hash_b64u: (v) => isText(v, 1),
  scope_summary: (v) => optional(v, (t) => isText(t) && [...(t as string)].length <= 1024),
  policy_hash_b64u: (v) => optional(v, isText),
  minted_capability_id: (v) => optional(v, isText),
  minted_capability_ttl_seconds: (v) => optional(v, (n) => typeof n === 'number' && n >= 0),
  plan_hash_b64u: (v) => optional(v, isText),
  evidence_required: (v) => optional(v, (l) => Array.isArray(l) && l.every((x) => isText(x))),
  hash_algorithm: (v) => v === 'SHA-256',
  timestamp: isDateTime,
  binding: (v) =>
    optional(
      v,
      (b) =>
        isObject(b) &&
        ['run_id', 'event_hash_b64u', 'nonce', 'policy_hash', 'token_scope_hash_b64u'].every((k) =>
          optional(b[k], isText),
        ),
    ),
};

/** Which field of the receipt `human_approval_receipt.v1` refuses, or null. */
function receiptSchemaFault(r: Obj): string | null {
  const unknown = Object.keys(r).find((k) => !Object.hasOwn(RECEIPT_FIELDS, k));
  if (unknown !== undefined) return `has a field the schema does not allow: ${quote(unknown)}`;
  for (const [field, holds] of Object.entries(RECEIPT_FIELDS))
    if (!holds(r[field]))
      return `${field} is ${r[field] === undefined ? 'missing' : `not valid: ${quote(JSON.stringify(r[field]))}`}`;
  return null;
}

/**
 * Every human approval receipt of any bundle (as the server's `checkApprovalReceipts`): names
 * the bundle's agent, satisfies its own schema (an `approval_type` among the four it names,
 * among others), has a receipt id of its own, and is bound to an event of this run's chain.
 */
export function checkApprovalReceipts(receipts: unknown, agentDid: unknown, chain: Chain): Obj[] {
  if (receipts === undefined) return [];
  if (!Array.isArray(receipts) || receipts.length > 1000)
    failWith('BUNDLE_PAYLOAD_INVALID', 'human_approval_receipts must be an array of at most 1000');
  const ids = new Set<unknown>();
  for (const [i, r] of (receipts as unknown[]).entries()) {
    const where = `human_approval_receipts[${i}]`;
    if (!isObject(r)) failWith('APPROVAL_RECEIPT_INVALID', `${where} is not an object`);
    const receipt = r as Obj;
    if (receipt.agent_did !== agentDid)
      failWith('APPROVAL_RECEIPT_INVALID', `${where} names another agent than the bundle's`);
    const fault = receiptSchemaFault(receipt);
    if (fault !== null) failWith('APPROVAL_RECEIPT_INVALID', `${where} ${fault} (human_approval_receipt.v1)`);
    if (ids.has(receipt.receipt_id))
      failWith('APPROVAL_RECEIPT_INVALID', `${where} repeats receipt_id ${quote(receipt.receipt_id)}`);
    ids.add(receipt.receipt_id);
    checkChainBinding(receipt.binding, chain, where, 'APPROVAL_RECEIPT_BINDING_MISMATCH');
  }
  return receipts as Obj[];
}
