import { sealEnvelope } from '../../src/crypto/envelope.js';
import { sha256B64u } from '../../src/crypto/hash.js';
import { canonicalJson } from '../../src/crypto/jcs.js';
import { eventHash } from '../../src/proofs/event-chain.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import type { SigningKey } from '../../src/tokens/signing-key.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- forgeries reach anywhere in a bundle
export type Obj = Record<string, any>;

/**
 * Forgeries by someone holding every key (the server's signing key, the gateway's): what a
 * compromised or buggy sealer could emit. `edit` changes the payload as it likes, event
 * payloads and the chain's order included; then every event is hashed and linked again (each
 * reference to an old event hash, anywhere in the payload, follows it), gateway receipts whose
 * payload changed are signed again by `gateway`, `issued_at` becomes the last event's time and
 * `key` signs the result. What is left is a bundle whose only faults are the ones `edit` made
 * on purpose: hashes, links and signatures all hold.
 */
export function forge(
  stored: string,
  keys: { key: SigningKey; gateway: SigningKey },
  edit: (p: Obj) => void,
): string {
  const env = JSON.parse(stored) as Obj;
  edit(env.payload);
  let text = JSON.stringify(env.payload);
  const count = (env.payload.event_chain as unknown[]).length;
  for (let i = 0; i < count; i++) {
    const p = JSON.parse(text) as Obj;
    const e = p.event_chain[i] as Obj;
    const body = (p.metadata.event_payloads as Obj[]).find((x) => x.event_id === e.event_id)!.payload;
    e.payload_hash_b64u = sha256B64u(canonicalJson(body));
    e.prev_hash_b64u = i === 0 ? null : (p.event_chain[i - 1] as Obj).event_hash_b64u;
    const old = e.event_hash_b64u as string;
    e.event_hash_b64u = eventHash(e as Parameters<typeof eventHash>[0]);
    text = JSON.stringify(p).replaceAll(old, e.event_hash_b64u as string);
  }
  const payload = JSON.parse(text) as Obj;
  payload.receipts = (payload.receipts as Obj[] | undefined)?.map((r) =>
    bundlePayloadHash(r.payload) === r.payload_hash_b64u
      ? r
      : sealEnvelope({
          type: 'gateway_receipt',
          payload: r.payload,
          payloadHashB64u: bundlePayloadHash(r.payload),
          key: keys.gateway,
          issuedAt: new Date(r.issued_at as string),
        }),
  );
  if (payload.receipts === undefined) delete payload.receipts;
  const last = (payload.event_chain as Obj[]).at(-1)!;
  return JSON.stringify(
    sealEnvelope({
      type: 'proof_bundle',
      payload,
      payloadHashB64u: bundlePayloadHash(payload),
      key: keys.key,
      issuedAt: new Date(last.timestamp as string),
    }),
  );
}

/** The payload of the event with this type (the first, or the `nth`) and its header. */
export function eventOf(p: Obj, type: string, nth = 0): { header: Obj; body: Obj } {
  const header = (p.event_chain as Obj[]).filter((e) => e.event_type === type)[nth]!;
  const body = (p.metadata.event_payloads as Obj[]).find((x) => x.event_id === header.event_id)!
    .payload as Obj;
  return { header, body };
}

/**
 * A new event inserted before the event at `index`, its header fields in the sealed order
 * (hashes are filled in by `forge`).
 */
export function insertEvent(p: Obj, index: number, type: string, body: Obj, timestamp?: string): void {
  const at = (p.event_chain as Obj[])[index]!;
  const id = `evt_forged_${type}_${index}`;
  (p.event_chain as Obj[]).splice(index, 0, {
    event_hash_b64u: `placeholder-${id}`,
    event_id: id,
    event_type: type,
    payload_hash_b64u: '',
    prev_hash_b64u: null,
    run_id: at.run_id,
    timestamp: timestamp ?? at.timestamp,
  });
  (p.metadata.event_payloads as Obj[]).push({ event_id: id, payload: body });
}
