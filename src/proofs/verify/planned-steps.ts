import { z } from 'zod';
import { canonicalJson } from '../../crypto/jcs.js';
import { fail, type Passed, quote } from './check.js';
import type { Chain } from './event-chain.js';
import type { EventBody, OurMetadata } from './our-bindings.js';
import { validate } from './schemas/validate.js';

/**
 * The steps as `job_created` planned them: the chain, not the metadata beside it, says which
 * steps needed approval and under which rule. Only the fields read here are constrained.
 */
const plannedStep = z.looseObject({
  id: z.string(),
  tool: z.string(),
  gate: z.enum(['auto', 'gated']),
  rule: z.record(z.string(), z.unknown()).optional(),
});
export type PlannedStep = z.infer<typeof plannedStep>;

/** The rule fields the two-person check reads: a snapshot and job_created must agree on these. */
const TWO_PERSON_FIELDS = [
  'required_approvals',
  'allowed_approver_groups',
  'distinct_groups',
  'allow_requester_approval',
] as const;

/** A rule's two-person fields as comparable text (a missing field reads as null). */
export function twoPersonRuleText(rule: Record<string, unknown> | undefined): string {
  return canonicalJson(Object.fromEntries(TWO_PERSON_FIELDS.map((k) => [k, rule?.[k] ?? null])));
}

/**
 * The planned steps of job_created (the chain's first event, checked by `checkPolicyAndPlan`),
 * which must be the metadata's steps, in order, with the same tool and gate: a step dropped
 * from or re-gated in the metadata would escape the two-person check.
 */
export function plannedSteps(
  ours: OurMetadata,
  chain: Chain,
  decoded: ReadonlyMap<string, EventBody>,
): { value: PlannedStep[] } & Passed {
  const created = decoded.get(chain.list[0]!.event_hash_b64u)!;
  const shape = validate(z.array(plannedStep), created.steps, 'job_created.steps');
  if (!shape.ok) fail('BUNDLE_PAYLOAD_INVALID', null, shape.message);
  const planned = created.steps as PlannedStep[];
  const { steps } = ours.claw_approvals;
  if (steps.length !== planned.length)
    fail('PLAN_BINDING_MISMATCH', null, 'metadata lists other steps than job_created planned');
  for (const [i, p] of planned.entries()) {
    const s = steps[i]! as { step: string; tool: string; gate?: unknown };
    if (s.step !== p.id || s.tool !== p.tool || s.gate !== p.gate)
      fail(
        'PLAN_BINDING_MISMATCH',
        null,
        `metadata step ${quote(s.step)} is not step ${quote(p.id)} as job_created planned it (tool, gate)`,
      );
    if (p.gate === 'gated' && p.rule === undefined)
      fail('BUNDLE_PAYLOAD_INVALID', null, `job_created pins no rule for gated step ${quote(p.id)}`);
  }
  const gated = planned.filter((p) => p.gate === 'gated').length;
  return {
    value: planned,
    message: `the metadata's ${planned.length} steps are job_created's, ${gated} gated with a pinned rule`,
  };
}
