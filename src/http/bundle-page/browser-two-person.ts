/**
 * The two-person rule in the page's verifier, as the server checks it (src/proofs/verify/
 * planned-steps.ts, two-person-check.ts, counted-approvals.ts): the same rules with the same
 * reasons, written for the page. The snapshot's own consistency is not re-written here: the
 * page inlines src/proofs/two-person.ts and passes its `checkTwoPerson` in. Inlined into the
 * page (see page-script.ts): imports only the page's other inlined modules.
 */
import type { ApprovalSnapshot, TwoPersonFailure } from '../../proofs/two-person.js';
import {
  type Chain,
  failWith,
  isObject,
  jcs,
  type Mint,
  type Obj,
  type Passed,
  printable,
  quote,
} from './browser-common.js';

export type TwoPersonCheck = (snapshot: ApprovalSnapshot) => TwoPersonFailure | null;

/** A step as job_created planned it: the chain, not the metadata beside it, says which steps needed approval and under which rule. */
export interface PlannedStep {
  id: string;
  tool: string;
  gate: 'auto' | 'gated';
  rule?: Obj;
}

const isPlannedStep = (v: unknown): v is PlannedStep =>
  isObject(v) &&
  typeof v.id === 'string' &&
  typeof v.tool === 'string' &&
  (v.gate === 'auto' || v.gate === 'gated') &&
  (v.rule === undefined || isObject(v.rule));

/**
 * job_created's planned steps, which must be the metadata's steps, in order, with the same tool
 * and gate: a step dropped from or re-gated in the metadata would escape the two-person check.
 */
export function plannedSteps(job: Obj, steps: Obj[]): PlannedStep[] {
  const planned = job.steps;
  if (!Array.isArray(planned) || !planned.every(isPlannedStep))
    failWith('BUNDLE_PAYLOAD_INVALID', 'job_created.steps is not a list of {id, tool, gate, rule?}');
  if (steps.length !== planned.length)
    failWith('PLAN_BINDING_MISMATCH', 'metadata lists other steps than job_created planned');
  for (const [i, p] of planned.entries()) {
    const s = steps[i]!;
    if (s.step !== p.id || s.tool !== p.tool || s.gate !== p.gate)
      failWith(
        'PLAN_BINDING_MISMATCH',
        `metadata step ${quote(s.step)} is not step ${quote(p.id)} as job_created planned it (tool, gate)`,
      );
    if (p.gate === 'gated' && p.rule === undefined)
      failWith('BUNDLE_PAYLOAD_INVALID', `job_created pins no rule for gated step ${quote(p.id)}`);
  }
  return planned;
}

/** A rule's two-person fields as comparable text (a missing field reads as null), as `twoPersonRuleText`. */
function ruleText(rule: unknown): string {
  const r = isObject(rule) ? rule : {};
  const fields = [
    'required_approvals',
    'allowed_approver_groups',
    'distinct_groups',
    'allow_requester_approval',
  ];
  return jcs(Object.fromEntries(fields.map((k) => [k, r[k] ?? null])));
}

export interface TwoPersonContext {
  /** The metadata's steps, one per planned step (checked by `plannedSteps`). */
  steps: Obj[];
  planned: PlannedStep[];
  chain: Chain;
  decoded: Map<string, Obj>;
  mints: Map<string, Mint[]>;
  /** metadata.claw_approvals.requester_id */
  requesterId: unknown;
  approvals: Obj[];
  twoPerson: TwoPersonCheck;
  passed: Passed;
}

/**
 * The snapshot against the chain: it is the record its step's `token_minted` event chained
 * (and dated), under the rule job_created pinned and the job's requester, and each approver it
 * counts is a person whose `approval_recorded` event for this step came before the mint, whom
 * the mint counted for the same group, and whose approval receipt the bundle carries.
 */
