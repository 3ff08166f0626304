/**
 * The job's status post: the plan post, kept current by edits. What it says is a pure function
 * of the job's event chain (plus the bundle id, sealed after the chain's last event), so it can
 * be rendered again at any time, on any replica, after any restart, and always reads the same.
 */
import { mention } from '../chat/mention-token.js';
import type { ActionClaims, ButtonAction } from '../crypto/action-mac.js';
import type { JobStatus } from '../db/schema.js';
import {
  approvePhrase,
  argsHash,
  argumentsSection,
  bundleUrl,
  cell,
  code,
  endReasonText,
  MATTERMOST_POST_LIMIT,
  planUrl,
  POST_BUDGET,
  short,
  utc,
} from './messages.js';

export type StepState =
  | 'awaiting'
  | 'approved'
  | 'claimed'
  | 'succeeded'
  | 'failed'
  | 'denied'
  | 'revoked'
  | 'cancelled'
  | 'expired';

export interface BoardRule {
  required_approvals: number;
  allowed_approver_groups: string[];
  distinct_groups?: boolean;
}

export interface BoardStep {
  id: string;
  tool: string;
  summary: string;
  gate: 'auto' | 'gated';
  rule: BoardRule | null;
  simulationStep: string | null;
  args: Readonly<Record<string, unknown>>;
  state: StepState;
  /** People whose approval counts now, in the order they approved. */
  approvers: string[];
  deniedBy: { userId: string; reason: string | null } | null;
  jti: string | null;
  /** What the agent reported. */
  result: string | null;
}

export interface Board {
  jobId: number;
  requesterId: string;
  /** The agent that named the requester (API jobs). */
  assertedBy: string | null;
  runbook: string | null;
  params: Readonly<Record<string, unknown>> | null;
  policyName: string;
  policyHash: string;
  planHash: string;
  executor: string;
  expiresAt: Date;
  /** An agent's job: whether the requester it named has confirmed (always true otherwise). */
  confirmed: boolean;
  steps: BoardStep[];
  paused: { by: string; reason: string } | null;
  ended: { status: JobStatus; reason: string; bundleId: string | null } | null;
}

/** One event of the chain, as stored: its type and its JSON payload. */
export interface ChainEvent {
  event_type: string;
  payload: string;
}

type Payload = Record<string, unknown>;
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** Where steps left open end up when the job ends this way. */
const LEFT_OPEN: Partial<Record<JobStatus, StepState>> = {
  expired: 'expired',
  revoked: 'revoked',
};

/**
 * Folds a job's chain into its board. `bundleId` is the job row's (the bundle is sealed after
 * `job_ended`). Returns null for a chain without `job_created` (nothing to show).
 */
