import { z } from 'zod';
import { anyObject, dateTime, did, nonNegative, text } from './formats.js';
import { openBinding } from './receipt-binding.js';

export const APPROVAL_TYPES = ['explicit_approve', 'explicit_deny', 'auto_approve', 'timeout_deny'] as const;

/** A human approval receipt as a proof bundle's `human_approval_receipts[]` schema describes it. */
export const bundledApprovalReceipt = z.looseObject({
  receipt_version: z.literal('1'),
  receipt_id: text({ min: 1 }),
  approval_type: z.enum(APPROVAL_TYPES),
  scope_hash_b64u: z.string().optional(),
  plan_hash_b64u: z.string().optional(),
  approver_subject: z.string().optional(),
  capability_minted: z.boolean().optional(),
  policy_hash_b64u: z.string().optional(),
  agent_did: did(),
  timestamp: dateTime(),
  binding: anyObject().optional(),
});

/**
 * Claw Bureau `human_approval_receipt.v1`, the receipt's own schema: more required fields,
 * no others. Their bundle verifier applies only the bundle's looser form; we apply both.
 */
export const humanApprovalReceipt = z.strictObject({
  receipt_version: z.literal('1'),
  receipt_id: text({ min: 1 }),
  approval_type: z.enum(APPROVAL_TYPES),
  approver_subject: text({ min: 1 }),
  approver_method: z.enum(['ui_click', 'cli_confirm', 'api_call', 'policy_auto', 'timeout']).optional(),
  agent_did: text({ min: 1 }),
  scope_hash_b64u: text({ min: 1 }),
  scope_summary: text({ max: 1024 }).optional(),
  policy_hash_b64u: z.string().optional(),
  minted_capability_id: z.string().optional(),
  minted_capability_ttl_seconds: nonNegative().optional(),
  plan_hash_b64u: z.string().optional(),
  evidence_required: z.array(z.string()).optional(),
  hash_algorithm: z.literal('SHA-256'),
  timestamp: dateTime(),
  binding: openBinding.optional(),
});

export type HumanApprovalReceipt = z.infer<typeof humanApprovalReceipt>;
