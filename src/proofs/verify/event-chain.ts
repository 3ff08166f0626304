import { type ChainedEvent, eventHash } from '../event-chain.js';
import { fail, type Passed, quote } from './check.js';

export interface Chain {
  /** The run every event belongs to; null when the bundle has no event chain. */
  runId: string | null;
  list: ChainedEvent[];
  byHash: ReadonlyMap<string, ChainedEvent>;
}

/**
 * The event chain: one run, each event linked to the one before, no event twice, every
 * `event_hash_b64u` recomputed from its header (Claw Bureau's hash, see `eventHash`).
 */
export function checkEventChain(events: unknown[] | undefined): { value: Chain } & Passed {
  const byHash = new Map<string, ChainedEvent>();
  if (events === undefined)
    return { value: { runId: null, list: [], byHash }, message: 'the bundle has no event chain' };
  const list = events as ChainedEvent[];
  let prev: string | null = null;
  const runId = list[0]!.run_id;
  for (const [i, e] of list.entries()) {
    if (e.run_id !== runId)
      fail(
        'EVENT_RUN_ID_MISMATCH',
        'MALFORMED_ENVELOPE',
        `event_chain[${i}] belongs to another run than event_chain[0]`,
      );
    if (Number.isNaN(Date.parse(e.timestamp)))
      fail('EVENT_CHAIN_INVALID', 'MALFORMED_ENVELOPE', `event_chain[${i}].timestamp is not a date`);
    if (e.prev_hash_b64u !== prev)
      fail(
        'EVENT_CHAIN_BROKEN',
        'MALFORMED_ENVELOPE',
        `event_chain[${i}].prev_hash_b64u does not link to the previous event`,
      );
    if (byHash.has(e.event_hash_b64u))
      fail('EVENT_CHAIN_BROKEN', 'MALFORMED_ENVELOPE', `event_chain[${i}] repeats an earlier event`);
    byHash.set(e.event_hash_b64u, e);
    prev = e.event_hash_b64u;
  }
  for (const [i, e] of list.entries())
    if (eventHash(e) !== e.event_hash_b64u)
      fail(
        'EVENT_HASH_MISMATCH',
        'HASH_MISMATCH',
        `event_chain[${i}].event_hash_b64u is not the hash of its header`,
      );
  return {
    value: { runId, list, byHash },
    message: `${list.length} events of run ${quote(runId)}, linked, every event hash recomputed`,
  };
}
