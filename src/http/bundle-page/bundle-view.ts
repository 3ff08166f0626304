/**
 * What the bundle page shows, read from a bundle envelope of any shape. Nothing here is
 * trusted or checked (the verdicts do that); a missing or odd field reads as null or empty,
 * so that even a bundle that fails every check still renders, with its FAIL on top.
 */

type Obj = Record<string, unknown>;

const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const list = (v: unknown): Obj[] => (Array.isArray(v) ? v.map(obj) : []);
const text = (v: unknown): string | null =>
  typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null;
/** A receipt the gateway sent as text may not even be JSON: then there is nothing to show of it. */
function parseOrNull(json: string | null): unknown {
  try {
    return JSON.parse(json ?? 'null');
  } catch {
    return null;
  }
}
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x) => typeof x === 'string') : []);

export interface EventView {
  type: string;
  at: string | null;
  hash: string | null;
  step: string | null;
  userId: string | null;
  /** A short human line of what the payload says. */
  detail: string;
}

export interface ApproverView {
  userId: string;
  username: string | null;
  /** The group the approval counted for. */
  group: string | null;
  /** How membership was established, e.g. "listed user id" (snapshot only). */
  foundVia: string[];
  postId: string | null;
  at: string | null;
}

export interface StepApprovalView {
  rule: {
    required: number | null;
    groups: string[];
    distinct: boolean | null;
    requesterAllowed: boolean | null;
  } | null;
  /** Taken from the sealed approval snapshot (issue 10) rather than rebuilt from events. */
  fromSnapshot: boolean;
  evaluatedAt: string | null;
  approvers: ApproverView[];
  denials: { userId: string; at: string | null; postId: string | null }[];
  withdrawals: { userId: string; at: string | null; why: string | null }[];
}

export interface ReceiptView {
  receiptId: string | null;
  gatewayId: string | null;
  provider: string | null;
  model: string | null;
  signerDid: string | null;
  at: string | null;
  tokens: string | null;
  /** Unverified receipts: why they were not accepted. */
  failure: string | null;
}

export interface StepView {
  id: string;
  tool: string | null;
  gate: string | null;
  summary: string | null;
  args: unknown;
  status: string | null;
  result: string | null;
  token: {
    jti: string | null;
    scopeHash: string | null;
    scope: string[];
    issuedAt: string | null;
    expiresAt: string | null;
    state: string;
  } | null;
  approval: StepApprovalView | null;
  receipts: ReceiptView[];
  unverifiedReceipts: ReceiptView[];
}

export interface BundleView {
  bundleId: string | null;
  signerDid: string | null;
  issuedAt: string | null;
  payloadHash: string | null;
  jobId: string | null;
  status: string | null;
  endReason: string | null;
  origin: string | null;
  runbook: string | null;
  requesterId: string | null;
  submittedBy: string | null;
  executor: string | null;
  policyName: string | null;
  policyHash: string | null;
  planHash: string | null;
  channelId: string | null;
  rootPostId: string | null;
  approvalPostIds: string[];
  steps: StepView[];
  events: EventView[];
  /** user id → Mattermost username, where the bundle names one. */
  usernames: Map<string, string>;
}

const FOUND_VIA: Record<string, string> = {
  user_id: 'listed user id',
  mattermost_group: 'Mattermost group',
  mattermost_channel: 'channel member',
};

function eventDetail(type: string, p: Obj): string {
  const parts: string[] = [];
  const add = (label: string, v: unknown) => {
    const t = Array.isArray(v) ? strings(v).join(', ') : text(v);
    if (t) parts.push(label ? `${label} ${t}` : t);
  };
  add('step', p.step);
  add('by', p.user_id);
  add('in', p.groups);
  add('token', p.jti);
  add('', p.status);
  add('', p.reason ?? p.why ?? p.code);
  if (type === 'token_minted')
    add('approvals counted', Array.isArray(p.counted) ? String(p.counted.length) : null);
  return parts.join(' · ');
}

