import { canonicalJson } from '../../crypto/jcs.js';
import { type ApprovalSnapshot, checkTwoPerson } from '../two-person.js';
import { fail, isRecord, type Passed, printable, quote } from './check.js';
import type { Chain } from './event-chain.js';
import type { EventBody, Mint, OurMetadata, Tokens } from './our-bindings.js';
import { type PlannedStep, twoPersonRuleText } from './planned-steps.js';
import type { HumanApprovalReceipt } from './schemas/human-approval-receipt.js';

interface Context {
  ours: OurMetadata;
  chain: Chain;
  decoded: ReadonlyMap<string, EventBody>;
  tokens: Tokens;
  planned: PlannedStep[];
  approvals: HumanApprovalReceipt[];
}

/** A step's metadata entry, as far as this check reads it (sealed by seal-bundle.ts). */
interface SealedStep {
  step: string;
  approval?: unknown;
  approval_unrecorded?: unknown;
}

const UNRECORDED = 'MINTED_BEFORE_SNAPSHOTS';

/**
 * The snapshot against the chain: it is the record its step's `token_minted` event chained
 * (and dated), under the rule job_created pinned and the job's requester, and each approver it
 * counts is a person whose `approval_recorded` event for this step came before the mint, whom
 * the mint counted for the same group, and whose approval receipt the bundle carries.
 */
function checkAgainstChain(snap: ApprovalSnapshot, p: PlannedStep, mint: Mint, ctx: Context): void {
  const bad = (why: string): never => fail('APPROVAL_SNAPSHOT_INVALID', null, `step ${quote(p.id)}: ${why}`);
  if (snap.mint_event_hash_b64u !== mint.header.event_hash_b64u)
    bad('mint_event_hash_b64u is not its token_minted event');
  const { mint_event_hash_b64u: _, ...record } = snap;
  if (canonicalJson(mint.body.approval ?? null) !== canonicalJson(record))
    bad('the snapshot is not the record its token_minted event chained');
  if (snap.evaluated_at !== mint.header.timestamp)
    bad('evaluated_at is not the time of its token_minted event');
  const created = ctx.decoded.get(ctx.chain.list[0]!.event_hash_b64u)!;
  const requester = (ctx.ours.claw_approvals as { requester_id?: unknown }).requester_id;
  if (snap.requester_id !== created.requester_id || snap.requester_id !== requester)
    bad("the requester is not the job's");
  if (twoPersonRuleText(snap.rule as unknown as Record<string, unknown>) !== twoPersonRuleText(p.rule))
    bad('the rule is not the one job_created pinned');

  const mintAt = ctx.chain.list.indexOf(mint.header);
  const counted = Array.isArray(mint.body.counted) ? (mint.body.counted as unknown[]) : [];
  for (const [i, a] of snap.approvers.entries()) {
    const header = ctx.chain.byHash.get(a.approval_event_hash_b64u);
    const event = ctx.decoded.get(a.approval_event_hash_b64u) ?? {};
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
      !isRecord(c) ||
      c.user_id !== a.user_id ||
      c.group !== a.counted_for ||
      c.decision_id !== event.decision_id
    )
      bad(`its token_minted event did not count approver ${quote(a.user_id)} for ${quote(a.counted_for)}`);
  }
  if (counted.length !== snap.approvers.length)
    bad('its token_minted event counted more approvers than the snapshot');

  const receipted = ctx.approvals
    .filter(
      (r) =>
        r.approval_type === 'explicit_approve' &&
        ctx.decoded.get(String(r.binding?.event_hash_b64u))?.step === p.id,
    )
    .map((r) => r.approver_subject)
    .sort();
  const approvers = snap.approvers.map((a) => a.user_id).sort();
  if (canonicalJson(receipted) !== canonicalJson(approvers))
    bad('its approval receipts name other approvers than the snapshot');
}

type Outcome = 'checked' | 'unrecorded' | 'not_needed';

/**
 * One step: an auto step, or a gated one that never minted, carries no snapshot; a gated
 * mint carries the one its `token_minted` event chained, which must satisfy its rule. A mint
 * chained before snapshots existed (its payload has no `approval` key) is said, not failed
 * here (`checkCountedApprovals` still holds what it counted to the pinned rule); claiming
 * that for a mint whose event holds a snapshot is stripping it, and fails.
 */
function checkStep(s: SealedStep, p: PlannedStep, ctx: Context): Outcome {
  const bad = (why: string): never => fail('APPROVAL_SNAPSHOT_INVALID', null, `step ${quote(p.id)}: ${why}`);
  const mints = ctx.tokens.mints.get(p.id) ?? [];
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
  const failure = checkTwoPerson(s.approval as ApprovalSnapshot);
  if (failure) fail(failure.reason, null, `step ${quote(p.id)}: ${printable(failure.message)}`);
  checkAgainstChain(s.approval as ApprovalSnapshot, p, mint, ctx);
  return 'checked';
}

/**
 * Issue 10 section 3, the two-person rule checked offline: every gated step that minted
 * carries the snapshot taken when its quorum was evaluated, `checkTwoPerson` (the code the
 * bundle page runs) finds the rule satisfied, and the snapshot is the one the chain recorded.
 * Failures carry the snapshot's own reason (APPROVAL_QUORUM_NOT_MET, APPROVAL_BY_REQUESTER,
 * APPROVAL_GROUPS_NOT_DISTINCT) or APPROVAL_SNAPSHOT_INVALID, as the page says them.
 */
export function checkTwoPersonRule(ctx: Context): Passed {
  const seen: Record<Outcome, string[]> = { checked: [], unrecorded: [], not_needed: [] };
  for (const [i, p] of ctx.planned.entries())
    seen[checkStep(ctx.ours.claw_approvals.steps[i] as SealedStep, p, ctx)].push(quote(p.id));
  const said: string[] = [];
  if (seen.checked.length > 0)
    said.push(`two-person rule recomputed from the sealed snapshot for ${seen.checked.join(', ')}`);
  if (seen.unrecorded.length > 0)
    said.push(`not recomputable (sealed before snapshots): ${seen.unrecorded.join(', ')}`);
  if (said.length === 0) said.push('no gated step minted a token: no approval to recompute');
  return { message: said.join('; ') };
}
