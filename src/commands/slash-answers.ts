/**
 * What the `/claw` slash command answers, as pure functions. Answers are ephemeral (only the
 * person who ran the command sees them) and are returned to Mattermost directly, not through the
 * outbox, so they carry no `<@id>` mention tokens: the caller is "you".
 */
import { code, line, reasonsOnce } from '../presenter/messages.js';

/** Where a job's thread is: a permalink once its plan post exists, else where it will appear. */
export interface ThreadPlace {
  jobId: number;
  /** `https://chat.example.com/<team>/pl/<post id>`, or null when it cannot be linked. */
  permalink: string | null;
}

export function threadLine(t: ThreadPlace): string {
  return t.permalink
    ? `job:${t.jobId}'s thread: ${t.permalink}`
    : `job:${t.jobId}'s thread starts at its plan post at the top of this channel`;
}

export function helpAnswer(trigger: string): string {
  return [
    `**${trigger}** — claw-approvals, answered only to you:`,
    `- \`${trigger} run <runbook> key=value …\` requests a job in this channel; its plan post starts the job's thread`,
    `- \`${trigger} status job:<n>\` shows a job of this channel`,
    `- \`${trigger} cancel job:<n> [reason]\` cancels a job of this channel (its requester or the security group)`,
    `- \`${trigger} help\` shows this`,
    "Approvals are never taken by slash command: post `APPROVE job:<n> step:<step>` (or `DENY job:<n> step:<step> <reason>`) as a reply in the job's thread.",
  ].join('\n');
}

/** APPROVE, DENY, REVOKE, CONFIRM: decisions count only as posts in the job's thread. */
export function decisionRefusedAnswer(phrase: string, thread: ThreadPlace | null): string {
  const where = thread ? threadLine(thread) : "the job's thread (the thread of its plan post)";
  return `Not counted: approvals and other decisions are not accepted by slash command. Post exactly ${code(phrase, 120)} as a reply in ${where}.`;
}

export function unknownAnswer(trigger: string, text: string): string {
  return `Not understood: ${code(text, 80)}. Try \`${trigger} help\`.`;
}

export function tooLongAnswer(length: number, limit: number): string {
  return `Not read: the command is ${length} characters long; at most ${limit} are read. Nothing was done.`;
}

export function unprintableAnswer(): string {
  return 'Not read: the command holds control characters or line breaks; type it on one line of plain text. Nothing was done.';
}

export function usageAnswer(trigger: string, usage: string): string {
  return `Usage: \`${trigger} ${usage}\``;
}

export function createdAnswer(jobId: number, gated: number): string {
  const next =
    gated === 0
      ? 'No step needs an approval.'
      : `${gated} step${gated === 1 ? ' needs' : 's need'} approval; approvers reply in that thread with the phrase the plan shows.`;
  return `Requested **job:${jobId}**. ${threadLine({ jobId, permalink: null })}. ${next}`;
}

export function noJobAnswer(problems: string | readonly string[], errorCode?: string): string {
  return `No job: ${line(reasonsOnce(problems), 1_000)}${errorCode ? ` (${errorCode})` : ''}. Nothing was done.`;
}

export function notInChannelAnswer(jobId: number): string {
  return `There is no job:${jobId} in this channel.`;
}

export function cancelledAnswer(jobId: number): string {
  return `Cancelled **job:${jobId}**: its tokens are revoked and its bundle is sealed; the thread says so.`;
}

export function notCancelledAnswer(errorCode: string, detail: string): string {
  return `Not cancelled: ${line(reasonsOnce(detail) || 'refused')} (${errorCode}).`;
}

export function replayAnswer(jobId: number | null): string {
  return `This request was already handled${jobId !== null ? ` (job:${jobId})` : ''}; nothing changed this time.`;
}

export function slowDownAnswer(limit: number): string {
  return `Not read: at most ${limit} commands a minute are answered for each person. Wait a moment and try again; nothing was done.`;
}

export function noChatAnswer(): string {
  return 'Not available: this claw-approvals server is not connected to Mattermost (MATTERMOST_URL is unset).';
}
