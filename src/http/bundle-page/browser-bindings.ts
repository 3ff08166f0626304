/**
 * What a claw-approvals bundle adds to the Claw Bureau format, checked in the page as the
 * server's `ours.*` checks do (src/proofs/verify/our-bindings.ts, token-lifecycle.ts,
 * approval-events.ts): event payloads against their hashes, issued_at, policy and plan, each
 * step's CST, the tokens' lifecycle, each approval receipt against its event; then the steps
 * job_created planned and each gated step's two-person rule (browser-two-person.ts). Inlined
 * into the page (see page-script.ts): imports only the page's other inlined modules.
 */
import {
  type Chain,
  failWith,
  isObject,
  jcs,
  type Mint,
  type Obj,
  type Passed,
  quote,
  sha256B64u,
} from './browser-common.js';
import {
  checkApprovalSnapshots,
  checkCountedApprovals,
  plannedSteps,
  type TwoPersonCheck,
  type TwoPersonContext,
} from './browser-two-person.js';

/** Each step's `token_minted` events, in chain order (as the server's `mintsByStep`). */
function mintsByStep(chain: Chain, decoded: Map<string, Obj>): Map<string, Mint[]> {
  const out = new Map<string, Mint[]>();
  for (const header of chain.list) {
    if (header.event_type !== 'token_minted') continue;
    const body = decoded.get(String(header.event_hash_b64u))!;
    const step = String(body.step);
    out.set(step, [...(out.get(step) ?? []), { header, body }]);
  }
  return out;
}

function sortedUnique(values: unknown[]): string[] {
  return [...new Set(values.map(String))].sort();
}

/** token_scope_hash_b64u as `tokenScopeHash` computes it (JCS of the authorization-relevant claims). */
async function tokenScopeHash(cst: Obj, policyHash: string, missionId: string): Promise<string> {
  return sha256B64u(
    jcs({
      token_version: '1',
      sub: cst.sub,
      aud: sortedUnique([cst.aud]),
      scope: sortedUnique(cst.scope as unknown[]),
      policy_hash_b64u: policyHash,
      mission_id: missionId,
    }),
  );
}

/** Events after which a job mints and uses nothing: its end, and the ways it ends early. */
const TERMINAL = ['job_ended', 'job_revoked', 'job_cancelled', 'job_expired'];
/** Events that name a minted token by its jti. */
const TOKEN_USES = ['token_claimed', 'token_redeemed', 'token_revoked'];

/**
 * Tokens within the job's lifecycle, as the server's `checkTokenLifecycle`: a token is minted
 * only for a step job_created planned, once per token id and never after the job ended (or was
 * revoked, cancelled or expired); it is claimed, redeemed or revoked only after its mint, for
 * the step it was minted for, and after the job's end only revoked.
 */
function checkTokenLifecycle(chain: Chain, decoded: Map<string, Obj>, job: Obj): string {
  const planned = new Set(
    (Array.isArray(job.steps) ? job.steps : []).map((s) => (isObject(s) ? s.id : undefined)),
  );
  const minted = new Map<unknown, { step: unknown; tokenHash: unknown }>();
  let ended: string | null = null;
  for (const [i, header] of chain.list.entries()) {
    const type = String(header.event_type);
    const body = decoded.get(String(header.event_hash_b64u))!;
    const at = `event_chain[${i}] (${quote(type)})`;
    if (TERMINAL.includes(type)) {
      ended ??= type;
    } else if (type === 'token_minted') {
      if (!planned.has(body.step))
        failWith(
          'PLAN_BINDING_MISMATCH',
          `${at} mints a token for step ${quote(body.step)}, which job_created did not plan`,
        );
      if (ended !== null) failWith('EVENT_CHAIN_INVALID', `${at} mints a token after ${ended}`);
      if (typeof body.jti !== 'string' || minted.has(body.jti))
        failWith('EVENT_CHAIN_INVALID', `${at} mints token ${quote(body.jti)}, which is not a new token id`);
      minted.set(body.jti, { step: body.step, tokenHash: body.token_hash });
    } else if (TOKEN_USES.includes(type)) {
      const token = minted.get(body.jti);
      if (token === undefined)
        failWith(
          'EVENT_CHAIN_INVALID',
          `${at} names token ${quote(body.jti)} before any token_minted event of it`,
        );
      if (body.step !== undefined && body.step !== token.step)
        failWith(
          'EVENT_CHAIN_INVALID',
          `${at} names token ${quote(body.jti)} for another step than it was minted for`,
        );
      if (body.token_hash !== undefined && body.token_hash !== token.tokenHash)
        failWith(
          'EVENT_CHAIN_INVALID',
          `${at} names token ${quote(body.jti)} with another token_hash than its mint`,
        );
      if (ended !== null && type !== 'token_revoked')
        failWith('EVENT_CHAIN_INVALID', `${at} uses token ${quote(body.jti)} after ${ended}`);
    }
  }
  return `${minted.size} tokens minted for planned steps before the job's end, each used only after its mint`;
}

