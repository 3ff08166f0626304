import { type EnvelopeFailure, verifyEnvelope } from '../crypto/envelope.js';
import { sha256B64u } from '../crypto/hash.js';
import { canonicalJson } from '../crypto/jcs.js';
import { tokenScopeHash } from '../tokens/cst-claims.js';
import { type ChainedEvent, eventHash } from './event-chain.js';
import { bundlePayloadHash } from './seal-bundle.js';

export type BundleFailure =
  | `BUNDLE_${EnvelopeFailure}`
  | 'BUNDLE_SIGNER_UNTRUSTED'
  | 'BUNDLE_ISSUED_AT_MISMATCH'
  | 'BUNDLE_PAYLOAD_INVALID'
  | 'AGENT_DID_MISMATCH'
  | 'EVENT_CHAIN_INVALID'
  | 'EVENT_RUN_ID_MISMATCH'
  | 'EVENT_CHAIN_BROKEN'
  | 'EVENT_HASH_MISMATCH'
  | 'EVENT_PAYLOAD_MISMATCH'
  | `RECEIPT_${EnvelopeFailure}`
  | 'RECEIPT_BINDING_MISMATCH'
  | 'APPROVAL_RECEIPT_INVALID'
  | 'APPROVAL_RECEIPT_BINDING_MISMATCH'
  | 'POLICY_BINDING_MISMATCH'
  | 'PLAN_BINDING_MISMATCH'
  | 'TOKEN_BINDING_MISMATCH';

export type BundleVerdict =
  | { ok: true; bundleId: string; signerDid: string; events: number; receipts: number; approvals: number }
  | { ok: false; reason: BundleFailure; message: string };

export interface BundleTrust {
  /** Whether a bundle signed by `did` at `at` is acceptable (the bot's key ring, or an allowlist). */
  trustsSigner: (did: string, at: Date) => boolean;
  /** Gateway receipt signers accepted as evidence. */
  gatewaySigners: ReadonlySet<string>;
}