function tokenState(cst: Obj): string {
  if (cst.revoked === true) return 'revoked';
  if (cst.redeemed === true) return 'redeemed';
  if (cst.claimed === true) return 'claimed';
  return 'minted';
}

function receiptView(envelope: Obj, failure: string | null): ReceiptView {
  const p = obj(envelope.payload);
  const tokensIn = text(p.tokens_input);
  const tokensOut = text(p.tokens_output);
  return {
    receiptId: text(p.receipt_id),
    gatewayId: text(p.gateway_id),
    provider: text(p.provider),
    model: text(p.model),
    signerDid: text(envelope.signer_did),
    at: text(p.timestamp),
    tokens: tokensIn !== null && tokensOut !== null ? `${tokensIn} in / ${tokensOut} out` : null,
    failure,
  };
}

export function bundleView(envelope: unknown): BundleView {
  const env = obj(envelope);
  const p = obj(env.payload);
  const meta = obj(p.metadata);
  const ours = obj(meta.claw_approvals);
  const mm = obj(ours.mattermost);
  const chain = list(p.event_chain);
  const payloadOf = new Map(list(meta.event_payloads).map((e) => [e.event_id, obj(e.payload)] as const));
  const byHash = new Map(chain.map((e) => [e.event_hash_b64u, e] as const));
  const payloadAt = (hash: unknown) => payloadOf.get(byHash.get(hash)?.event_id) ?? {};
  const created = payloadOf.get(chain.find((e) => e.event_type === 'job_created')?.event_id) ?? {};
  const planned = new Map(list(created.plan).map((s) => [s.id, s] as const));
  const rules = new Map(list(created.steps).map((s) => [s.id, obj(s.rule)] as const));

  const usernames = new Map<string, string>();
  for (const s of list(ours.steps)) {
    for (const a of list(obj(s.approval).approvers)) {
      const id = text(a.user_id);
      const name = text(a.username);
      if (id && name) usernames.set(id, name);
    }
  }

  // Events by kind and step, for approvals rebuilt from the chain (bundles without snapshots).
  const events = chain.map((e): EventView & { payload: Obj } => {
    const payload = payloadOf.get(e.event_id) ?? {};
    const type = text(e.event_type) ?? 'event';
    return {
      type,
      at: text(e.timestamp),
      hash: text(e.event_hash_b64u),
      step: text(payload.step),
      userId: text(payload.user_id),
      detail: eventDetail(type, payload),
      payload,
    };
  });
  const ofStep = (type: string, step: string) => events.filter((e) => e.type === type && e.step === step);

  // Gateway receipts belong to the step of the event they are bound to (its token_claimed).
  const receiptsOf = new Map<string, ReceiptView[]>();
  for (const r of list(p.receipts)) {
    const step = text(payloadAt(obj(obj(r.payload).binding).event_hash_b64u).step) ?? '';
    receiptsOf.set(step, [...(receiptsOf.get(step) ?? []), receiptView(r, null)]);
  }
  const unverifiedOf = new Map<string, ReceiptView[]>();
  for (const u of list(ours.unverified_receipts)) {
    const view = {
      ...receiptView(obj(parseOrNull(text(u.envelope_json))), text(u.failure) ?? 'unverified'),
      signerDid: text(u.signer_did),
    };
    const step = text(u.step) ?? '';
    unverifiedOf.set(step, [...(unverifiedOf.get(step) ?? []), view]);
  }

  const approvalOf = (s: Obj, id: string): StepApprovalView | null => {
    const snapshot = s.approval;
    const pinned = rules.get(id);
    const ruleOf = (r: Obj | undefined) =>
      r && Object.keys(r).length > 0
        ? {
            required: typeof r.required_approvals === 'number' ? r.required_approvals : null,
            groups: strings(r.allowed_approver_groups),
            distinct: typeof r.distinct_groups === 'boolean' ? r.distinct_groups : null,
            requesterAllowed:
              typeof r.allow_requester_approval === 'boolean' ? r.allow_requester_approval : null,
          }
        : null;
    const denials = ofStep('step_denied', id).map((e) => ({
      userId: e.userId ?? '',
      at: e.at,
      postId: text(e.payload.post_id),
    }));
    const withdrawals = ofStep('approval_withdrawn', id).map((e) => ({
      userId: e.userId ?? '',
      at: e.at,
      why: text(e.payload.why),
    }));
    if (typeof snapshot === 'object' && snapshot !== null) {
      const snap = obj(snapshot);
      return {
        rule: ruleOf(obj(snap.rule)),
        fromSnapshot: true,
        evaluatedAt: text(snap.evaluated_at),
        approvers: list(snap.approvers).map((a) => ({
          userId: text(a.user_id) ?? '',
          username: text(a.username),
          group: text(a.counted_for),
          foundVia: list(a.found_in).map(
            (f) => `${text(f.group) ?? '?'}: ${FOUND_VIA[text(f.via) ?? ''] ?? text(f.via) ?? '?'}`,
          ),
          postId: text(a.post_id),
          at: text(byHash.get(a.approval_event_hash_b64u)?.timestamp),
        })),
        denials,
        withdrawals,
      };
    }
    if (s.gate !== 'gated') return null;
    // Before snapshots: the counted approvers of the token_minted event, joined to their approvals.
    const mint = ofStep('token_minted', id)[0];
    const recorded = new Map(ofStep('approval_recorded', id).map((e) => [e.payload.decision_id, e] as const));
    return {
      rule: ruleOf(pinned),
      fromSnapshot: false,
      evaluatedAt: mint?.at ?? null,
      approvers: list(mint?.payload.counted).map((c) => {
        const e = recorded.get(c.decision_id);
        return {
          userId: text(c.user_id) ?? '',
          username: null,
          group: text(c.group),
          foundVia: [],
          postId: e ? text(e.payload.post_id) : null,
          at: e?.at ?? null,
        };
      }),
      denials,
      withdrawals,
    };
  };

  const steps = list(ours.steps).map((s): StepView => {
    const id = text(s.step) ?? '';
    const plan = planned.get(id) ?? {};
    const cst = s.cst === null || s.cst === undefined ? null : obj(s.cst);
    return {
      id,
      tool: text(s.tool) ?? text(plan.tool),
      gate: text(s.gate),
      summary: text(plan.summary),
      args: plan.args ?? null,
      status: text(s.status),
      result: text(s.result_summary),
      token: cst
        ? {
            jti: text(cst.jti),
            scopeHash: text(cst.token_scope_hash_b64u),
            scope: strings(cst.scope),
            issuedAt: text(cst.issued_at),
            expiresAt: text(cst.expires_at),
            state: tokenState(cst),
          }
        : null,
      approval: approvalOf(s, id),
      receipts: receiptsOf.get(id) ?? [],
      unverifiedReceipts: unverifiedOf.get(id) ?? [],
    };
  });

  return {
    bundleId: text(p.bundle_id),
    signerDid: text(env.signer_did),
    issuedAt: text(env.issued_at),
    payloadHash: text(env.payload_hash_b64u),
    jobId: text(ours.job_id),
    status: text(ours.status),
    endReason: text(ours.end_reason),
    origin: text(ours.origin),
    runbook: text(created.runbook),
    requesterId: text(ours.requester_id),
    submittedBy: text(ours.submitted_by),
    executor: text(ours.executor),
    policyName: text(obj(ours.policy).name),
    policyHash: text(obj(ours.policy).policy_hash_b64u),
    planHash: text(ours.plan_hash_b64u),
    channelId: text(mm.channel_id),
    rootPostId: text(mm.root_post_id),
    approvalPostIds: strings(mm.approval_post_ids),
    steps,
    events: events.map(({ payload: _payload, ...e }) => e),
    usernames,
  };
}
