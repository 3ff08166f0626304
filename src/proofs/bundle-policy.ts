/**
 * The policy hash a bundle of any shape names (`metadata.claw_approvals.policy`), or null. Read
 * only to find the signed policy; the verifier checks that what is found is the one bound.
 */
export function policyHashNamedBy(envelope: unknown): string | null {
  const named = envelope as
    | { payload?: { metadata?: { claw_approvals?: { policy?: { policy_hash_b64u?: unknown } } } } }
    | null
    | undefined;
  const hash = named?.payload?.metadata?.claw_approvals?.policy?.policy_hash_b64u;
  return typeof hash === 'string' && hash.length > 0 ? hash : null;
}
