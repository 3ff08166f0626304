import { sealEnvelope } from '../../src/crypto/envelope.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import type { BundleTrust } from '../../src/proofs/verify-bundle.js';
import type { SigningKey } from '../../src/tokens/signing-key.js';
import { clawBureauJson } from '../helpers/clawbureau.js';
import { newKey } from '../helpers/state.js';

/**
 * Bundles this project did not seal (no claw_approvals metadata), for the verifier's tests:
 * Claw Bureau's passing conformance vector, re-signed by `agent` after `mutate` changed its
 * payload. Its one event is `event`; its gateway receipt is signed by the vectors' allowlisted
 * gateway, which `trust` accepts along with `agent`.
 */
export interface ForeignPayload {
  agent_did: string;
  event_chain: { run_id: string; event_hash_b64u: string; timestamp: string }[];
  receipts?: unknown[];
  [key: string]: unknown;
}

const FOLDER = 'upstream/packages/schema/fixtures/protocol-conformance';
const vector = () =>
  clawBureauJson<{ issued_at: string; payload: ForeignPayload }>(`${FOLDER}/proof_bundle_pass.v1.json`);
const allowlists = clawBureauJson<{ gateway_receipt_signer_dids: string[] }>(`${FOLDER}/allowlists.v1.json`);

export const agent: SigningKey = newKey();
/** A gateway of the tests' own, trusted alongside the vectors' one. */
export const gateway: SigningKey = newKey();

export const trust: BundleTrust = {
  trustsSigner: (did) => did === agent.did,
  gatewaySigners: new Set([...allowlists.gateway_receipt_signer_dids, gateway.did]),
};

export const event = vector().payload.event_chain[0]!;

export function foreignBundle(mutate: (p: ForeignPayload) => void = () => {}) {
  const v = vector();
  const payload = structuredClone(v.payload);
  payload.agent_did = agent.did;
  mutate(payload);
  return sealEnvelope({
    type: 'proof_bundle',
    payload,
    payloadHashB64u: bundlePayloadHash(payload),
    key: agent,
    issuedAt: new Date(v.issued_at),
  });
}