/** The event each kind of approval receipt records, in a claw-approvals chain. */
const EVENT_OF: Record<string, string> = {
  explicit_approve: 'approval_recorded',
  explicit_deny: 'step_denied',
  auto_approve: 'token_minted',
};

interface ApprovalContext {
  chain: Chain;
  decoded: Map<string, Obj>;
  mints: Map<string, Mint[]>;
  scopeOfStep: Map<string, string>;
  /** The token_scope_hash_b64u the plan gave each step at job_created. */
  plannedScope: Map<string, unknown>;
  policy: Obj;
  planHash: string;
}

const countsDecision = (mint: Mint, userId: unknown, decisionId: unknown) =>
  Array.isArray(mint.body.counted) &&
  (mint.body.counted as unknown[]).some(
    (c) => isObject(c) && c.user_id === userId && c.decision_id === decisionId,
  );

/**
 * One receipt against the event it is bound to (as the server's approval-events.ts): the event
 * records that kind of decision, by that person (or, for an auto approval, the policy) at that
 * time, in a step whose policy, plan, scope and minted CST the receipt repeats.
 */
function checkApprovalEvent(r: Obj, i: number, ctx: ApprovalContext): void {
  const where = `human_approval_receipts[${i}]`;
  const bad = (reason: string, why: string): never => failWith(reason, `${where} ${why}`);
  const binding = r.binding as Obj;
  const header = ctx.chain.byHash.get(String(binding.event_hash_b64u))!;
  const event = ctx.decoded.get(String(binding.event_hash_b64u))!;
  const type = String(r.approval_type);
  const expected = EVENT_OF[type];
  if (expected === undefined)
    bad('APPROVAL_RECEIPT_BINDING_MISMATCH', `is a ${type}, which this project never records`);
  if (header.event_type !== expected)
    bad(
      'APPROVAL_RECEIPT_BINDING_MISMATCH',
      `(${type}) points at a ${quote(header.event_type)} event, not ${String(expected)}`,
    );
  const policyHash = ctx.policy.policy_hash_b64u;
  if (type === 'auto_approve') {
    if (event.gate !== 'auto')
      bad('APPROVAL_RECEIPT_BINDING_MISMATCH', 'is an auto approval of a gated step');
    if (r.approver_subject !== `policy:${String(ctx.policy.name)}` || r.approver_method !== 'policy_auto')
      bad(
        'APPROVAL_RECEIPT_BINDING_MISMATCH',
        `does not name the policy ${quote(ctx.policy.name)} as its approver`,
      );
  } else {
    if (event.user_id !== r.approver_subject)
      bad('APPROVAL_RECEIPT_BINDING_MISMATCH', 'names another approver than its event');
    if (r.approver_method === 'policy_auto' || r.approver_method === 'timeout')
      bad(
        'APPROVAL_RECEIPT_BINDING_MISMATCH',
        `claims approver_method ${String(r.approver_method)} for a person's decision`,
      );
  }
  if (r.timestamp !== header.timestamp)
    bad('APPROVAL_RECEIPT_BINDING_MISMATCH', "is not dated at its event's time");
  if (r.policy_hash_b64u !== policyHash || binding.policy_hash !== policyHash)
    bad('POLICY_BINDING_MISMATCH', 'names another policy');
  if (r.plan_hash_b64u !== ctx.planHash) bad('PLAN_BINDING_MISMATCH', 'names another plan');
  const step = String(event.step);
  if (type === 'explicit_deny') {
    const scope = ctx.plannedScope.get(step);
    if (r.scope_hash_b64u !== scope || binding.token_scope_hash_b64u !== scope)
      bad('TOKEN_BINDING_MISMATCH', "names another scope than its step's planned one");
    if (r.minted_capability_id !== undefined || r.minted_capability_ttl_seconds !== undefined)
      bad('APPROVAL_RECEIPT_INVALID', 'is a deny that names a minted CST');
    return;
  }
  const scope = ctx.scopeOfStep.get(step);
  if (scope === undefined || r.scope_hash_b64u !== scope || binding.token_scope_hash_b64u !== scope)
    bad('TOKEN_BINDING_MISMATCH', "names another scope than its step's CST");
  const mints = ctx.mints.get(step) ?? [];
  const mint =
    type === 'auto_approve'
      ? mints.find((m) => m.header === header)
      : mints.find(
          (m) =>
            ctx.chain.list.indexOf(m.header) > ctx.chain.list.indexOf(header) &&
            countsDecision(m, r.approver_subject, event.decision_id),
        );
  if (!mint) bad('APPROVAL_RECEIPT_BINDING_MISMATCH', "was not counted toward its step's token");
  if (r.minted_capability_id !== mint!.body.jti)
    bad('TOKEN_BINDING_MISMATCH', 'does not name the CST its approval minted');
  if (r.minted_capability_ttl_seconds !== Number(mint!.body.exp) - Number(mint!.body.iat))
    bad('TOKEN_BINDING_MISMATCH', "names another lifetime than its CST's");
}

