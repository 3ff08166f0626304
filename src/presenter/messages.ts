/**
 * What the bot says, as pure functions of engine results. `<@user id>` marks a person; the
 * outbox delivery renders it as `@username` (identity is decided by id, names are display only).
 * Tokens never appear here: only their jti.
 */
import { mention } from '../chat/mention-token.js';
import { jcsHashB64u } from '../crypto/hash.js';
import type { JobStatus } from '../db/schema.js';
import type { JobEnded, MintedToken } from '../jobs/job-events.js';
import type { JobView } from '../jobs/job-view.js';

/** `2026-11-21 14:05:09 UTC`: one unambiguous form for every time the bot states. */
export function utc(at: Date): string {
  return `${at.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

export const short = (hash: string) => hash.slice(0, 8);

export const approvePhrase = (jobId: number, step: string) => `APPROVE job:${jobId} step:${step}`;

/** Bidirectional overrides, isolates and marks: they can make the bot's text read differently from what it says. */
const BIDI_CONTROLS = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const ZWSP = '\u200b';

/**
 * Text that someone else wrote (params, reasons, summaries, results), made inert before the bot
 * says it. Nothing in it may act in the bot's voice:
 * - mentions: a zero-width space after each `@` keeps Mattermost from reading `@channel`,
 *   `@alice` or an e-mail address as a mention or link, and keeps `<@id>` from being rendered
 *   as a name at delivery (see MENTION_TOKEN);
 * - links and images: `scheme://`, `www.` and a markdown link's `](` are split the same way, so
 *   neither the autolinker nor `[x](…)` / `![img](…)` can make a link; `~` (a channel link) too;
 * - bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C) are replaced
 *   by U+FFFD, visibly, so nobody can reorder what the bot appears to say.
 * Only zero-width spaces are added: the text reads as it was written.
 */
export function inert(text: string): string {
  return text
    .replace(BIDI_CONTROLS, '\ufffd')
    .replace(/[@~]/g, `$&${ZWSP}`)
    .replace(/:(?=\/\/)/g, `:${ZWSP}`)
    .replace(/(www)\./gi, `$1${ZWSP}.`)
    .replace(/\](?=\()/g, `]${ZWSP}`);
}

/** One line of inert text, at most `max` characters before it is made inert (an ellipsis says it was cut). */
export function line(text: string, max = 300): string {
  const flat = text.replace(/[\r\n\u2028\u2029]+/g, ' ');
  return inert(flat.length > max ? `${cut(flat, max - 1)}…` : flat);
}

/** The first `max` UTF-16 units of `text`, never half of a surrogate pair. */
export function cut(text: string, max: number): string {
  const head = text.slice(0, max);
  return /[\ud800-\udbff]$/.test(head) ? head.slice(0, -1) : head;
}

/** Someone else's text as an inline code span: no backtick can end it early, no link renders. */
export function code(text: string, max = 300): string {
  return `\`${line(text.replace(/`+/g, "'"), max)}\``;
}

/** Markdown table cells: no pipes or line breaks from user-influenced text. */
export function cell(text: string, max = 200): string {
  return line(text.replace(/\|+/g, ' '), max);
}

/**
 * Reasons joined once each: a refusal built from a list of problems (or from several policy
 * files closing one channel) never says the same thing twice.
 */
export function reasonsOnce(reasons: string | readonly string[]): string {
  const list = typeof reasons === 'string' ? reasons.split(/;\s+/) : reasons;
  const kept: string[] = [];
  for (const reason of list.map((r) => r.trim())) {
    // `x` again, or `x` after a first reason that already ended with it (`channel c closed: x`).
    if (reason !== '' && !kept.some((k) => k === reason || k.endsWith(`: ${reason}`))) kept.push(reason);
  }
  return kept.join('; ');
}

/** Mattermost refuses posts longer than this (characters). */
export const MATTERMOST_POST_LIMIT = 16_383;
/** What the plan and status posts aim to stay under, leaving room for rendered names. */
export const POST_BUDGET = 12_000;
/** Arguments shorter than this are not worth a truncated view: only their size and hash are given. */
const MIN_ARGS_VIEW = 200;

/** Where the whole plan can be read: `GET /v1/plans/<plan hash>` on this server. */
export function planUrl(publicUrl: string | null, planHash: string): string | null {
  return publicUrl ? `${publicUrl.replace(/\/+$/, '')}/v1/plans/${planHash}` : null;
}

