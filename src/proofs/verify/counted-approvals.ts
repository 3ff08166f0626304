import { z } from 'zod';
import { type BundleFailure, fail, type Passed, quote } from './check.js';
import type { Chain } from './event-chain.js';
import type { EventBody, Mint, Tokens } from './our-bindings.js';
import type { PlannedStep } from './planned-steps.js';
import { validate } from './schemas/validate.js';

interface Context {
  chain: Chain;
  decoded: ReadonlyMap<string, EventBody>;
  tokens: Tokens;
  planned: PlannedStep[];
}

/** The rule job_created pins for a gated step, as far as the two-person rule reads it. */
const pinnedRule = z.looseObject({
  required_approvals: z.number().int().min(1),
  allowed_approver_groups: z.array(z.string().min(1)).min(1),
  distinct_groups: z.boolean(),
  allow_requester_approval: z.boolean(),
});
type PinnedRule = z.infer<typeof pinnedRule>;

/** Whom a gated `token_minted` event counted: each approver, the group they filled, their decision. */
const countedList = z.array(
  z.looseObject({ user_id: z.string().min(1), group: z.string().min(1), decision_id: z.number().int() }),
);
type Counted = z.infer<typeof countedList>[number];

/** Fails the verdict for one step: `step "<id>": <why>`. */
type StepFailure = (reason: BundleFailure, why: string) => never;

/** Where each decision was recorded and withdrawn, by chain position. */
interface Decisions {
  recorded: Map<number, number[]>;
  withdrawn: Map<number, number[]>;
}

function decisionsOf(ctx: Context): Decisions {
  const out: Decisions = { recorded: new Map(), withdrawn: new Map() };
  for (const [i, header] of ctx.chain.list.entries()) {
    const into =
      header.event_type === 'approval_recorded'
        ? out.recorded
        : header.event_type === 'approval_withdrawn'
          ? out.withdrawn
          : null;
    const id = ctx.decoded.get(header.event_hash_b64u)!.decision_id;
    if (into && typeof id === 'number') into.set(id, [...(into.get(id) ?? []), i]);
  }
  return out;
}

/** The counted list against the pinned rule, in `checkTwoPerson`'s order and with its reasons. */
function checkAgainstRule(
  counted: Counted[],
  rule: PinnedRule,
  requester: unknown,
  failStep: StepFailure,
): void {
  const invalid = (why: string) => failStep('APPROVAL_SNAPSHOT_INVALID', `its token_minted event ${why}`);
  const users = new Set<string>();
  const decisions = new Set<number>();
  const allowed = new Set(rule.allowed_approver_groups);
  for (const c of counted) {
    if (users.has(c.user_id)) invalid(`counted ${quote(c.user_id)} twice`);
    if (decisions.has(c.decision_id)) invalid(`counted decision ${c.decision_id} twice`);
    users.add(c.user_id);
    decisions.add(c.decision_id);
    if (!allowed.has(c.group))
      invalid(`counted ${quote(c.user_id)} for ${quote(c.group)}, a group the rule does not allow`);
  }
  if (!rule.allow_requester_approval) {
    if (typeof requester !== 'string')
      failStep('APPROVAL_SNAPSHOT_INVALID', 'job_created names no requester to exclude from the approvers');
    if (users.has(requester))
      failStep(
        'APPROVAL_BY_REQUESTER',
        `its token_minted event counted the requester ${quote(requester)}, which the rule does not allow`,
      );
  }
  if (counted.length < rule.required_approvals)
    failStep(
      'APPROVAL_QUORUM_NOT_MET',
      `its token_minted event counted ${counted.length} of ${rule.required_approvals} required approvals`,
    );
  const groups = counted.map((c) => c.group);
  if (rule.distinct_groups && new Set(groups).size !== groups.length)
    failStep(
      'APPROVAL_GROUPS_NOT_DISTINCT',
      'its token_minted event counted two approvers for one group although the rule asks for distinct groups',
    );
}

