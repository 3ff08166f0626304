import { z } from 'zod';
import { b64u, text } from './formats.js';

const CAUSAL_PHASES = [
  'setup',
  'planning',
  'reasoning',
  'execution',
  'observation',
  'reflection',
  'teardown',
] as const;

/**
 * Claw Bureau's `receipt_binding.v1`: where a gateway receipt (and a v2 tool receipt) is bound,
 * run and event, plus the causal span fields, in snake and camel case. Nothing else.
 */
export const receiptBinding = z.strictObject({
  run_id: text({ min: 1 }).optional(),
  event_hash_b64u: b64u().optional(),
  nonce: text({ min: 1 }).optional(),
  policy_hash: text({ min: 1 }).optional(),
  token_scope_hash_b64u: b64u().optional(),
  span_id: text({ min: 1 }).optional(),
  spanId: text({ min: 1 }).optional(),
  parent_span_id: text({ min: 1 }).optional(),
  parentSpanId: text({ min: 1 }).optional(),
  tool_span_id: text({ min: 1 }).optional(),
  toolSpanId: text({ min: 1 }).optional(),
  phase: z.enum(CAUSAL_PHASES).optional(),
  attribution_confidence: z.number().optional(),
  attributionConfidence: z.number().optional(),
});

/**
 * The looser binding of the older receipt schemas (tool receipt v1, human approval receipt):
 * the named fields are strings, other keys are allowed.
 */
export const openBinding = z.looseObject({
  run_id: z.string().optional(),
  event_hash_b64u: z.string().optional(),
  nonce: z.string().optional(),
  policy_hash: z.string().optional(),
  token_scope_hash_b64u: z.string().optional(),
});