function checkSnapshotAgainstChain(snap: Obj, p: PlannedStep, mint: Mint, ctx: TwoPersonContext): void {
  const bad = (why: string): never => failWith('APPROVAL_SNAPSHOT_INVALID', `step ${quote(p.id)}: ${why}`);
  if (snap.mint_event_hash_b64u !== mint.header.event_hash_b64u)
    bad('mint_event_hash_b64u is not its token_minted event');
  const { mint_event_hash_b64u: _, ...record } = snap;
  if (jcs(mint.body.approval ?? null) !== jcs(record))
    bad('the snapshot is not the record its token_minted event chained');
  if (snap.evaluated_at !== mint.header.timestamp)
    bad('evaluated_at is not the time of its token_minted event');
  const created = ctx.decoded.get(String(ctx.chain.list[0]!.event_hash_b64u))!;
  if (snap.requester_id !== created.requester_id || snap.requester_id !== ctx.requesterId)
    bad("the requester is not the job's");
  if (ruleText(snap.rule) !== ruleText(p.rule)) bad('the rule is not the one job_created pinned');

  const approvers = snap.approvers as Obj[];
  const mintAt = ctx.chain.list.indexOf(mint.header);
  const counted = Array.isArray(mint.body.counted) ? (mint.body.counted as unknown[]) : [];
  for (const [i, a] of approvers.entries()) {
    const header = ctx.chain.byHash.get(String(a.approval_event_hash_b64u));
    const event = ctx.decoded.get(String(a.approval_event_hash_b64u)) ?? {};
    if (
      header?.event_type !== 'approval_recorded' ||
      ctx.chain.list.indexOf(header) > mintAt ||
      event.step !== p.id ||
      event.user_id !== a.user_id ||
      (event.post_id ?? null) !== a.post_id
    )
      bad(`approver ${quote(a.user_id)} has no approval_recorded event for this step before its mint`);
    const c = counted[i];
    if (
      !isObject(c) ||
      c.user_id !== a.user_id ||
      c.group !== a.counted_for ||
      c.decision_id !== event.decision_id
    )
      bad(`its token_minted event did not count approver ${quote(a.user_id)} for ${quote(a.counted_for)}`);
  }
  if (counted.length !== approvers.length)
    bad('its token_minted event counted more approvers than the snapshot');

  const receipted = ctx.approvals
    .filter(
      (r) =>
        r.approval_type === 'explicit_approve' &&
        ctx.decoded.get(String(isObject(r.binding) ? r.binding.event_hash_b64u : undefined))?.step === p.id,
    )
    .map((r) => String(r.approver_subject))
    .sort();
  const named = approvers.map((a) => String(a.user_id)).sort();
  if (jcs(receipted) !== jcs(named)) bad('its approval receipts name other approvers than the snapshot');
}

const UNRECORDED = 'MINTED_BEFORE_SNAPSHOTS';

/**
 * One step: an auto step, or a gated one that never minted, carries no snapshot; a gated mint
 * carries the one its `token_minted` event chained, which must satisfy its rule. A mint chained
 * before snapshots existed (its payload has no `approval` key) is said, not failed; claiming
 * that for a mint whose event holds a snapshot is stripping it, and fails.
 */
function checkStepApproval(
  s: Obj,
  p: PlannedStep,
  ctx: TwoPersonContext,
): 'checked' | 'unrecorded' | 'not_needed' {
  const bad = (why: string): never => failWith('APPROVAL_SNAPSHOT_INVALID', `step ${quote(p.id)}: ${why}`);
  const mints = ctx.mints.get(p.id) ?? [];
  if (mints.length > 1) bad('has more than one token_minted event');
  const mint = mints[0];
  if (mint && mint.body.gate !== p.gate)
    bad(`its token_minted event says gate ${quote(mint.body.gate)}, job_created planned ${p.gate}`);
  const sealed = Object.hasOwn(s, 'approval');
  const unrecorded = s.approval_unrecorded;
  if (unrecorded !== undefined && unrecorded !== UNRECORDED)
    bad(`approval_unrecorded is ${quote(unrecorded)}, not ${UNRECORDED}`);

  if (p.gate === 'auto' || !mint) {
    const why = p.gate === 'auto' ? 'needed no approval' : 'never minted';
    if (sealed && s.approval !== null) bad(`${why} but carries an approval snapshot`);
    if (unrecorded !== undefined) bad(`${why} but says its snapshot went unrecorded`);
    if (mint && (mint.body.approval ?? null) !== null)
      bad('its token_minted event records an approval snapshot for an auto step');
    return 'not_needed';
  }
  if (!sealed || s.approval === null) {
    if (Object.hasOwn(mint.body, 'approval'))
      bad('its token_minted event chained an approval snapshot that the bundle does not carry');
    if (sealed && unrecorded === undefined) bad('a gated step minted without an approval snapshot');
    return 'unrecorded';
  }
  if (unrecorded !== undefined) bad('carries an approval snapshot yet says it went unrecorded');
  const failure = ctx.twoPerson(s.approval as ApprovalSnapshot);
  if (failure) failWith(failure.reason, `step ${quote(p.id)}: ${printable(failure.message)}`);
  checkSnapshotAgainstChain(s.approval as Obj, p, mint, ctx);
  return 'checked';
}

