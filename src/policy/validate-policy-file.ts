import { canonicalJson } from '../crypto/jcs.js';
import { diffPolicies } from './diff-policy.js';
import type { GroupsFile, Wpc } from './types.js';
import { type Checked, type PolicyProblem, validatePolicy } from './validate-policy.js';
import { carriedApprovalPolicy, isWpcV1Payload, toWpcPayload } from './wpc-payload.js';

const CARRIED_AT = '$.metadata.claw_approvals';

function mismatch(change: ReturnType<typeof diffPolicies>[number]): PolicyProblem {
  const show = (v: unknown) => JSON.stringify(v);
  const message =
    change.kind === 'added'
      ? `is not derived from ${CARRIED_AT}; remove it`
      : change.kind === 'removed'
        ? `is missing: ${CARRIED_AT} maps to ${show(change.before)}`
        : `must be ${show(change.before)}: that is what ${CARRIED_AT} maps to`;
  return { path: change.path, rule: 'wpc:payload-mismatch', message };
}

/**
 * Validates a policy file in either form an author may write: the approval policy itself
 * (`wpc_version`), or the Claw Bureau WPC v1 payload carrying it in `metadata.claw_approvals`.
 * The second must be exactly the payload its approval policy maps to, so both forms sign
 * and hash the same bytes, and the gateway fields can never say what the approval policy does not.
 * `mattermost_names` is the loader's record of what names meant (`bind-names.ts`): a file that
 * writes it is refused, so nobody can sign a meaning of their own.
 */
export function validatePolicyFile(value: unknown, opts: { groups?: GroupsFile } = {}): Checked<Wpc> {
  const carried = carriedApprovalPolicy(value);
  if (typeof carried === 'object' && carried !== null && Object.hasOwn(carried, 'mattermost_names')) {
    return {
      ok: false,
      problems: [
        {
          path: isWpcV1Payload(value) ? `${CARRIED_AT}.mattermost_names` : '$.mattermost_names',
          rule: 'names:loader-only',
          message: 'is written when a version is signed, never by authors: write each name where it is used',
        },
      ],
    };
  }
  if (!isWpcV1Payload(value)) return validatePolicy(value, opts);
  const checked = validatePolicy(carriedApprovalPolicy(value), opts);
  if (!checked.ok) {
    return {
      ok: false,
      problems: checked.problems.map((p) => ({ ...p, path: `${CARRIED_AT}${p.path.slice(1)}` })),
    };
  }
  const expected = toWpcPayload(checked.value);
  if (canonicalJson(expected) === canonicalJson(value)) return checked;
  const problems = diffPolicies(expected, value).map(mismatch);
  // The diff reads lists of names as sets; what is left is the order of their items.
  if (!problems.length)
    problems.push({
      path: '$',
      rule: 'wpc:payload-mismatch',
      message: `lists must keep the order ${CARRIED_AT} gives them`,
    });
  return { ok: false, problems };
}