/**
 * Every decision the chain records as counted, denied or auto-approved has its receipt, once
 * (as the server's `checkComplete`): a bundle cannot drop a counted approval nor show one twice.
 */
function checkEveryDecisionReceipted(approvals: Obj[], ctx: ApprovalContext): void {
  const sealed = new Set<string>();
  for (const [i, r] of approvals.entries()) {
    const key = `${String((r.binding as Obj).event_hash_b64u)}|${String(r.approver_subject)}`;
    if (sealed.has(key))
      failWith(
        'APPROVAL_RECEIPT_BINDING_MISMATCH',
        `human_approval_receipts[${i}] repeats a decision already receipted`,
      );
    sealed.add(key);
  }
  const approvalEvent = new Map<unknown, string>();
  for (const h of ctx.chain.list)
    if (h.event_type === 'approval_recorded')
      approvalEvent.set(ctx.decoded.get(String(h.event_hash_b64u))!.decision_id, String(h.event_hash_b64u));
  const missing = (what: string): never =>
    failWith('APPROVAL_RECEIPT_BINDING_MISMATCH', `no human approval receipt records ${what}`);
  for (const h of ctx.chain.list) {
    const hash = String(h.event_hash_b64u);
    const body = ctx.decoded.get(hash)!;
    if (h.event_type === 'step_denied' && !sealed.has(`${hash}|${String(body.user_id)}`))
      missing(`the denial of step ${quote(body.step)}`);
    if (h.event_type !== 'token_minted') continue;
    if (body.gate === 'auto') {
      if (!sealed.has(`${hash}|policy:${String(ctx.policy.name)}`))
        missing(`the auto approval of step ${quote(body.step)}`);
      continue;
    }
    for (const c of Array.isArray(body.counted) ? (body.counted as unknown[]) : []) {
      const counted = isObject(c) ? c : {};
      const recorded = approvalEvent.get(counted.decision_id);
      if (recorded !== undefined && !sealed.has(`${recorded}|${String(counted.user_id)}`))
        missing(`an approval counted toward step ${quote(body.step)}`);
    }
  }
}