/**
 * Issue 10 section 3 in the page: every gated step that minted carries the snapshot taken when
 * its quorum was evaluated, `checkTwoPerson` (src/proofs/two-person.ts, inlined as it is) finds
 * the rule satisfied, and the snapshot is the one the chain recorded.
 */
export function checkApprovalSnapshots(ctx: TwoPersonContext): void {
  const seen = { checked: [] as string[], unrecorded: [] as string[], not_needed: [] as string[] };
  for (const [i, p] of ctx.planned.entries())
    seen[checkStepApproval(ctx.steps[i]!, p, ctx)].push(quote(p.id));
  if (seen.checked.length > 0)
    ctx.passed(
      'two_person',
      `two-person rule recomputed from the sealed snapshot for ${seen.checked.join(', ')}`,
    );
  if (seen.unrecorded.length > 0)
    ctx.passed(
      'two_person_unrecorded',
      `${seen.unrecorded.join(', ')}: minted before approval snapshots were sealed, so how each approver was found in their group cannot be recomputed here`,
      null,
    );
  if (seen.checked.length + seen.unrecorded.length === 0)
    ctx.passed('two_person', 'no gated step minted a token: no approval to recompute', null);
}

interface Counted {
  user_id: string;
  group: string;
  decision_id: number;
}

const isName = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/** The rule job_created pins for a gated step, as far as the two-person rule reads it. */
const isPinnedRule = (r: unknown): boolean =>
  isObject(r) &&
  Number.isInteger(r.required_approvals) &&
  (r.required_approvals as number) >= 1 &&
  Array.isArray(r.allowed_approver_groups) &&
  r.allowed_approver_groups.length > 0 &&
  r.allowed_approver_groups.every(isName) &&
  typeof r.distinct_groups === 'boolean' &&
  typeof r.allow_requester_approval === 'boolean';

/** Whom a gated `token_minted` event counted: each approver, the group they filled, their decision. */
const isCountedList = (v: unknown): v is Counted[] =>
  Array.isArray(v) &&
  v.every((c) => isObject(c) && isName(c.user_id) && isName(c.group) && Number.isInteger(c.decision_id));

/** Where each decision was recorded and withdrawn, by chain position. */
function decisionsOf(chain: Chain, decoded: Map<string, Obj>, type: string): Map<unknown, number[]> {
  const out = new Map<unknown, number[]>();
  for (const [i, header] of chain.list.entries()) {
    if (header.event_type !== type) continue;
    const id = decoded.get(String(header.event_hash_b64u))!.decision_id;
    if (typeof id === 'number') out.set(id, [...(out.get(id) ?? []), i]);
  }
  return out;
}

/** The counted list against the pinned rule, in `checkTwoPerson`'s order and with its reasons. */
function checkCountedAgainstRule(counted: Counted[], rule: Obj, requester: unknown, step: string): void {
  const bad = (why: string): never => failWith('APPROVAL_SNAPSHOT_INVALID', `step ${step}: ${why}`);
  const users = new Set<string>();
  const decisions = new Set<number>();
  const allowed = new Set(rule.allowed_approver_groups as string[]);
  for (const c of counted) {
    if (users.has(c.user_id)) bad(`its token_minted event counted ${quote(c.user_id)} twice`);
    if (decisions.has(c.decision_id)) bad(`its token_minted event counted decision ${c.decision_id} twice`);
    users.add(c.user_id);
    decisions.add(c.decision_id);
    if (!allowed.has(c.group))
      bad(
        `its token_minted event counted ${quote(c.user_id)} for ${quote(c.group)}, a group the rule does not allow`,
      );
  }
  if (!rule.allow_requester_approval && typeof requester !== 'string')
    bad('job_created names no requester to exclude from the approvers');
  if (!rule.allow_requester_approval && users.has(requester as string))
    failWith(
      'APPROVAL_BY_REQUESTER',
      `step ${step}: its token_minted event counted the requester ${quote(requester)}, which the rule does not allow`,
    );
  if (counted.length < (rule.required_approvals as number))
    failWith(
      'APPROVAL_QUORUM_NOT_MET',
      `step ${step}: its token_minted event counted ${counted.length} of ${String(rule.required_approvals)} required approvals`,
    );
  const groups = counted.map((c) => c.group);
  if (rule.distinct_groups && new Set(groups).size !== groups.length)
    failWith(
      'APPROVAL_GROUPS_NOT_DISTINCT',
      `step ${step}: its token_minted event counted two approvers for one group although the rule asks for distinct groups`,
    );
}

