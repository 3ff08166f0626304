import { fail, isRecord, type Passed } from './check.js';
import type { BundlePayload } from './bundle-schema.js';

/** Claw Bureau's bound on metadata (CVF-US-025); its bounds on counts are checked with the schema. */
const MAX_METADATA_BYTES = 16 * 1024;

const jsonBytes = (value: unknown): number => new TextEncoder().encode(JSON.stringify(value)).length;

/**
 * Event ids are unique, as Claw Bureau requires. Its 16 KB limit on `metadata` is reported,
 * not enforced: our metadata carries the payload of every chained event (what a reviewer
 * needs to recompute the chain's bindings), so a long job's bundle outgrows it while its
 * evidence stays whole.
 */
export function checkBundleLimits(p: BundlePayload): Passed {
  const events = p.event_chain ?? [];
  const receipts = p.receipts ?? [];
  const seen = new Set<string>();
  for (const [i, e] of events.entries()) {
    const id = (e as { event_id: string }).event_id;
    if (seen.has(id))
      fail('EVENT_CHAIN_INVALID', 'MALFORMED_ENVELOPE', `event_chain[${i}] repeats an earlier event_id`);
    seen.add(id);
  }
  const oversized: string[] = [];
  if (p.metadata !== undefined && jsonBytes(p.metadata) > MAX_METADATA_BYTES)
    oversized.push(`payload.metadata (${jsonBytes(p.metadata)} bytes)`);
  for (const [i, r] of receipts.entries()) {
    const md = isRecord(r) && isRecord(r.payload) ? r.payload.metadata : undefined;
    if (md !== undefined && jsonBytes(md) > MAX_METADATA_BYTES)
      oversized.push(`payload.receipts[${i}].payload.metadata (${jsonBytes(md)} bytes)`);
  }
  const counts = `${events.length} events, ${receipts.length} gateway receipts, event ids unique`;
  if (oversized.length === 0) return { message: `${counts}; metadata within 16 KB` };
  return {
    message:
      `${counts}; ${oversized.join(' and ')} over clawverify's 16 KB metadata limit: clawverify ` +
      'rejects the bundle for its size alone, the evidence is unaffected',
    cbReason: 'MALFORMED_ENVELOPE',
  };
}