/** Every event's payload is in the metadata and hashes to the event's `payload_hash_b64u`. */
async function decodeEventPayloads(chain: Chain, payloads: Obj[]): Promise<Map<string, Obj>> {
  const payloadOf = new Map<unknown, unknown>();
  for (const p of payloads) payloadOf.set(p.event_id, p.payload);
  const decoded = new Map<string, Obj>();
  for (const e of chain.list) {
    if (!payloadOf.has(e.event_id))
      failWith('EVENT_PAYLOAD_MISMATCH', `event ${quote(e.event_id)} has no payload in metadata`);
    const body = payloadOf.get(e.event_id);
    if (!isObject(body))
      failWith('BUNDLE_PAYLOAD_INVALID', `the payload of event ${quote(e.event_id)} is not an object`);
    if ((await sha256B64u(jcs(body))) !== e.payload_hash_b64u)
      failWith('EVENT_PAYLOAD_MISMATCH', `the payload of event ${quote(e.event_id)} does not match its hash`);
    decoded.set(String(e.event_hash_b64u), body as Obj);
  }
  if (payloadOf.size !== chain.list.length || payloads.length !== chain.list.length)
    failWith('EVENT_PAYLOAD_MISMATCH', 'metadata carries payloads of events not in the chain');
  return decoded;
}

/** Each step's CST recomputes to the scope hash its `token_minted` event recorded; answers the scope hash by step. */
async function checkTokens(o: Obj, steps: Obj[], mints: Map<string, Mint[]>): Promise<Map<string, string>> {
  const policyHash = String((o.policy as Obj).policy_hash_b64u);
  const planHash = String(o.plan_hash_b64u);
  const scopeOfStep = new Map<string, string>();
  for (const s of steps) {
    if (s.cst === null) continue;
    const cst = s.cst as Obj;
    const m = mints.get(String(s.step))?.find((x) => x.body.jti === cst.jti)?.body;
    const scope = cst.scope;
    if (!m || !Array.isArray(scope) || typeof cst.aud !== 'string')
      failWith('TOKEN_BINDING_MISMATCH', `the CST binding of step ${quote(s.step)} does not recompute`);
    const recomputed = await tokenScopeHash(cst, policyHash, String(o.job_id));
    const bound =
      recomputed === cst.token_scope_hash_b64u &&
      m!.token_scope_hash_b64u === recomputed &&
      m!.token_hash === cst.token_hash &&
      m!.policy_hash_b64u === policyHash &&
      scope.includes(`plan:${planHash}`) &&
      scope.includes(`step:${String(s.step)}`) &&
      scope.includes(`tool:${String(s.tool)}`);
    if (!bound)
      failWith('TOKEN_BINDING_MISMATCH', `the CST binding of step ${quote(s.step)} does not recompute`);
    scopeOfStep.set(String(s.step), recomputed);
  }
  return scopeOfStep;
}

/**
 * Everything a claw-approvals bundle adds, as the server's `ours.*` checks and in their order.
 * The signed policy is not in the bundle (it is named by hash: clawverify caps
 * payload.metadata at 16 KiB), so its rules are recomputed by the server and `bundle verify`.
 */