// Everything that could hide or disguise a character: controls, format characters (bidi, zero
// width), line and paragraph separators, and every space but the ASCII one.
const HIDDEN = /[\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}\p{Zs}]/gu;

/**
 * Arguments as pretty-printed JSON for a fenced code block. Every line of it starts with a
 * space, a quote, a digit, a letter or a bracket, so no content can close the fence (a fence is
 * three backticks or tildes at the start of a line); strings are JSON-quoted, so no newline in
 * them ends a line. Characters that could hide or reorder text are shown as `\uXXXX` escapes,
 * and `<@` as `\u003c@` so delivery never renders a name inside the block. The result is still
 * JSON and parses back to exactly the same arguments.
 */
export function argsJson(args: Readonly<Record<string, unknown>>): string {
  return JSON.stringify(args, null, 2)
    .replace(HIDDEN, (ch) =>
      ch === ' '
        ? ch
        : [...Array(ch.length).keys()]
            .map((i) => `\\u${ch.charCodeAt(i).toString(16).padStart(4, '0')}`)
            .join(''),
    )
    .replace(/<@/g, '\\u003c@');
}

/** base64url SHA-256 of the canonical (RFC 8785) arguments: what an approver can recompute. */
export function argsHash(args: Readonly<Record<string, unknown>>): string {
  return jcsHashB64u(args);
}

export interface ShownStep {
  id: string;
  tool: string;
  args: Readonly<Record<string, unknown>>;
}

const thousands = (n: number) => n.toLocaleString('en-US');

/**
 * What each gated step will do: its tool and its full arguments, in code blocks. When that does
 * not fit in `budget` characters, each step shows as much as its share allows, the SHA-256 of its
 * canonical arguments, and where the whole plan is (`GET /v1/plans/<plan hash>`).
 */
export function argumentsSection(
  steps: readonly ShownStep[],
  budget: number,
  planHashB64u: string,
  publicUrl: string | null,
): string[] {
  if (steps.length === 0) return [];
  const shown = steps.map((s) => ({ s, json: argsJson(s.args) }));
  const head = (s: ShownStep) => `**\`${s.id}\`** runs \`${s.tool}\``;
  const full = shown.flatMap(({ s, json }) => ['', `${head(s)} with:`, '```json', json, '```']);
  if (full.join('\n').length <= budget) return full;

  const url = planUrl(publicUrl, planHashB64u);
  const where = url ? `full plan: ${url}` : `full plan: \`GET /v1/plans/${planHashB64u}\` on this server`;
  const hashLine = (s: ShownStep) =>
    `SHA-256 of its canonical (JCS) arguments: \`${argsHash(s.args)}\` · ${where}`;
  // Shares by water-filling: short arguments are shown whole, the rest split what is left.
  let left = budget - shown.reduce((n, { s }) => n + head(s).length + hashLine(s).length + 120, 0);
  const share = new Map<number, number>();
  const byLength = [...shown.keys()].sort((a, b) => shown[a]!.json.length - shown[b]!.json.length);
  for (const [k, i] of byLength.entries()) {
    const mine = Math.max(0, Math.min(shown[i]!.json.length, Math.floor(left / (byLength.length - k))));
    share.set(i, mine);
    left -= mine;
  }
  return shown.flatMap(({ s, json }, i) => {
    const n = share.get(i)!;
    if (n === json.length) return ['', `${head(s)} with:`, '```json', json, '```', hashLine(s)];
    if (n < MIN_ARGS_VIEW)
      return [
        '',
        `${head(s)} with ${thousands(json.length)} characters of arguments, too long to show here.`,
        hashLine(s),
      ];
    return [
      '',
      `${head(s)} with (the first ${thousands(n)} of ${thousands(json.length)} characters):`,
      '```json',
      `${cut(json, n)}\n… (truncated)`,
      '```',
      hashLine(s),
    ];
  });
}

export function mintedMessage(jobId: number, t: MintedToken): string {
  const by = t.counted.map((c) => `${mention(c.userId)} (${c.group})`).join(', ');
  return by
    ? `:white_check_mark: job:${jobId} step \`${t.step}\` approved by ${by}; CST \`${t.jti}\` for \`${t.sub}\`, expires ${utc(t.expiresAt)}`
    : `job:${jobId} step \`${t.step}\` runs without approval; CST \`${t.jti}\` for \`${t.sub}\`, expires ${utc(t.expiresAt)}`;
}