export function boardOf(jobId: number, events: readonly ChainEvent[], bundleId: string | null): Board | null {
  let board: Board | null = null;
  const approverOf = new Map<number, { step: string; userId: string }>();
  const stepOf = (id: unknown) => board?.steps.find((s) => s.id === id);
  for (const e of events) {
    const p = JSON.parse(e.payload) as Payload;
    if (e.event_type === 'job_created') {
      board = created(jobId, p);
      continue;
    }
    if (!board) continue;
    switch (e.event_type) {
      case 'requester_confirmed':
        board.confirmed = true;
        break;
      case 'requester_confirmation_withdrawn':
        board.confirmed = false;
        break;
      case 'approval_recorded': {
        const s = stepOf(p.step);
        const userId = str(p.user_id);
        if (s && userId) {
          s.approvers.push(userId);
          if (typeof p.decision_id === 'number') approverOf.set(p.decision_id, { step: s.id, userId });
        }
        break;
      }
      case 'approval_withdrawn': {
        const was = typeof p.decision_id === 'number' ? approverOf.get(p.decision_id) : undefined;
        const s = was && stepOf(was.step);
        if (s) s.approvers.splice(s.approvers.indexOf(was.userId), 1);
        break;
      }
      case 'step_denied': {
        const s = stepOf(p.step);
        if (s) {
          s.state = 'denied';
          s.deniedBy = { userId: str(p.user_id) ?? '', reason: str(p.reason) };
        }
        break;
      }
      case 'token_minted': {
        const s = stepOf(p.step);
        if (s) {
          s.state = 'approved';
          s.jti = str(p.jti);
        }
        break;
      }
      case 'token_claimed': {
        const s = stepOf(p.step);
        if (s && s.state === 'approved') s.state = 'claimed';
        break;
      }
      case 'step_result': {
        const s = stepOf(p.step);
        if (s) {
          s.state = p.status === 'succeeded' ? 'succeeded' : 'failed';
          s.result = str(p.summary);
        }
        break;
      }
      case 'token_revoked': {
        const s = board.steps.find((x) => x.jti !== null && x.jti === p.jti);
        if (s && (s.state === 'approved' || s.state === 'claimed')) s.state = 'revoked';
        break;
      }
      case 'job_paused':
        board.paused = { by: str(p.user_id) ?? '', reason: str(p.reason) ?? '' };
        break;
      case 'job_resumed':
        board.paused = null;
        break;
      case 'job_ended': {
        const status = str(p.status) as JobStatus;
        board.ended = { status, reason: str(p.reason) ?? '', bundleId };
        board.paused = null;
        const left = LEFT_OPEN[status] ?? 'cancelled';
        for (const s of board.steps) {
          if (s.state === 'awaiting' || s.state === 'approved' || s.state === 'claimed') s.state = left;
        }
        break;
      }
    }
  }
  return board;
}

function created(jobId: number, p: Payload): Board {
  const plan = Array.isArray(p.plan) ? (p.plan as Payload[]) : [];
  const argsOf = new Map(plan.map((s) => [s.id, (s.args ?? {}) as Record<string, unknown>]));
  const steps = (Array.isArray(p.steps) ? (p.steps as Payload[]) : []).map((s): BoardStep => ({
    id: String(s.id),
    tool: String(s.tool),
    summary: str(s.summary) ?? '',
    gate: s.gate === 'gated' ? 'gated' : 'auto',
    rule: s.gate === 'gated' ? (s.rule as BoardRule) : null,
    simulationStep: str(s.simulation_step),
    args: argsOf.get(s.id) ?? {},
    state: 'awaiting',
    approvers: [],
    deniedBy: null,
    jti: null,
    result: null,
  }));
  const submittedBy = str(p.submitted_by);
  return {
    jobId,
    requesterId: String(p.requester_id),
    assertedBy: submittedBy,
    runbook: str(p.runbook),
    params: (p.params ?? null) as Record<string, unknown> | null,
    policyName: String(p.policy_name),
    policyHash: String(p.policy_hash_b64u),
    planHash: String(p.plan_hash_b64u),
    executor: String(p.executor),
    expiresAt: new Date(String(p.expires_at)),
    confirmed: submittedBy === null,
    steps,
    paused: null,
    ended: null,
  };
}

/** A gated step's approval rule, in words. */
function gateText(s: BoardStep): string {
  if (s.gate === 'auto' || !s.rule) return 'auto';
  const n = s.rule.required_approvals;
  return `${n} approval${n === 1 ? '' : 's'} from ${s.rule.allowed_approver_groups.join(', ')}${s.rule.distinct_groups ? ' (distinct groups)' : ''}${s.simulationStep ? `, after ${s.simulationStep}` : ''}`;
}

