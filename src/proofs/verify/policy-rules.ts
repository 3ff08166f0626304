import { verifyEnvelope } from '../../crypto/envelope.js';
import { jcsHashB64u } from '../../crypto/hash.js';
import { approvalRuleFor } from '../../policy/approval-rule.js';
import { matchesAny } from '../../policy/tool-pattern.js';
import type { Wpc } from '../../policy/types.js';
import { approvalPolicyOf } from '../../policy/wpc-payload.js';
import { type BundleTrust, fail, type Passed, quote } from './check.js';
import type { OurMetadata } from './our-bindings.js';
import { type PlannedStep, twoPersonRuleText } from './planned-steps.js';

interface SignedPolicy {
  payload: unknown;
  payload_hash_b64u: string;
  signer_did: string;
  issued_at: string;
}

/** What the signed policy says of a tool: its gate and, when gated, its rule's two-person fields. */
function ruling(policy: Wpc, tool: string): { gate: 'auto' | 'gated'; rule: string | null } {
  const gated = matchesAny(policy.execution.require_human_approval_for, tool);
  return gated
    ? { gate: 'gated', rule: twoPersonRuleText({ ...approvalRuleFor(policy, tool) }) }
    : { gate: 'auto', rule: null };
}

/**
 * The stronger reading of the two-person rule, made only when the caller supplies the pinned
 * policy's signed WPC envelope (as `/v1/wpc/:hash` serves it; bundles name it by hash only,
 * clawverify capping payload.metadata at 16 KiB): it must be the bundle's policy version,
 * signed by a signer trusted at its issue date, and give each planned step the gate and the
 * rule job_created pinned. Without it, snapshots are checked against job_created's rules, which
 * the bundle's own signer vouches for; the check then says it was not made.
 */
export function checkPolicyRules(
  supplied: unknown,
  trust: BundleTrust,
  ours: OurMetadata,
  planned: PlannedStep[],
): Passed {
  const { policy_hash_b64u: hash, name } = ours.claw_approvals.policy;
  if (supplied === undefined)
    return {
      message: `not made: the signed policy ${quote(hash)} was not supplied, so the rules job_created pinned were not recomputed from it`,
    };
  const mismatch = (why: string): never =>
    fail('POLICY_BINDING_MISMATCH', null, `the supplied policy ${why}`);
  const envelope = verifyEnvelope(supplied, { type: 'work_policy_contract', hashPayload: jcsHashB64u });
  if (!envelope.ok) mismatch(`does not verify: ${envelope.message}`);
  const signed = supplied as SignedPolicy;
  if (signed.payload_hash_b64u !== hash)
    mismatch(`is version ${quote(signed.payload_hash_b64u)}, not the bundle's ${quote(hash)}`);
  if (!trust.trustsSigner(signed.signer_did, new Date(signed.issued_at)))
    mismatch(`is signed by ${quote(signed.signer_did)}, not trusted at ${quote(signed.issued_at)}`);

  let rulings: ReturnType<typeof ruling>[];
  let policyName: unknown;
  try {
    const policy = approvalPolicyOf(signed.payload);
    policyName = policy.policy_name;
    rulings = planned.map((p) => ruling(policy, p.tool));
  } catch (err) {
    // Signed and trusted, yet not an approval policy this verifier can read: fail closed.
    return mismatch(`has no readable approval rules: ${quote(err instanceof Error ? err.message : err)}`);
  }
  if (policyName !== name) mismatch(`is named ${quote(policyName)}, not ${quote(name)}`);
  for (const [i, p] of planned.entries()) {
    const expected = rulings[i]!;
    if (expected.gate !== p.gate)
      fail(
        'APPROVAL_RULE_MISMATCH',
        null,
        `step ${quote(p.id)} is ${p.gate} in job_created, but the signed policy makes tool ${quote(p.tool)} ${expected.gate}`,
      );
    if (expected.rule !== null && expected.rule !== twoPersonRuleText(p.rule))
      fail(
        'APPROVAL_RULE_MISMATCH',
        null,
        `step ${quote(p.id)}: job_created pinned another approval rule than the signed policy gives tool ${quote(p.tool)}`,
      );
  }
  return {
    message: `the signed policy ${quote(hash)} (trusted signer) gives every planned step the gate and two-person rule job_created pinned`,
  };
}
