import type { z } from 'zod';
import { type BundleFailure, fail, type Passed } from './check.js';
import type { BundleEnvelope } from './envelope.js';
import { eventChainEntry } from './schemas/event-chain-entry.js';
import { bundledGatewayReceipt } from './schemas/gateway-receipt.js';
import { bundledApprovalReceipt } from './schemas/human-approval-receipt.js';
import { proofBundleEnvelope, proofBundlePayload } from './schemas/proof-bundle.js';
import { bundledSideEffectReceipt } from './schemas/side-effect-receipt.js';
import { toolReceiptEntry } from './schemas/tool-receipt.js';
import { validate } from './schemas/validate.js';

/** The payload once its schema holds. Receipt arrays are typed loosely: each module reads its own. */
export interface BundlePayload extends Record<string, unknown> {
  bundle_version: '1';
  bundle_id: string;
  agent_did: string;
  event_chain?: unknown[];
  receipts?: unknown[];
  tool_receipts?: unknown[];
  side_effect_receipts?: unknown[];
  human_approval_receipts?: unknown[];
  metadata?: Record<string, unknown>;
}

/**
 * Claw Bureau turns a schema violation in a causal binding field into a causal reason code;
 * every other violation is SCHEMA_VALIDATION_FAILED.
 */
function cbSchemaReason(path: string): string {
  if (/(^|\.)binding\.phase(\.|$|\[)/.test(path)) return 'CAUSAL_PHASE_INVALID';
  if (/(^|\.)binding\.(attribution_confidence|attributionConfidence)(\.|$|\[)/.test(path))
    return 'CAUSAL_CONFIDENCE_OUT_OF_RANGE';
  if (
    /(^|\.)binding\.(span_id|spanId|parent_span_id|parentSpanId|tool_span_id|toolSpanId)(\.|$|\[)/.test(path)
  )
    return 'CAUSAL_BINDING_NORMALIZATION_FAILED';
  return 'SCHEMA_VALIDATION_FAILED';
}

function holds(schema: z.ZodType, value: unknown, base: string, reason: BundleFailure): void {
  const result = validate(schema, value, base);
  if (!result.ok) fail(reason, cbSchemaReason(result.path), result.message);
}

/**
 * Claw Bureau's bounds on the arrays its schema leaves open (CVF-US-025), checked before any
 * entry is, so that the work of verifying stays bounded.
 */
const MAX_ENTRIES = { event_chain: 1000, receipts: 1000 } as const;

function checkCounts(p: BundlePayload): void {
  for (const [key, max] of Object.entries(MAX_ENTRIES)) {
    const n = (p[key] as unknown[] | undefined)?.length ?? 0;
    if (n > max)
      fail('BUNDLE_TOO_LARGE', 'MALFORMED_ENVELOPE', `payload.${key} has ${n} entries (at most ${max})`);
  }
}

const COMPONENTS = [
  ['event_chain', eventChainEntry, 'EVENT_CHAIN_INVALID'],
  ['receipts', bundledGatewayReceipt, 'RECEIPT_ENVELOPE_MALFORMED'],
  ['tool_receipts', toolReceiptEntry, 'TOOL_RECEIPT_INVALID'],
  ['side_effect_receipts', bundledSideEffectReceipt, 'SIDE_EFFECT_RECEIPT_INVALID'],
  ['human_approval_receipts', bundledApprovalReceipt, 'APPROVAL_RECEIPT_INVALID'],
] as const satisfies readonly (readonly [keyof BundlePayload, z.ZodType, BundleFailure])[];

/**
 * The envelope and payload against our validators of Claw Bureau's `proof_bundle_envelope.v1`
 * and `proof_bundle.v1` (each receipt array entry against its own schema), before any hash is
 * computed, as their verifier does.
 */
export function checkBundleSchema(env: BundleEnvelope): { value: BundlePayload } & Passed {
  holds(proofBundleEnvelope, env, 'envelope', 'BUNDLE_ENVELOPE_MALFORMED');
  holds(proofBundlePayload, env.payload, 'payload', 'BUNDLE_PAYLOAD_INVALID');
  const p = env.payload as BundlePayload;
  checkCounts(p);
  const counted: string[] = [];
  for (const [key, schema, reason] of COMPONENTS) {
    const entries = p[key] as unknown[] | undefined;
    if (entries === undefined) continue;
    entries.forEach((entry, i) => holds(schema, entry, `payload.${key}[${i}]`, reason));
    counted.push(`${entries.length} ${key}`);
  }
  return {
    value: p,
    message: `envelope and payload match proof_bundle_envelope.v1 / proof_bundle.v1${counted.length > 0 ? ` (${counted.join(', ')})` : ''}`,
  };
}
