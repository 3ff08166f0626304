import { fail, isRecord, type Passed } from './check.js';
import type { BundlePayload } from './bundle-schema.js';
import { UNEVALUATED_COMPONENTS, UNEVALUATED_METADATA } from './unevaluated.js';

/** What of the bundle this verifier cannot evaluate, named; empty when it can evaluate all of it. */
function unevaluated(p: BundlePayload): string[] {
  const found: string[] = [];
  for (const [key, name] of Object.entries(UNEVALUATED_COMPONENTS))
    if (p[key] !== undefined) found.push(name);
  for (const [key, name] of Object.entries(UNEVALUATED_METADATA))
    if (p.metadata?.[key] !== undefined) found.push(name);
  for (const [i, r] of (p.receipts ?? []).entries())
    if (isRecord(r) && r.hash_algorithm === 'BLAKE3') found.push(`BLAKE3 hashes (receipts[${i}])`);
  for (const [i, r] of (p.tool_receipts ?? []).entries()) {
    if (!isRecord(r)) continue;
    if ('envelope_version' in r && r.hash_algorithm === 'BLAKE3')
      found.push(`BLAKE3 hashes (tool_receipts[${i}])`);
    const payload = isRecord(r.payload) ? r.payload : r;
    for (const key of ['args_disclosure', 'result_disclosure'])
      if (payload[key] !== undefined) found.push(`selective disclosure (tool_receipts[${i}].${key})`);
  }
  return found;
}

/**
 * A bundle claiming something this verifier does not check never passes: it fails as
 * UNSUPPORTED_FEATURE, naming the feature, where Claw Bureau's verifier would judge it.
 */
export function checkFeatures(p: BundlePayload): Passed {
  const found = unevaluated(p);
  if (found.length > 0)
    fail('UNSUPPORTED_FEATURE', null, `not supported by this verifier: ${found.join('; ')}`);
  return { message: 'every component of the bundle is one this verifier evaluates' };
}
