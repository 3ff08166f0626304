import { canonicalJson } from '../crypto/jcs.js';
import { AppError } from '../errors.js';
import type { Wpc, WpcPayload } from './types.js';

/**
 * The issuer of a policy whose file names none. A constant rather than the signing key's
 * DID: `issuer_did` is hash-bound, so taking it from the key would re-hash every policy at
 * each key rotation. The `.invalid` name (RFC 2606) says plainly that no issuer was declared;
 * an author who wants their organisation named writes `issuer_did` in the policy.
 */
export const UNDECLARED_ISSUER_DID = 'did:web:claw-approvals.invalid';

/**
 * Claw Bureau's gateway knows three providers; it routes OpenRouter (through fal) as
 * `openai` with `openrouter/…` model ids, which is why that provider needs `allowed_models`.
 */
const GATEWAY_PROVIDER: Readonly<Record<string, 'openai' | 'anthropic' | 'google'>> = {
  openai: 'openai',
  anthropic: 'anthropic',
  google: 'google',
  'openrouter-via-fal': 'openai',
};

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A WPC v1 payload names its version `policy_version`; the approval policy (and legacy payloads) `wpc_version`. */
export function isWpcV1Payload(value: unknown): value is Json & { policy_version: unknown } {
  return isObject(value) && Object.hasOwn(value, 'policy_version');
}

/**
 * Whatever approval policy a payload or policy file carries, unchecked: `metadata.claw_approvals`
 * of a WPC v1 payload, or the value itself. For best-effort reads of untrusted text (which
 * channels a broken file claims); `approvalPolicyOf` is the checked read.
 */
export function carriedApprovalPolicy(value: unknown): unknown {
  if (!isWpcV1Payload(value)) return value;
  const metadata = value.metadata;
  return isObject(metadata) ? metadata.claw_approvals : undefined;
}

/**
 * The Claw Bureau WPC v1 payload an approval policy is signed as (pure). Gateway fields are
 * derived, never written twice: `policy_id` is the policy name, `allowed_providers` the
 * gateway's name for `models.provider`, `allowed_models` and the `data_boundaries` egress
 * and redaction lists are copied, and receipts are `hash_only` whenever PII or export is
 * restricted (an encrypted receipt would carry the prompt in recoverable form). The whole
 * approval policy rides in `metadata.claw_approvals`.
 */
export function toWpcPayload(policy: Wpc): WpcPayload {
  const models = policy.models;
  const data = policy.data_boundaries;
  const provider =
    models?.provider !== undefined && Object.hasOwn(GATEWAY_PROVIDER, models.provider)
      ? GATEWAY_PROVIDER[models.provider]
      : undefined;
  const restrictsData = data?.pii === 'redact_in_logs' || data?.pii === 'deny' || data?.export === 'deny';
  return {
    policy_version: '1',
    policy_id: policy.policy_name,
    issuer_did: policy.issuer_did ?? UNDECLARED_ISSUER_DID,
    ...(provider ? { allowed_providers: [provider] } : {}),
    ...(models?.allowed_models ? { allowed_models: models.allowed_models } : {}),
    ...(data?.egress_allowlist ? { egress_allowlist: data.egress_allowlist } : {}),
    ...(restrictsData ? { receipt_privacy_mode: 'hash_only' as const } : {}),
    ...(data?.redaction_rules ? { redaction_rules: data.redaction_rules } : {}),
    metadata: { claw_approvals: policy },
  };
}

/**
 * The approval policy a signed payload carries. A WPC v1 payload must be exactly the payload
 * its `metadata.claw_approvals` maps to, so that what the gateway enforces and what approvals
 * follow cannot drift apart; a legacy payload (the approval policy itself, signed before
 * WPC v1) is returned as it is, so jobs pinned to it keep working. Shape is checked by
 * `validatePolicy`, not here.
 */
export function approvalPolicyOf(payload: unknown): Wpc {
  const invalid = (why: string) => new AppError('ERR_POLICY_INVALID', `signed policy payload ${why}`);
  if (!isObject(payload)) throw invalid('is not an object');
  if (!isWpcV1Payload(payload)) {
    if (payload.wpc_version !== '1')
      throw invalid('is neither a WPC v1 payload nor a legacy approval policy');
    return payload as unknown as Wpc;
  }
  const inner = carriedApprovalPolicy(payload);
  if (!isObject(inner) || inner.wpc_version !== '1')
    throw invalid('carries no approval policy in metadata.claw_approvals');
  const policy = inner as unknown as Wpc;
  if (canonicalJson(toWpcPayload(policy)) !== canonicalJson(payload))
    throw invalid('has gateway fields that differ from those its metadata.claw_approvals maps to');
  return policy;
}
