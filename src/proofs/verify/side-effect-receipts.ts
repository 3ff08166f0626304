import { fail, type Passed } from './check.js';
import type { Chain } from './event-chain.js';
import { checkChainBinding } from './receipt-binding.js';

interface SideEffect {
  hash_algorithm: string;
  agent_did: string;
  binding?: unknown;
}

/** Every side-effect receipt: SHA-256 digests, the bundle's agent, bound to this run's chain. */
export function checkSideEffectReceipts(
  receipts: unknown[] | undefined,
  agentDid: string,
  chain: Chain,
): Passed {
  const list = (receipts ?? []) as SideEffect[];
  for (const [i, r] of list.entries()) {
    const where = `side_effect_receipts[${i}]`;
    if (r.hash_algorithm !== 'SHA-256')
      fail('SIDE_EFFECT_RECEIPT_INVALID', 'UNKNOWN_HASH_ALGORITHM', `${where}.hash_algorithm is not SHA-256`);
    if (r.agent_did !== agentDid)
      fail(
        'SIDE_EFFECT_RECEIPT_INVALID',
        'PROOF_BUNDLE_AGENT_MISMATCH',
        `${where} names another agent than the bundle's`,
      );
    checkChainBinding(r.binding, chain, where, 'SIDE_EFFECT_RECEIPT_BINDING_MISMATCH', null);
  }
  return {
    message:
      list.length === 0
        ? 'no side-effect receipts'
        : `${list.length} side-effect receipts of this agent bound to this run`,
  };
}