/**
 * Each counted decision is the approver's own `approval_recorded` event for this step, the only
 * one with its id, chained before the mint, and not withdrawn (`approval_withdrawn`) before it.
 */
function checkCountedAgainstChain(
  counted: Counted[],
  p: PlannedStep,
  mint: Mint,
  ctx: TwoPersonContext,
  recorded: Map<unknown, number[]>,
  withdrawn: Map<unknown, number[]>,
): void {
  const mintAt = ctx.chain.list.indexOf(mint.header);
  for (const c of counted) {
    const at = recorded.get(c.decision_id) ?? [];
    const event =
      at[0] === undefined ? undefined : ctx.decoded.get(String(ctx.chain.list[at[0]]!.event_hash_b64u));
    if (at.length !== 1 || at[0]! > mintAt || event?.step !== p.id || event.user_id !== c.user_id)
      failWith(
        'APPROVAL_SNAPSHOT_INVALID',
        `step ${quote(p.id)}: its token_minted event counted ${quote(c.user_id)} without their approval_recorded event for this step before the mint`,
      );
    const undone = (withdrawn.get(c.decision_id) ?? []).find((w) => w > at[0]! && w < mintAt);
    if (undone !== undefined)
      failWith(
        'APPROVAL_WITHDRAWN_COUNTED',
        `step ${quote(p.id)}: its token_minted event counted the approval of ${quote(c.user_id)}, withdrawn before the mint (event_chain[${undone}])`,
      );
  }
}

/**
 * The two-person rule read from the chain itself, for every gated mint whether or not it
 * carries a snapshot (as the server's `checkCountedApprovals`): the approvers its
 * `token_minted` event counted satisfy the rule job_created pinned for the step, and each is a
 * standing approval recorded for the step before the mint. A mint of before snapshots is held
 * to this alone: how its approvers were found in their groups was never recorded.
 */
export function checkCountedApprovals(ctx: TwoPersonContext): void {
  const created = ctx.decoded.get(String(ctx.chain.list[0]!.event_hash_b64u))!;
  const recorded = decisionsOf(ctx.chain, ctx.decoded, 'approval_recorded');
  const withdrawn = decisionsOf(ctx.chain, ctx.decoded, 'approval_withdrawn');
  const checked: string[] = [];
  for (const [i, p] of ctx.planned.entries()) {
    const mint = ctx.mints.get(p.id)?.[0];
    if (p.gate !== 'gated' || !mint) continue;
    const step = quote(p.id);
    if (!isPinnedRule(p.rule))
      failWith('BUNDLE_PAYLOAD_INVALID', `job_created.steps[${i}].rule is not a two-person rule`);
    if (!isCountedList(mint.body.counted))
      failWith(
        'APPROVAL_SNAPSHOT_INVALID',
        `step ${step}: its token_minted event's counted is not a list of {user_id, group, decision_id}`,
      );
    const counted = mint.body.counted as Counted[];
    checkCountedAgainstRule(counted, p.rule!, created.requester_id, step);
    checkCountedAgainstChain(counted, p, mint, ctx, recorded, withdrawn);
    checked.push(step);
  }
  ctx.passed(
    'counted_approvals',
    checked.length === 0
      ? 'no gated step minted a token: no counted approval to check'
      : `the approvals each gated mint counted satisfy job_created's rule, recorded for the step before the mint and not withdrawn: ${checked.join(', ')}`,
    checked.length === 0 ? null : true,
  );
}