export function approvalCountedMessage(
  jobId: number,
  step: string,
  userId: string,
  missing: { approvals: number; openGroups: string[]; simulationStep: string | null },
): string {
  const still =
    missing.simulationStep !== null && missing.approvals === 0
      ? `quorum is met; the token is minted once \`${missing.simulationStep}\` succeeds`
      : `still needed: ${missing.approvals} more approval${missing.approvals === 1 ? '' : 's'}${
          missing.openGroups.length > 0 ? ` from ${missing.openGroups.join(' or ')}` : ''
        }${missing.simulationStep ? `, and \`${missing.simulationStep}\` must succeed first` : ''}`;
  return `Approval by ${mention(userId)} counted for job:${jobId} step \`${step}\`; ${still}.`;
}

export function deniedMessage(
  jobId: number,
  step: string,
  userId: string,
  reason: string | undefined,
): string {
  return `:no_entry: job:${jobId} step \`${step}\` denied by ${mention(userId)}${reason ? `: ${line(reason)}` : ''}. The job is closed.`;
}

/** Codes whose stock reason names the refused action (deny, cancel) better than the engine's detail. */
const STOCK_FIRST = new Set(['ERR_SELF_APPROVAL', 'ERR_WRONG_THREAD']);

/** What a refused post asked for: the reason given depends on it. */
export type DecisionAction = 'approve' | 'deny' | 'revoke' | 'cancel' | 'confirm';

/**
 * Answers for refused decisions and commands: why, once, then the code. The engine's detail is
 * the reason (it is the specific one: which job, which groups, which steps); the stock reason
 * stands in when there is none, and where it fits the action better (STOCK_FIRST).
 */
export function refusalMessage(
  code: string,
  detail: string,
  userId: string,
  action: DecisionAction = 'approve',
): string {
  const notEligible: Record<DecisionAction, string> = {
    approve: 'you are not in an approver group for this',
    deny: 'you are not in an approver group for this',
    revoke: 'only the security group may revoke a job',
    cancel: 'only the requester or the security group may cancel a job',
    confirm: 'only the requester the agent named may confirm',
  };
  const stock: Record<string, string> = {
    ERR_NOT_ELIGIBLE: notEligible[action],
    ERR_SELF_APPROVAL: `the requester cannot ${action === 'deny' ? 'deny' : 'approve'} their own job`,
    ERR_WRONG_THREAD:
      action === 'approve' || action === 'deny'
        ? 'decisions count only in the job’s own thread'
        : 'this counts only in the job’s own thread',
    ERR_JOB_NOT_FOUND: 'there is no such job',
    ERR_STEP_NOT_FOUND: 'there is no such step',
    ERR_STEP_NOT_GATED: 'that step needs no approval',
    ERR_STEP_DECIDED: 'that step is already decided',
    ERR_DUPLICATE_APPROVAL: 'your approval already counts',
    ERR_JOB_EXPIRED: 'the job has expired',
    ERR_JOB_REVOKED: 'the job was revoked',
    ERR_JOB_CLOSED: 'the job is closed',
    ERR_REQUESTER_UNCONFIRMED: 'approvals count once the requester the agent named confirms the job',
    ERR_NOT_THE_REQUESTER: 'only the requester the agent named may confirm',
    ERR_NOTHING_TO_CONFIRM: 'the requester asked for this job themselves; there is nothing to confirm',
    ERR_ALREADY_CONFIRMED: 'the job is already confirmed',
    ERR_REQUESTER_DEACTIVATED: 'the requester’s account is deactivated',
  };
  const given = reasonsOnce(detail);
  const why = (STOCK_FIRST.has(code) || given === '' ? stock[code] : given) ?? (given || 'refused');
  // A refused APPROVE, DENY or REVOKE is a decision that did not count; a cancel is a command.
  const head = action === 'cancel' ? 'not cancelled' : 'not counted';
  return `${mention(userId)} ${head}: ${line(why)} (${code}).`;
}

/**
 * The answer to a `run` that made no job: each problem once, then the code. The requester's own
 * id in the engine's detail is shown as their name, never as a raw id.
 */
export function noJobMessage(userId: string, problems: string | readonly string[], code?: string): string {
  const text = line(reasonsOnce(problems), 1_000).replaceAll(userId, mention(userId));
  return `${mention(userId)} no job: ${text}${code ? ` (${code})` : ''}`;
}