/** One step's state, as its table cell says it. */
function stateText(s: BoardStep): string {
  const jti = s.jti ? ` · CST \`${s.jti}\`` : '';
  switch (s.state) {
    case 'awaiting': {
      if (s.gate === 'auto') return '⏳ waiting';
      const n = s.rule?.required_approvals ?? 0;
      const by = s.approvers.map(mention).join(', ');
      return `⏳ ${s.approvers.length}/${n}${by ? ` ${by}` : ''}`;
    }
    case 'approved':
      return s.gate === 'auto' ? `✅ runs without approval${jti}` : `✅ approved${jti}`;
    case 'claimed':
      return `▶️ claimed by the agent${jti}`;
    case 'succeeded':
      return '✅ succeeded';
    case 'failed':
      return '❌ failed';
    case 'denied':
      return `❌ denied${s.deniedBy?.userId ? ` by ${mention(s.deniedBy.userId)}` : ''}`;
    case 'revoked':
      return '🚫 revoked';
    case 'expired':
      return '⌛ expired';
    case 'cancelled':
      return 'cancelled';
  }
}

const ENDED: Record<JobStatus, string> = {
  open: '',
  completed: '✅ completed',
  failed: '❌ failed',
  denied: '❌ denied',
  expired: '⌛ expired',
  revoked: '🚫 revoked',
  cancelled: 'cancelled',
};

/** The status line: where the job stands as a whole. */
function statusLine(b: Board, publicUrl: string | null): string {
  if (b.ended) {
    const link = b.ended.bundleId ? bundleUrl(publicUrl, b.ended.bundleId) : null;
    const bundle = b.ended.bundleId ? ` · proof bundle \`${b.ended.bundleId}\`${link ? ` ${link}` : ''}` : '';
    return `**Status: ${ENDED[b.ended.status]}** — ${endReasonText(b.ended.status, b.ended.reason)}${bundle}`;
  }
  if (b.paused)
    return `**Status: ⏸️ paused** by ${mention(b.paused.by)}${b.paused.reason ? `: ${code(b.paused.reason)}` : ''} — no approval counts and nothing is minted until work is resumed.`;
  if (!b.confirmed) return `**Status: ⏳ waiting for ${mention(b.requesterId)} to confirm the job**`;
  const waiting = b.steps.some((s) => s.state === 'awaiting' && s.gate === 'gated');
  return waiting ? '**Status: ⏳ waiting for approval**' : '**Status: ▶️ running**';
}

/**
 * The status post's text: who asked, under which policy, every step with its gate, state and
 * exact phrase, the status of the whole job, and for each gated step its tool and full
 * arguments (or, when too long, a truncated view, the arguments' SHA-256 and the link to the
 * whole plan). `publicUrl` is the engine's base URL; `buttons` says the post carries Approve and
 * Deny buttons.
 */
