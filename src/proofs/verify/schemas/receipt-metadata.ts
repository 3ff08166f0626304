import { z } from 'zod';
import { anyObject, b64u, dateTime, did, integer, nonNegative, text } from './formats.js';

/**
 * What a gateway may state about a call in its receipt's `metadata` (Claw Bureau
 * `model_identity.v1`, `kinematic_fingerprint.v1`, `log_inclusion_proof.v1`,
 * `sentinel_anomaly_report.v1`). Shape only: none of it decides a verdict, in their
 * verifier or ours.
 */

const resourceRef = z.strictObject({
  resource_type: text({ min: 1 }),
  resource_hash_b64u: b64u(),
  uri: z.string().optional(),
});

export const modelIdentity = z.strictObject({
  model_identity_version: z.literal('1'),
  tier: z.enum(['closed_opaque', 'closed_provider_manifest', 'openweights_hashable', 'tee_measured']),
  model: z.strictObject({
    provider: text({ min: 1 }),
    name: text({ min: 1 }),
    family: z.string().optional(),
    endpoint: z.string().optional(),
    region: z.string().optional(),
    deployment_id: z.string().optional(),
    revision: z.string().optional(),
  }),
  gateway_observed: z
    .strictObject({
      gateway_id: did(),
      observed_at: dateTime(),
      request_id: z.string().optional(),
      provider_response_fingerprint: z.string().optional(),
      transport: z
        .strictObject({
          provider_api: z.string().optional(),
          http_status: nonNegative().optional(),
          latency_ms: nonNegative().optional(),
        })
        .optional(),
    })
    .optional(),
  artifacts: z
    .strictObject({
      provider_manifest: z
        .strictObject({
          manifest_type: z.literal('provider_build_manifest'),
          uri: z.string().optional(),
          hash_b64u: b64u(),
          content_type: z.string().optional(),
          signature: z.strictObject({ signer_did: did(), signature_envelope_ref: resourceRef }).optional(),
        })
        .optional(),
      openweights: z
        .strictObject({
          weights_format: z.string().optional(),
          weights: z
            .array(
              z.strictObject({
                file_name: z.string().optional(),
                hash_b64u: b64u(),
                size_bytes: nonNegative().optional(),
              }),
            )
            .optional(),
          tokenizer: anyObject().optional(),
          config: anyObject().optional(),
          serving_code: anyObject().optional(),
        })
        .optional(),
      tee_measurement: z
        .strictObject({
          attestation_type: z.string().optional(),
          attestation_report_ref: resourceRef.optional(),
          measurement: anyObject().optional(),
          tcb: anyObject().optional(),
        })
        .optional(),
    })
    .optional(),
  metadata: anyObject().optional(),
});

export const kinematicFingerprint = z.strictObject({
  ttft_ms: z.number(),
  itl_p50_ms: z.number(),
  itl_p95_ms: z.number(),
  itl_stddev_ms: z.number(),
  chunk_count: integer(),
  burst_signature_b64u: z.string(),
  hardware_inferred: z.string().optional(),
  confidence_score: z.number().min(0).max(1).optional(),
  total_tokens: integer().optional(),
  total_duration_ms: z.number().optional(),
});

export const logInclusionProof = z.strictObject({
  proof_version: z.literal('1'),
  log_id: text({ min: 1 }),
  tree_size: nonNegative(),
  leaf_hash_b64u: b64u(),
  root_hash_b64u: b64u(),
  audit_path: z.array(b64u()),
  root_published_at: dateTime(),
  root_signature: z.strictObject({ signer_did: did(), sig_b64u: b64u() }),
  metadata: anyObject().optional(),
});

export const sentinelAnomalyReport = z.strictObject({
  threat_score: z.number().min(0).max(100),
  anomaly_type: z.enum([
    'benign',
    'prompt_injection_suspected',
    'data_exfiltration_topology',
    'alien_trajectory',
    'model_impersonation',
  ]),
  global_prevalence: integer().optional(),
  nearest_neighbors: z.array(z.string()).optional(),
  confidence: z.number().min(0).max(1).optional(),
});

const auditResultRef = z.strictObject({
  resource_type: z.string().optional(),
  resource_hash_b64u: b64u(),
  uri: z.string().optional(),
});

/** Receipt metadata as a proof bundle's schema constrains it; other keys are free. */
export const bundledReceiptMetadata = z.looseObject({
  model_identity: modelIdentity.optional(),
  model_identity_hash_b64u: b64u().optional(),
  audit_result_refs: z.array(auditResultRef).optional(),
});

/** Receipt metadata as the gateway receipt's own schema constrains it (more named keys). */
export const gatewayReceiptMetadata = bundledReceiptMetadata.extend({
  x402_payment_ref: text({ min: 1 }).optional(),
  x402_amount_minor: integer().min(0).optional(),
  x402_currency: text({ min: 1 }).optional(),
  x402_network: text({ min: 1 }).optional(),
  x402_payment_auth_hash_b64u: b64u().optional(),
  log_inclusion_proof: logInclusionProof.optional(),
  kinematic_fingerprint: kinematicFingerprint.optional(),
  sentinel_anomaly_report: sentinelAnomalyReport.optional(),
});