export function nearMissMessage(userId: string, expected: string, reason: string): string {
  const why: Record<string, string> = {
    quoted: 'quoted text never counts',
    code: 'code formatting never counts',
    case: 'the phrase is case-sensitive',
    spacing: 'use single spaces on one line',
    lookalike: 'it contains characters that only look like the phrase',
    extra_text: 'nothing else may be in the message',
    missing_step: 'the step is missing',
    bad_step: 'the step is not valid',
    bad_job: 'the job number is not valid',
    missing_reason: 'a reason is required',
    too_long: 'the message is too long',
    malformed: 'it is not the exact phrase',
    edited: 'an edited message never counts; post the phrase again as a new reply',
  };
  return `${mention(userId)} not counted: ${why[reason] ?? 'not the exact phrase'}. Reply with exactly: ${code(expected)}`;
}

/** An answer to a mention the bot could not act on; what was typed is quoted, never rendered. */
export function notUnderstoodMessage(text: string, botName: string): string {
  return `I did not understand ${code(text, 80)}.\n\n${helpMessage(botName)}`;
}

export function tooLongMessage(userId: string, length: number, limit: number): string {
  return `${mention(userId)} that message is too long for me (${length} characters; commands are at most ${limit}).`;
}

export function confirmedMessage(jobId: number, userId: string, agentId: string): string {
  return `job:${jobId} confirmed by its requester ${mention(userId)}: the work ${code(agentId, 64)} submitted is theirs, and approvals now count.`;
}

export function confirmationWithdrawnMessage(
  jobId: number,
  userId: string,
  why: 'edited' | 'deleted' | 'deactivated',
): string {
  const cause = why === 'deactivated' ? 'their account was deactivated' : `the post was ${why}`;
  return `The confirmation of job:${jobId} by ${mention(userId)} is withdrawn: ${cause}. Approvals count again only after \`CONFIRM job:${jobId}\`; nothing more is minted until then.`;
}

export function revokedMessage(jobId: number, userId: string, reason: string): string {
  return `:rotating_light: job:${jobId} revoked by ${mention(userId)}: ${line(reason)}. Its unredeemed tokens are revoked.`;
}

export function withdrawnMessage(jobId: number, step: string, userId: string, why: string): string {
  return `Approval by ${mention(userId)} for job:${jobId} step \`${step}\` withdrawn: the post was ${why}.`;
}

/**
 * Why a job ended, as the bot says it: inert, and as a code span, since it may carry someone's
 * words (a cancel or revoke reason) and must not render as the bot's own emphasis or status line.
 * The engine's reason for a denied job names the approver by id: the post names them by name. A
 * job ends as `denied` only through a DENY, so the reason has that form.
 */
export function endReasonText(status: JobStatus, reason: string): string {
  const m = status === 'denied' ? /^step (\S+) denied by ([a-z0-9]{26})$/.exec(reason) : null;
  return m ? `step \`${m[1]}\` denied by ${mention(m[2]!)}` : code(reason);
}

/**
 * The job-ended post: how the job ended, its bundle, and a command that checks the bundle.
 * `gatewaySigners` are the gateways whose receipts this server accepts; the command names them
 * so that a bundle carrying their receipts verifies as printed.
 */
export function endedMessage(
  ended: JobEnded,
  publicUrl: string | null,
  gatewaySigners: readonly string[] = [],
): string {
  const link = bundleUrl(publicUrl, ended.bundleId);
  return [
    `**job:${ended.jobId} ${ended.status}** — ${endReasonText(ended.status, ended.reason)}`,
    `Proof bundle \`${ended.bundleId}\`${link ? ` · ${link}` : ''}`,
    verifyLine(ended.bundleId, publicUrl, gatewaySigners),
  ].join('\n');
}

/**
 * A reviewer's command: the bundle link and this server's JWKS (with its keys' rotation dates)
 * are all it needs, on any machine. Without a public URL only the pb_ id form is left, and it
 * needs this server's database and key, so the line says where it works; so does a link to a
 * local address (the default when PUBLIC_URL is not set).
 */