class Failure extends Error {
  constructor(
    readonly reason: BundleFailure,
    message: string,
  ) {
    super(message);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function checkChain(events: unknown): {
  runId: string | null;
  byHash: Map<string, ChainedEvent>;
  list: ChainedEvent[];
} {
  const byHash = new Map<string, ChainedEvent>();
  if (events === undefined) return { runId: null, byHash, list: [] };
  if (!Array.isArray(events) || events.length === 0)
    throw new Failure('EVENT_CHAIN_INVALID', 'event_chain must be a non-empty array');
  let prev: string | null = null;
  let runId: string | null = null;
  const list: ChainedEvent[] = [];
  for (const [i, raw] of events.entries()) {
    if (!isObject(raw)) throw new Failure('EVENT_CHAIN_INVALID', `event_chain[${i}] is not an object`);
    const e = raw as unknown as ChainedEvent;
    const strings = [
      'event_id',
      'run_id',
      'event_type',
      'timestamp',
      'payload_hash_b64u',
      'event_hash_b64u',
    ] as const;
    if (
      strings.some((k) => typeof e[k] !== 'string' || e[k].length === 0) ||
      !(e.prev_hash_b64u === null || typeof e.prev_hash_b64u === 'string')
    ) {
      throw new Failure('EVENT_CHAIN_INVALID', `event_chain[${i}] lacks a required field`);
    }
    runId ??= e.run_id;
    if (e.run_id !== runId)
      throw new Failure(
        'EVENT_RUN_ID_MISMATCH',
        `event_chain[${i}] belongs to run ${e.run_id}, not ${runId}`,
      );
    if (e.prev_hash_b64u !== prev)
      throw new Failure(
        'EVENT_CHAIN_BROKEN',
        `event_chain[${i}].prev_hash_b64u does not link to the previous event`,
      );
    if (eventHash(e) !== e.event_hash_b64u)
      throw new Failure('EVENT_HASH_MISMATCH', `event_chain[${i}].event_hash_b64u is wrong`);
    if (byHash.has(e.event_hash_b64u))
      throw new Failure('EVENT_CHAIN_BROKEN', `event_chain[${i}] repeats an earlier event`);
    byHash.set(e.event_hash_b64u, e);
    list.push(e);
    prev = e.event_hash_b64u;
  }
  return { runId, byHash, list };
}

function checkGatewayReceipts(
  receipts: unknown,
  trust: BundleTrust,
  runId: string | null,
  byHash: Map<string, ChainedEvent>,
): number {
  if (receipts === undefined) return 0;
  if (!Array.isArray(receipts) || receipts.length === 0)
    throw new Failure('BUNDLE_PAYLOAD_INVALID', 'receipts must be a non-empty array');
  for (const [i, r] of receipts.entries()) {
    const check = verifyEnvelope(r, {
      type: 'gateway_receipt',
      hashPayload: bundlePayloadHash,
      trustedSigners: trust.gatewaySigners,
    });
    if (!check.ok) throw new Failure(`RECEIPT_${check.reason}`, `receipts[${i}]: ${check.message}`);
    const binding = (r as { payload: Record<string, unknown> }).payload.binding;
    if (binding !== undefined) {
      if (!isObject(binding))
        throw new Failure('RECEIPT_BINDING_MISMATCH', `receipts[${i}].payload.binding is not an object`);
      if (binding.run_id !== undefined && binding.run_id !== runId) {
        throw new Failure(
          'RECEIPT_BINDING_MISMATCH',
          `receipts[${i}] is bound to run ${String(binding.run_id)}, not ${runId}`,
        );
      }
      if (binding.event_hash_b64u !== undefined && !byHash.has(binding.event_hash_b64u as string)) {
        throw new Failure('RECEIPT_BINDING_MISMATCH', `receipts[${i}] is bound to an event not in the chain`);
      }
    }
  }
  return receipts.length;
}

interface OurMetadata {
  job_id: string;
  policy: { name: string; policy_hash_b64u: string };
  plan_hash_b64u: string;
  steps: {
    step: string;
    tool: string;
    cst: null | {
      jti: string;
      token_hash: string;
      token_scope_hash_b64u: string;
      sub: string;
      aud: string;
      scope: string[];
    };
  }[];
}

/**
 * Everything a claw-approvals bundle adds to the Claw Bureau format: every event's payload
 * matches its hash, approval receipts point at their events and carry the job's policy, plan
 * and step scope, and each step's CST binding recomputes.
 */
function checkOurBindings(
  payload: Record<string, unknown>,
  runId: string | null,
  list: ChainedEvent[],
  issuedAt: string,
): void {
  const metadata = isObject(payload.metadata) ? payload.metadata : {};
  const ours = metadata.claw_approvals as OurMetadata | undefined;
  const payloads = metadata.event_payloads as { event_id: string; payload: unknown }[] | undefined;
  if (ours === undefined && payloads === undefined) return;
  if (!isObject(ours) || !Array.isArray(payloads) || !Array.isArray(ours.steps) || !isObject(ours.policy)) {
    throw new Failure(
      'BUNDLE_PAYLOAD_INVALID',
      'metadata.claw_approvals or metadata.event_payloads is malformed',
    );
  }
  if (ours.job_id !== runId)
    throw new Failure('EVENT_RUN_ID_MISMATCH', 'metadata names another job than the event chain');
  // issued_at is outside the signed payload; a bundle is sealed at its last event, so tie the
  // one to the other (and thereby the date the signer's trust is judged at).
  if (list.at(-1)?.timestamp !== issuedAt)
    throw new Failure('BUNDLE_ISSUED_AT_MISMATCH', 'issued_at is not the time of the last event');
  const payloadOf = new Map<string, unknown>();
  for (const p of payloads) payloadOf.set(p.event_id, p.payload);
  const decoded = new Map<string, Record<string, unknown>>();
  for (const e of list) {
    if (!payloadOf.has(e.event_id))
      throw new Failure('EVENT_PAYLOAD_MISMATCH', `event ${e.event_id} has no payload in metadata`);
    const body = payloadOf.get(e.event_id);
    if (sha256B64u(canonicalJson(body)) !== e.payload_hash_b64u) {
      throw new Failure('EVENT_PAYLOAD_MISMATCH', `event ${e.event_id}'s payload does not match its hash`);
    }
    decoded.set(e.event_hash_b64u, body as Record<string, unknown>);
  }
  if (payloadOf.size !== list.length)
    throw new Failure('EVENT_PAYLOAD_MISMATCH', 'metadata carries payloads of events not in the chain');
  const policyHash = ours.policy.policy_hash_b64u;
  const created = list[0] ? decoded.get(list[0].event_hash_b64u) : undefined;
  if (!created || list[0]!.event_type !== 'job_created')
    throw new Failure('EVENT_CHAIN_INVALID', 'the chain must start with job_created');
  if (created.policy_hash_b64u !== policyHash)
    throw new Failure('POLICY_BINDING_MISMATCH', 'job_created names another policy');
  if (
    created.plan_hash_b64u !== ours.plan_hash_b64u ||
    sha256B64u(canonicalJson(created.plan)) !== ours.plan_hash_b64u
  ) {
    throw new Failure('PLAN_BINDING_MISMATCH', 'the plan does not hash to plan_hash_b64u');
  }
  const minted = new Map<string, Record<string, unknown>>();
  for (const body of decoded.values())
    if (typeof body.jti === 'string' && 'token_scope_hash_b64u' in body) minted.set(String(body.step), body);
  const scopeOfStep = new Map<string, string>();
  for (const s of ours.steps) {
    if (s.cst === null) continue;
    const m = minted.get(s.step);
    const recomputed = tokenScopeHash({
      sub: s.cst.sub,
      aud: s.cst.aud,
      scope: s.cst.scope,
      policy_hash_b64u: policyHash,
      mission_id: ours.job_id,
    });
    const bound =
      m !== undefined &&
      recomputed === s.cst.token_scope_hash_b64u &&
      m.token_scope_hash_b64u === recomputed &&
      m.jti === s.cst.jti &&
      m.token_hash === s.cst.token_hash &&
      m.policy_hash_b64u === policyHash &&
      s.cst.scope.includes(`plan:${ours.plan_hash_b64u}`) &&
      s.cst.scope.includes(`step:${s.step}`) &&
      s.cst.scope.includes(`tool:${s.tool}`);
    if (!bound)
      throw new Failure('TOKEN_BINDING_MISMATCH', `step ${s.step}'s CST binding does not recompute`);
    scopeOfStep.set(s.step, recomputed);
  }
  const approvals = payload.human_approval_receipts;
  if (approvals === undefined) return;
  if (!Array.isArray(approvals))
    throw new Failure('APPROVAL_RECEIPT_INVALID', 'human_approval_receipts must be an array');
  for (const [i, r] of approvals.entries()) {
    if (!isObject(r) || r.agent_did !== payload.agent_did || r.receipt_version !== '1') {
      throw new Failure(
        'APPROVAL_RECEIPT_INVALID',
        `human_approval_receipts[${i}] is malformed or names another agent`,
      );
    }
    const binding = isObject(r.binding) ? r.binding : {};
    const event =
      typeof binding.event_hash_b64u === 'string' ? decoded.get(binding.event_hash_b64u) : undefined;
    if (binding.run_id !== runId || !event) {
      throw new Failure(
        'APPROVAL_RECEIPT_BINDING_MISMATCH',
        `human_approval_receipts[${i}] does not point at an event of this job`,
      );
    }
    if (r.approval_type !== 'auto_approve' && event.user_id !== r.approver_subject) {
      throw new Failure(
        'APPROVAL_RECEIPT_BINDING_MISMATCH',
        `human_approval_receipts[${i}]'s approver is not the one in its event`,
      );
    }
    if (r.policy_hash_b64u !== policyHash || binding.policy_hash !== policyHash) {
      throw new Failure('POLICY_BINDING_MISMATCH', `human_approval_receipts[${i}] names another policy`);
    }
    if (r.plan_hash_b64u !== ours.plan_hash_b64u)
      throw new Failure('PLAN_BINDING_MISMATCH', `human_approval_receipts[${i}] names another plan`);
    const scope = scopeOfStep.get(String(event.step));
    if (
      r.approval_type !== 'explicit_deny' &&
      (scope === undefined || r.scope_hash_b64u !== scope || binding.token_scope_hash_b64u !== scope)
    ) {
      throw new Failure(
        'TOKEN_BINDING_MISMATCH',
        `human_approval_receipts[${i}]'s scope hash is not its step's CST`,
      );
    }
  }
}

/**
 * Re-checks a sealed proof bundle offline: envelope hash and signature, trusted signer,
 * agent_did, the hash chain, gateway receipts (signature, allowlisted signer, binding) and,
 * for bundles this project seals, event payloads and every policy, plan and token binding.
 * Fails closed with the first named reason.
 */
export function verifyBundle(envelope: unknown, trust: BundleTrust): BundleVerdict {
  try {
    const check = verifyEnvelope(envelope, { type: 'proof_bundle', hashPayload: bundlePayloadHash });
    if (!check.ok) throw new Failure(`BUNDLE_${check.reason}`, check.message);
    const env = envelope as { payload: unknown; signer_did: string; issued_at: string };
    if (!trust.trustsSigner(env.signer_did, new Date(env.issued_at))) {
      throw new Failure('BUNDLE_SIGNER_UNTRUSTED', `bundle signer ${env.signer_did} is not trusted`);
    }
    if (!isObject(env.payload)) throw new Failure('BUNDLE_PAYLOAD_INVALID', 'payload is not an object');
    const p = env.payload;
    if (p.bundle_version !== '1' || typeof p.bundle_id !== 'string' || p.bundle_id.length === 0) {
      throw new Failure('BUNDLE_PAYLOAD_INVALID', 'bundle_version must be "1" and bundle_id a string');
    }
    if (p.agent_did !== env.signer_did)
      throw new Failure('AGENT_DID_MISMATCH', 'payload agent_did is not the envelope signer');
    const { runId, byHash, list } = checkChain(p.event_chain);
    const receipts = checkGatewayReceipts(p.receipts, trust, runId, byHash);
    checkOurBindings(p, runId, list, env.issued_at);
    const approvals = Array.isArray(p.human_approval_receipts) ? p.human_approval_receipts.length : 0;
    return {
      ok: true,
      bundleId: p.bundle_id,
      signerDid: env.signer_did,
      events: list.length,
      receipts,
      approvals,
    };
  } catch (err) {
    if (err instanceof Failure) return { ok: false, reason: err.reason, message: err.message };
    // A payload of unexpected shape (a signed bundle can still hold anything): fail closed, named.
    return {
      ok: false,
      reason: 'BUNDLE_PAYLOAD_INVALID',
      message: `payload is malformed: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
}
