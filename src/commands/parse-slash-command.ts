/**
 * What a `/claw …` slash command asks, as a pure function of its text. The words are the bot's
 * (`run`, `status`, `cancel`, `help`, parsed by `parseMention`); decisions are recognised by the
 * chat grammar (`parseCommand`) only to be refused: an approval counts only as a post in the
 * job's thread (SPEC section 2 rule 1), never as a command.
 */
import { parseCommand } from '../approvals/parse-command.js';
import { type BotCommand, MAX_MENTION_LENGTH, parseMention } from '../bot/route-post.js';

export type SlashCommand =
  | BotCommand
  | { kind: 'unprintable' }
  /** APPROVE, DENY, REVOKE or CONFIRM, exact or nearly: the phrase to post in the thread instead. */
  | { kind: 'decision'; phrase: string; jobId: number | null };

/** The same bound as a mention of the bot: longer text is refused unread. */
export const MAX_SLASH_TEXT_LENGTH = MAX_MENTION_LENGTH;

// C0 and C1 controls (line breaks and tabs included: a command is one line), line and paragraph
// separators, and bidi overrides, which would make an answer read otherwise than it is.
const UNPRINTABLE = /[\p{Cc}\u2028\u2029\u202A-\u202E\u2066-\u2069]/u;

const JOB_IN_PHRASE = /\bjob:(0|[1-9]\d{0,14})\b/;

export function parseSlashCommand(text: string): SlashCommand {
  if (text.length > MAX_SLASH_TEXT_LENGTH)
    return { kind: 'too_long', length: text.length, limit: MAX_SLASH_TEXT_LENGTH };
  if (UNPRINTABLE.test(text)) return { kind: 'unprintable' };
  const decision = parseCommand(text);
  if (decision.kind !== 'none') {
    const phrase =
      decision.kind === 'near_miss'
        ? decision.expected
        : decision.kind === 'approve'
          ? `APPROVE job:${decision.jobId} step:${decision.step}`
          : decision.kind === 'deny'
            ? `DENY job:${decision.jobId} step:${decision.step} <reason>`
            : decision.kind === 'revoke'
              ? `REVOKE job:${decision.jobId} <reason>`
              : `CONFIRM job:${decision.jobId}`;
    const job = JOB_IN_PHRASE.exec(phrase);
    return { kind: 'decision', phrase, jobId: job ? Number(job[1]) : null };
  }
  return parseMention(text);
}
