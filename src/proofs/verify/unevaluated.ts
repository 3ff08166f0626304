/**
 * What of a bundle no verifier of ours evaluates, named for messages: a bundle carrying any of
 * it fails as UNSUPPORTED_FEATURE (features.ts; the bundle page's verifier links this module
 * into its script, so it imports nothing).
 */

/** Components of `proof_bundle.v1` whose shape and meaning are not checked. */
export const UNEVALUATED_COMPONENTS = {
  urm: 'URM reference (urm)',
  vir_receipts: 'verifiable inference receipts (vir_receipts)',
  web_receipts: 'witnessed web receipts (web_receipts)',
  coverage_attestations: 'coverage attestations (coverage_attestations)',
  binary_semantic_evidence_attestations:
    'binary semantic evidence attestations (binary_semantic_evidence_attestations)',
  delegation_receipts: 'delegation receipts (delegation_receipts)',
  rate_limit_claims: 'rate-limit claims (rate_limit_claims)',
  attestations: 'attestations (attestations)',
} as const;

/** Bundle metadata that Claw Bureau's verifier evaluates and ours does not. */
export const UNEVALUATED_METADATA: Readonly<Record<string, string>> = {
  policy_binding: 'policy binding (metadata.policy_binding)',
  data_handling: 'data-handling receipts (metadata.data_handling)',
  runner_measurement: 'runner measurement (metadata.runner_measurement)',
  runner_attestation_receipt: 'runner attestation (metadata.runner_attestation_receipt)',
  reviewer_signoff_receipts: 'reviewer sign-off receipts (metadata.reviewer_signoff_receipts)',
  prompt_pack: 'prompt pack commitment (metadata.prompt_pack)',
  system_prompt_report: 'system prompt report (metadata.system_prompt_report)',
  sentinels: 'sentinel coverage telemetry (metadata.sentinels)',
};