/**
 * Each counted decision is the approver's own `approval_recorded` event for this step, the
 * only one with its id, chained before the mint, and not withdrawn (`approval_withdrawn`)
 * between the two.
 */
function checkAgainstChain(
  counted: Counted[],
  p: PlannedStep,
  mint: Mint,
  ctx: Context,
  decisions: Decisions,
  failStep: StepFailure,
): void {
  const mintAt = ctx.chain.list.indexOf(mint.header);
  for (const c of counted) {
    const recorded = decisions.recorded.get(c.decision_id) ?? [];
    const at = recorded[0];
    const event = at === undefined ? undefined : ctx.decoded.get(ctx.chain.list[at]!.event_hash_b64u)!;
    if (
      at === undefined ||
      recorded.length !== 1 ||
      at > mintAt ||
      event?.step !== p.id ||
      event.user_id !== c.user_id
    )
      failStep(
        'APPROVAL_SNAPSHOT_INVALID',
        `its token_minted event counted ${quote(c.user_id)} without their approval_recorded event for this step before the mint`,
      );
    const withdrawn = (decisions.withdrawn.get(c.decision_id) ?? []).find((w) => w > at && w < mintAt);
    if (withdrawn !== undefined)
      failStep(
        'APPROVAL_WITHDRAWN_COUNTED',
        `its token_minted event counted the approval of ${quote(c.user_id)}, withdrawn before the mint (event_chain[${withdrawn}])`,
      );
  }
}

/**
 * The two-person rule read from the chain itself, for every gated mint whether or not it
 * carries a snapshot: the approvers its `token_minted` event counted (user, group, decision)
 * satisfy the rule job_created pinned for the step — enough of them, one person once, the
 * requester only where allowed, every group an allowed one and, where the rule says so, each
 * group filled once — and each is a standing approval recorded in the chain before the mint.
 * A mint chained before snapshots existed is held to this alone: how its approvers were found
 * in their groups was never recorded, so that part is not provable, and the message says so.
 */
export function checkCountedApprovals(ctx: Context): Passed {
  const created = ctx.decoded.get(ctx.chain.list[0]!.event_hash_b64u)!;
  const decisions = decisionsOf(ctx);
  const checked: string[] = [];
  const unprovable: string[] = [];
  for (const [i, p] of ctx.planned.entries()) {
    const mint = ctx.tokens.mints.get(p.id)?.[0];
    if (p.gate !== 'gated' || !mint) continue;
    const step = quote(p.id);
    const failStep: StepFailure = (reason, why) => fail(reason, null, `step ${step}: ${why}`);
    const rule = validate(pinnedRule, p.rule, `job_created.steps[${i}].rule`);
    if (!rule.ok) fail('BUNDLE_PAYLOAD_INVALID', null, rule.message);
    const list = validate(countedList, mint.body.counted, 'counted');
    if (!list.ok) failStep('APPROVAL_SNAPSHOT_INVALID', `its token_minted event's ${list.message}`);
    const counted = mint.body.counted as Counted[];
    checkAgainstRule(counted, p.rule as PinnedRule, created.requester_id, failStep);
    checkAgainstChain(counted, p, mint, ctx, decisions, failStep);
    (Object.hasOwn(mint.body, 'approval') ? checked : unprovable).push(step);
  }
  if (checked.length + unprovable.length === 0)
    return { message: 'no gated step minted a token: no counted approval to check' };
  const said = [
    `the approvals each gated mint counted satisfy job_created's rule, recorded for the step before the mint and not withdrawn: ${[...checked, ...unprovable].join(', ')}`,
  ];
  if (unprovable.length > 0)
    said.push(
      `${unprovable.join(', ')} minted before snapshots: how each approver was found in their group was not recorded and is not provable`,
    );
  return { message: said.join('; ') };
}
