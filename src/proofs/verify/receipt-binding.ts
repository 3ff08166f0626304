import { type BundleFailure, fail, isRecord, quote } from './check.js';
import type { Chain } from './event-chain.js';

/**
 * A receipt's binding names this bundle's run and an event of its chain, so that a receipt
 * signed for another run cannot be carried over. Claw Bureau checks a binding where one is
 * given (`cbMismatch` is its code for a wrong one); we also require one on every receipt, a
 * rule it does not have (a missing binding fails with no Claw Bureau code).
 */
export function checkChainBinding(
  binding: unknown,
  chain: Chain,
  where: string,
  reason: BundleFailure,
  cbMismatch: string | null,
): void {
  if (!isRecord(binding)) fail(reason, null, `${where} has no binding to this run's event chain`);
  if (binding.run_id === undefined || binding.event_hash_b64u === undefined)
    fail(reason, null, `${where}.binding must name both run_id and event_hash_b64u`);
  if (binding.run_id !== chain.runId)
    fail(
      reason,
      cbMismatch,
      `${where} is bound to run ${quote(binding.run_id)}, not this bundle's ${quote(chain.runId)}`,
    );
  if (typeof binding.event_hash_b64u !== 'string' || !chain.byHash.has(binding.event_hash_b64u))
    fail(reason, cbMismatch, `${where} is bound to an event that is not in the event chain`);
}
