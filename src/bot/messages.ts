/**
 * What the bot says, as pure functions of engine results. `<@user id>` marks a person; the
 * outbox delivery renders it as `@username` (identity is decided by id, names are display only).
 * Tokens never appear here: only their jti.
 */
import type { JobEnded } from '../jobs/end-job.js';
import type { JobView } from '../jobs/job-view.js';
import type { CreatedJob } from '../jobs/create-job.js';
import type { MintedToken } from '../tokens/mint-step-token.js';

export const mention = (userId: string) => `<@${userId}>`;
export const MENTION_TOKEN = /<@([a-z0-9]{26})>/g;

/** `2026-11-21 14:05:09 UTC`: one unambiguous form for every time the bot states. */
export function utc(at: Date): string {
  return `${at.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

const short = (hash: string) => hash.slice(0, 8);

export const approvePhrase = (jobId: number, step: string) => `APPROVE job:${jobId} step:${step}`;

/**
 * Text that someone else wrote (params, reasons, summaries), made inert before the bot says it:
 * a zero-width space after each `@` keeps Mattermost from reading `@channel` or `@alice` as a
 * mention by the bot, and keeps `<@id>` from being rendered as a name at delivery.
 */
export function inert(text: string): string {
  return text.replace(/@/g, '@\u200b');
}

/** One line of inert text. */
function line(text: string, max = 300): string {
  return inert(text.replace(/[\r\n\u2028\u2029]+/g, ' ').slice(0, max));
}

/** Someone else's text as an inline code span: no backtick can end it early, no link renders. */
export function code(text: string, max = 300): string {
  return `\`${line(text.replace(/`+/g, "'"), max)}\``;
}

/** Markdown table cells: no pipes or line breaks from user-influenced text. */
function cell(text: string): string {
  return line(text.replace(/\|+/g, ' '), 200);
}

export function planMessage(
  job: CreatedJob & { requesterId: string; runbook: string; params: Record<string, unknown> },
): string {
  const params = Object.entries(job.params)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  const rows = job.steps.map((s, i) => {
    const c = s.classification;
    const gate =
      c.gate === 'auto'
        ? 'auto'
        : `${c.rule.required_approvals} approval${c.rule.required_approvals === 1 ? '' : 's'} from ${c.rule.allowed_approver_groups.join(', ')}${c.rule.distinct_groups ? ' (distinct groups)' : ''}${s.simulationStep ? `, after ${s.simulationStep}` : ''}`;
    const phrase = c.gate === 'gated' ? `\`${approvePhrase(job.jobId, s.id)}\`` : '—';
    return `| ${i + 1} | \`${s.id}\` | \`${s.tool}\` | ${cell(s.summary)} | ${gate} | ${phrase} |`;
  });
  const lines = [
    `**Plan for job:${job.jobId}** — runbook \`${job.runbook}\`${params ? ` ${code(params, 600)}` : ''}, requested by ${mention(job.requesterId)}`,
    `Policy \`${job.policyName}\` (\`${short(job.policyHash)}\`) · plan hash \`${job.planHash}\` · executor \`${job.executor}\` · approvals close ${utc(job.expiresAt)}`,
    '',
    '| # | step | tool | what | gate | to approve, reply exactly |',
    '|---|---|---|---|---|---|',
    ...rows,
  ];
  for (const t of job.minted) {
    lines.push(
      '',
      `Step \`${t.step}\` runs without approval: CST \`${t.jti}\` for \`${t.sub}\`, expires ${utc(t.expiresAt)}`,
    );
  }
  const gated = job.steps.filter((s) => s.classification.gate === 'gated');
  lines.push(
    '',
    gated.length > 0
      ? `Approvers reply in this thread with the exact phrase. To refuse: \`DENY job:${job.jobId} step:<step> <reason>\`.`
      : 'Every step runs without approval.',
  );
  return lines.join('\n');
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

/** What a refused post asked for: the reason given depends on it. */
export type DecisionAction = 'approve' | 'deny' | 'revoke' | 'cancel';

/** Answers for refused decisions and commands, by reason code: say why, and what would work. */
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
  };
  const why: Record<string, string> = {
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
  };
  // A refused APPROVE, DENY or REVOKE is a decision that did not count; a cancel is a command.
  const head = action === 'cancel' ? 'not cancelled' : 'not counted';
  return `${mention(userId)} ${head}: ${why[code] ?? 'refused'} (${code}: ${line(detail)}).`;
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

export function revokedMessage(jobId: number, userId: string, reason: string): string {
  return `:rotating_light: job:${jobId} revoked by ${mention(userId)}: ${line(reason)}. Its unredeemed tokens are revoked.`;
}

export function withdrawnMessage(jobId: number, step: string, userId: string, why: string): string {
  return `Approval by ${mention(userId)} for job:${jobId} step \`${step}\` withdrawn: the post was ${why}.`;
}

export function endedMessage(ended: JobEnded, publicUrl: string | null): string {
  const link = bundleUrl(publicUrl, ended.bundleId);
  return [
    `**job:${ended.jobId} ${ended.status}** — ${line(ended.reason)}`,
    `Proof bundle \`${ended.bundleId}\`${link ? ` · ${link}` : ''}`,
    `Verify offline: \`claw-approvals bundle verify ${ended.bundleId}\``,
  ].join('\n');
}

export function bundleUrl(publicUrl: string | null, bundleId: string): string | null {
  return publicUrl ? `${publicUrl.replace(/\/+$/, '')}/v1/bundles/${bundleId}` : null;
}

export function stepResultMessage(jobId: number, step: string, status: string, summary: string): string {
  return `job:${jobId} step \`${step}\` ${status}${summary ? `: ${cell(summary)}` : ''}`;
}

export function statusMessage(v: JobView): string {
  const rows = v.steps.map(
    (s) =>
      `| \`${s.id}\` | ${s.gate} | ${s.status} | ${s.gate === 'gated' ? `${s.approvals}/${s.required_approvals}` : '—'} | ${s.token ? `\`${s.token.jti}\`` : '—'} |`,
  );
  return [
    `**job:${v.job_id}** is ${v.status}${v.end_reason ? ` (${line(v.end_reason)})` : ''} · policy \`${v.policy.name}\` · approvals close ${utc(new Date(v.expires_at))}${v.bundle_id ? ` · bundle \`${v.bundle_id}\`` : ''}`,
    '',
    '| step | gate | status | approvals | CST |',
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

export function helpMessage(botName: string): string {
  return [
    `**claw-approvals** — in an allowlisted channel:`,
    `- \`@${botName} run <runbook> key=value …\` proposes a job in a new thread`,
    `- \`APPROVE job:<n> step:<step>\` (exactly, in the job's thread) approves a step`,
    `- \`DENY job:<n> step:<step> <reason>\` refuses a step and closes the job`,
    `- \`@${botName} status job:<n>\` (in the job's channel), \`@${botName} cancel job:<n> [reason]\` (in the job's thread; requester or security)`,
    `- \`REVOKE job:<n> <reason>\` (security group) revokes the job and its tokens`,
  ].join('\n');
}