export function statusBoardMessage(b: Board, publicUrl: string | null = null, buttons = false): string {
  const params = Object.entries(b.params ?? {})
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  const requester = b.assertedBy
    ? `requester ${mention(b.requesterId)} as asserted by agent ${code(b.assertedBy, 64)}`
    : `requested by ${mention(b.requesterId)}`;
  const source = b.runbook
    ? ` — runbook \`${b.runbook}\`${params ? ` ${code(params, 300)}` : ''},`
    : ' — steps submitted by the executing agent,';
  const open = b.ended === null;
  // Many steps share the budget: their summaries get shorter, never the arguments' hash or phrase.
  const summaryMax = b.steps.length > 8 ? 60 : 200;
  const rows = b.steps.map((s, i) => {
    const phrase =
      open && s.gate === 'gated' && s.state === 'awaiting' ? `\`${approvePhrase(b.jobId, s.id)}\`` : '—';
    return `| ${i + 1} | \`${s.id}\` | \`${s.tool}\` | ${cell(s.summary, summaryMax)} | ${gateText(s)} | ${stateText(s)} | ${phrase} |`;
  });
  const lines = [
    `**Plan for job:${b.jobId}**${source} ${requester}`,
    `Policy \`${b.policyName}\` (\`${short(b.policyHash)}\`) · plan hash \`${b.planHash}\` · executor \`${b.executor}\` · approvals close ${utc(b.expiresAt)}`,
    statusLine(b, publicUrl),
    '',
    '| # | step | tool | what | gate | status | to approve, reply exactly |',
    '|---|---|---|---|---|---|---|',
    ...rows,
  ];
  const results = b.steps.filter((s) => s.result);
  if (results.length > 0) {
    lines.push('', ...results.map((s) => `- \`${s.id}\` ${s.state}: ${cell(s.result!)}`));
  }
  const gated = b.steps.filter((s) => s.gate === 'gated');
  const footer = open ? openFooter(b, gated.length, buttons) : [];
  const used = [...lines, ...footer].join('\n').length;
  const text = [
    ...lines,
    ...argumentsSection(gated, POST_BUDGET - used, b.planHash, publicUrl),
    ...footer,
  ].join('\n');
  if (text.length <= MATTERMOST_POST_LIMIT - 1_000) return text;
  // So many steps that even the table does not fit: the status, phrases, hashes and link still do.
  const url = planUrl(publicUrl, b.planHash);
  return [
    lines[0]!,
    lines[1]!,
    lines[2]!,
    '',
    `This plan has ${b.steps.length} steps, too many to show here; full plan: ${url ?? `\`GET /v1/plans/${b.planHash}\` on this server`}`,
    '',
    ...gated.map(
      (s) =>
        `- \`${open && s.state === 'awaiting' ? approvePhrase(b.jobId, s.id) : s.id}\` — \`${s.tool}\`, arguments SHA-256 \`${argsHash(s.args)}\` — ${stateText(s)}`,
    ),
    ...footer,
  ].join('\n');
}

function openFooter(b: Board, gated: number, buttons: boolean): string[] {
  return [
    '',
    ...(b.assertedBy && gated > 0 && !b.confirmed
      ? [
          `${mention(b.requesterId)}: if you asked for this work, reply \`CONFIRM job:${b.jobId}\`. Approvals count only after that.`,
        ]
      : []),
    gated > 0
      ? `Approvers reply in this thread with the exact phrase${buttons ? ', or use the buttons below' : ''}. To refuse: \`DENY job:${b.jobId} step:<step> <reason>\`.`
      : 'Every step runs without approval.',
  ];
}

/** What signs one button's context (the action MAC, with the status post's id inside). */
export type SignButton = (claims: ActionClaims) => Record<string, string>;

/** A Mattermost message attachment holding one step's Approve and Deny buttons. */
export interface StepButtons {
  text: string;
  actions: {
    id: string;
    name: string;
    type: 'button';
    style: 'primary' | 'danger';
    integration: { url: string; context: Record<string, string> };
  }[];
}

/**
 * Approve and Deny buttons for every gated step still awaiting approval, while the job is open
 * and not paused; none otherwise, so an edit that decides, ends or pauses removes them (a post
 * patch replaces props wholesale). Action ids are letters and digits only, as Mattermost needs.
 */
export function statusButtons(
  b: Board,
  postId: string,
  callbackUrl: string,
  sign: SignButton,
): StepButtons[] {
  if (b.ended || b.paused) return [];
  const button = (action: ButtonAction, i: number, step: BoardStep): StepButtons['actions'][number] => ({
    id: `${action}${i}`,
    name: action === 'approve' ? `Approve ${step.id}` : `Deny ${step.id}…`,
    type: 'button',
    style: action === 'approve' ? 'primary' : 'danger',
    integration: {
      url: callbackUrl,
      context: sign({
        job: b.jobId,
        step: step.id,
        planHash: b.planHash,
        policyHash: b.policyHash,
        postId,
        action,
      }),
    },
  });
  return b.steps.flatMap((s, i) =>
    s.gate === 'gated' && s.state === 'awaiting'
      ? [
          {
            text: `Step \`${s.id}\` (\`${s.tool}\`): ${stateText(s)}`,
            actions: [button('approve', i, s), button('deny', i, s)],
          },
        ]
      : [],
  );
}