export async function checkOurBindings(
  payload: Obj,
  chain: Chain,
  issuedAt: string,
  approvals: Obj[],
  twoPerson: TwoPersonCheck,
  passed: Passed,
): Promise<void> {
  const metadata = isObject(payload.metadata) ? payload.metadata : {};
  const ours = metadata.claw_approvals as Obj | undefined;
  const payloads = metadata.event_payloads;
  if (ours === undefined && payloads === undefined) {
    passed('bindings', 'not a claw-approvals bundle: no policy, plan or token bindings to check', null);
    return;
  }
  if (
    !isObject(ours) ||
    !Array.isArray(payloads) ||
    !payloads.every(isObject) ||
    !Array.isArray(ours.steps) ||
    !ours.steps.every(
      (s) =>
        isObject(s) &&
        typeof s.step === 'string' &&
        typeof s.tool === 'string' &&
        (s.cst === null || isObject(s.cst)),
    ) ||
    !isObject(ours.policy)
  ) {
    failWith('BUNDLE_PAYLOAD_INVALID', 'metadata.claw_approvals or metadata.event_payloads is malformed');
  }
  const o = ours as Obj;
  const policy = o.policy as Obj;
  const steps = o.steps as Obj[];
  if (o.job_id !== chain.runId)
    failWith('EVENT_RUN_ID_MISMATCH', 'metadata names another job than the event chain');
  if (chain.list.at(-1)?.timestamp !== issuedAt)
    failWith('BUNDLE_ISSUED_AT_MISMATCH', 'issued_at is not the time of the last event');
  const decoded = await decodeEventPayloads(chain, payloads as Obj[]);
  passed('event_payloads', `every event's payload hashes (JCS, SHA-256) to the value chained`);
  passed('issued_at', `issued at the last event, ${issuedAt}`);

  const policyHash = String(policy.policy_hash_b64u);
  const planHash = String(o.plan_hash_b64u);
  const first = chain.list[0];
  const created = first ? decoded.get(String(first.event_hash_b64u)) : undefined;
  if (!first || !created || first.event_type !== 'job_created')
    failWith('EVENT_CHAIN_INVALID', 'the chain must start with job_created');
  const job = created as Obj;
  if (job.policy_hash_b64u !== policyHash)
    failWith('POLICY_BINDING_MISMATCH', 'job_created names another policy');
  if (job.plan_hash_b64u !== planHash || (await sha256B64u(jcs(job.plan))) !== planHash)
    failWith('PLAN_BINDING_MISMATCH', 'the plan does not hash to plan_hash_b64u');
  passed('plan', `the plan hashes to ${planHash}, and job_created pins it with policy ${policyHash}`);
  passed(
    'policy',
    `policy ${String(policy.name)} is named by its hash only: the signed policy is not in the bundle, so its rules are recomputed by the server and by \`bundle verify\`, not here`,
    null,
  );

  const mints = mintsByStep(chain, decoded);
  const scopeOfStep = await checkTokens(o, steps, mints);
  const tokens = scopeOfStep.size;
  passed(
    'tokens',
    `${tokens} step token${tokens === 1 ? '' : 's'}: each scope hash recomputes and matches its mint event`,
  );
  passed('token_lifecycle', checkTokenLifecycle(chain, decoded, job));

  const plannedScope = new Map(
    (Array.isArray(job.steps) ? job.steps : []).map((s) => [
      String(isObject(s) ? s.id : s),
      isObject(s) ? s.token_scope_hash_b64u : undefined,
    ]),
  );
  const approvalCtx = { chain, decoded, mints, scopeOfStep, plannedScope, policy, planHash };
  approvals.forEach((r, i) => checkApprovalEvent(r, i, approvalCtx));
  checkEveryDecisionReceipted(approvals, approvalCtx);
  passed(
    'approval_events',
    approvals.length === 0
      ? 'the chain records no decision that needs a receipt'
      : `${approvals.length} approval receipts match their events: kind, approver, time, policy, plan, scope and minted CST; every recorded decision has its receipt`,
  );

  const planned = plannedSteps(job, steps);
  const gated = planned.filter((p) => p.gate === 'gated').length;
  passed(
    'steps',
    `the metadata's ${planned.length} steps are job_created's, ${gated} gated with a pinned rule`,
  );
  const ctx: TwoPersonContext = {
    steps,
    planned,
    chain,
    decoded,
    mints,
    requesterId: o.requester_id,
    approvals,
    twoPerson,
    passed,
  };
  checkApprovalSnapshots(ctx);
  checkCountedApprovals(ctx);
}
