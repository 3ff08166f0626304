import { z } from 'zod';
import { b64u, dateTime, text } from './formats.js';

/** One entry of a bundle's `event_chain` (Claw Bureau `proof_bundle.v1`, `event_chain.v1`). */
export const eventChainEntry = z.strictObject({
  event_id: text({ min: 1 }),
  run_id: text({ min: 1 }),
  event_type: text({ min: 1 }),
  timestamp: dateTime(),
  payload_hash_b64u: b64u(),
  prev_hash_b64u: b64u().nullable(),
  event_hash_b64u: b64u(),
});