function verifyLine(bundleId: string, publicUrl: string | null, gatewaySigners: readonly string[]): string {
  if (!publicUrl) {
    return `Verify on the server's machine (no public URL is set, so there is no link to check): \`claw-approvals bundle verify ${bundleId}\``;
  }
  const base = publicUrl.replace(/\/+$/, '');
  const command = [
    `claw-approvals bundle verify ${base}/v1/bundles/${bundleId}`,
    `--jwks ${base}/.well-known/jwks.json`,
    ...[...new Set(gatewaySigners)].sort().map((did) => `--gateway ${did}`),
  ].join(' ');
  const host = new URL(base).hostname;
  const local = ['localhost', '[::1]', '0.0.0.0'].includes(host) || /^127(\.\d{1,3}){3}$/.test(host);
  return local
    ? `Verify on the server's machine (its public URL is a local address): \`${command}\``
    : `Verify anywhere: \`${command}\``;
}

export function bundleUrl(publicUrl: string | null, bundleId: string): string | null {
  return publicUrl ? `${publicUrl.replace(/\/+$/, '')}/v1/bundles/${bundleId}` : null;
}

export function stepResultMessage(jobId: number, step: string, status: string, summary: string): string {
  return `job:${jobId} step \`${step}\` ${status}${summary ? `: ${cell(summary)}` : ''}`;
}

/**
 * The answer to `status`: every step with its gate, state, the approvals that count now
 * (`unknown` when membership cannot be checked) and its CST, then what each gated step runs.
 */
export function statusMessage(v: JobView, publicUrl: string | null = null): string {
  const rows = v.steps.map(
    (s) =>
      `| \`${s.id}\` | ${s.gate} | ${s.status} | ${s.gate === 'gated' ? `${s.approvals ?? 'unknown'}/${s.required_approvals}` : '—'} | ${s.token ? `\`${s.token.jti}\`` : '—'} |`,
  );
  const lines = [
    `**job:${v.job_id}** is ${v.status}${v.end_reason ? ` (${line(v.end_reason)})` : ''} · policy \`${v.policy.name}\` · approvals close ${utc(new Date(v.expires_at))}${v.bundle_id ? ` · bundle \`${v.bundle_id}\`` : ''}`,
    '',
    '| step | gate | status | approvals | CST |',
    '|---|---|---|---|---|',
    ...rows,
  ];
  if (v.steps.some((s) => s.gate === 'gated' && s.approvals === null))
    lines.push('', 'Approvals show as unknown while group membership cannot be checked.');
  const gated = v.steps.filter((s) => s.gate === 'gated');
  const used = lines.join('\n').length;
  return [...lines, ...argumentsSection(gated, POST_BUDGET - used, v.plan_hash_b64u, publicUrl)].join('\n');
}

/** The answer to `pause` / `resume` by the security group. */
export function pauseMessage(
  kind: 'pause' | 'resume',
  userId: string,
  reason: string,
  changed: boolean,
  openJobs: number,
): string {
  if (!changed) return `Work is already ${kind === 'pause' ? 'paused' : 'running'}; nothing changed.`;
  const why = reason ? `: ${line(reason)}` : '';
  const one = openJobs === 1;
  const jobs = `${openJobs} open job${one ? '' : 's'}`;
  return kind === 'pause'
    ? `:double_vertical_bar: **Work paused** by ${mention(userId)}${why}. No job is requested, no approval counts and no token is minted, claimed or redeemed until the security group says \`resume\`. ${jobs} ${one ? 'stays' : 'stay'} pending; a DENY, REVOKE or cancel still works.`
    : `:arrow_forward: **Work resumed** by ${mention(userId)}${why}. ${jobs} ${one ? 'goes' : 'go'} on where ${one ? 'it was' : 'they were'}.`;
}

export function helpMessage(botName: string): string {
  return [
    `**claw-approvals** — in an allowlisted channel:`,
    `- \`@${botName} run <runbook> key=value …\` proposes a job in a new thread`,
    `- \`APPROVE job:<n> step:<step>\` (exactly, in the job's thread) approves a step`,
    `- \`DENY job:<n> step:<step> <reason>\` refuses a step and closes the job`,
    `- \`@${botName} status job:<n>\` (in the job's channel), \`@${botName} cancel job:<n> [reason]\` (in the job's thread; requester or security)`,
    `- \`REVOKE job:<n> <reason>\` (security group) revokes the job and its tokens`,
    `- \`@${botName} pause [reason]\` / \`@${botName} resume\` (security group) stops, or restarts, all new work`,
  ].join('\n');
}
