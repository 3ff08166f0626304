import { fail, isRecord, type Passed, quote } from './check.js';
import { anchorOf, anchorSpan } from './causal.js';
import { payloadHash } from './envelope.js';
import type { Chain } from './event-chain.js';
import type { EventBody } from './our-bindings.js';
import type { HumanApprovalReceipt } from './schemas/human-approval-receipt.js';

/** A claw-approvals chain with its verified event payloads, from which each receipt's step is read. */
export interface StepIndex {
  chain: Chain;
  decoded: ReadonlyMap<string, EventBody>;
}

/**
 * The spans the gateway receipts of each step declare. A receipt belongs to the step whose
 * `step_result` event lists its envelope hash: the step that reported it, as the sealer reads it.
 */
function spansOfSteps(receipts: unknown[], index: StepIndex): Map<string, Set<string>> {
  const stepOfReceipt = new Map<string, string>();
  for (const h of index.chain.list) {
    if (h.event_type !== 'step_result') continue;
    const body = index.decoded.get(h.event_hash_b64u)!;
    for (const r of Array.isArray(body.receipts) ? (body.receipts as { envelope_hash_b64u?: unknown }[]) : [])
      if (typeof r.envelope_hash_b64u === 'string')
        stepOfReceipt.set(r.envelope_hash_b64u, String(body.step));
  }
  const spans = new Map<string, Set<string>>();
  for (const [i, r] of receipts.entries()) {
    const step = stepOfReceipt.get(payloadHash(r));
    const binding = (r as { payload: { binding?: unknown } }).payload.binding;
    const span =
      step !== undefined && isRecord(binding)
        ? anchorOf(binding, `receipts[${i}].payload.binding`).spanId
        : undefined;
    if (step === undefined || span === undefined) continue;
    spans.set(step, (spans.get(step) ?? new Set<string>()).add(span));
  }
  return spans;
}

/**
 * Claw Bureau's enforce mode fails a bundle whose approval receipt hangs from no span a
 * gateway receipt declares (CAUSAL_HUMAN_APPROVAL_ORPHANED). Our verdict fails only where
 * the evidence is inconsistent: an approval pointing at a span nobody declared (or, in a
 * claw-approvals bundle, at another step's span), or an approval left unanchored although its
 * step's receipts (any receipts, in a bundle of another harness) declare spans. An approval of a
 * step whose receipts declare none is bound to its event in the signed chain, which is what
 * we check; the check passes and names clawverify's code for it.
 */
export function checkApprovalAnchoring(
  approvals: HumanApprovalReceipt[],
  receipts: unknown[] | undefined,
  known: ReadonlySet<string>,
  index: StepIndex | null,
): Passed {
  const perStep = index ? spansOfSteps(receipts ?? [], index) : null;
  const orphans: number[] = [];
  for (const [i, r] of approvals.entries()) {
    const where = `human_approval_receipts[${i}]`;
    const anchor = isRecord(r.binding) ? anchorSpan(anchorOf(r.binding, `${where}.binding`)) : undefined;
    const cb = anchor === undefined || !known.has(anchor) ? 'CAUSAL_HUMAN_APPROVAL_ORPHANED' : null;
    const step = index ? String(index.decoded.get(r.binding!.event_hash_b64u!)?.step) : null;
    const spans = perStep ? (perStep.get(step!) ?? new Set<string>()) : known;
    const whose = perStep ? `step ${quote(step)}'s gateway receipts` : 'the gateway receipts';
    if (anchor !== undefined && !spans.has(anchor))
      fail(
        'APPROVAL_NOT_ANCHORED',
        cb,
        `${where} hangs from span ${quote(anchor)}, which ${whose} do not declare`,
      );
    if (anchor === undefined && spans.size > 0)
      fail('APPROVAL_NOT_ANCHORED', cb, `${where} hangs from none of the spans ${whose} declare`);
    if (anchor === undefined) orphans.push(i);
  }
  const anchored = approvals.length - orphans.length;
  if (orphans.length === 0)
    return {
      message:
        approvals.length === 0
          ? 'no approval receipts to anchor'
          : `${anchored} approval receipts hang from their steps' spans`,
    };
  return {
    message:
      `${orphans.length} approval receipts hang from no causal span because their steps' gateway receipts declare none ` +
      `(${anchored} anchored); each is bound to its event in the signed chain, which this verifier checks. ` +
      "clawverify's enforce mode fails such a bundle with CAUSAL_HUMAN_APPROVAL_ORPHANED",
    cbReason: 'CAUSAL_HUMAN_APPROVAL_ORPHANED',
  };
}
