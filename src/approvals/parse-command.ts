/**
 * The chat grammar of decisions (SPEC section 2 rule 2). Only these exact forms decide
 * anything; everything that merely looks like one is a near miss, answered with the exact
 * phrase and never counted.
 *
 *   APPROVE job:<n> step:<step>
 *   DENY job:<n> step:<step> <reason>
 *   REVOKE job:<n> <reason>
 *   CONFIRM job:<n>            (the requester an agent named, vouching for the agent's job)
 */

export const STEP_ID = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
// No leading zeros: every accepted command has exactly one spelling.
const JOB = '(0|[1-9]\\d{0,14})';
const STEP = '([a-z0-9][a-z0-9_.-]{0,63})';
// A reason is one line of printable text: no control characters, no line breaks, no lone
// surrogates (not text; no event could record them).
const REASON = '([^\\s\\p{Cc}\\p{Cs}](?:[^\\p{Cc}\\p{Cs}\\p{Zl}\\p{Zp}]{0,498}[^\\s\\p{Cc}\\p{Cs}])?)';

const APPROVE = new RegExp(`^APPROVE job:${JOB} step:${STEP}$`);
const DENY = new RegExp(`^DENY job:${JOB} step:${STEP} ${REASON}$`, 'u');
const REVOKE = new RegExp(`^REVOKE job:${JOB} ${REASON}$`, 'u');
const CONFIRM = new RegExp(`^CONFIRM job:${JOB}$`);

/** Longer messages are never commands (Mattermost allows 16383 characters). */
export const MAX_COMMAND_LENGTH = 600;

export type NearMissReason =
  | 'quoted'
  | 'code'
  | 'case'
  | 'spacing'
  | 'lookalike'
  | 'extra_text'
  | 'missing_step'
  | 'bad_step'
  | 'bad_job'
  | 'missing_reason'
  | 'too_long'
  | 'malformed';

type Intent = 'approve' | 'deny' | 'revoke' | 'confirm';

export type Command =
  | { kind: 'approve'; jobId: number; step: string }
  | { kind: 'deny'; jobId: number; step: string; reason: string }
  | { kind: 'revoke'; jobId: number; reason: string }
  | { kind: 'confirm'; jobId: number }
  | { kind: 'near_miss'; intent: Intent; reason: NearMissReason; expected: string }
  | { kind: 'none' };

/** Only ASCII space, tab and line breaks are trimmed: any other edge character is suspicious. */
function trimAscii(text: string): string {
  return text.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
}

// Letters of the keywords and their common lookalikes (Cyrillic, Greek, Latin small capitals).
const LOOKALIKES: Record<string, string> = {
  А: 'A',
  а: 'a',
  Α: 'A',
  α: 'a',
  ᴀ: 'a',
  Р: 'P',
  р: 'p',
  Ρ: 'P',
  ρ: 'p',
  ᴘ: 'p',
  О: 'O',
  о: 'o',
  Ο: 'O',
  ο: 'o',
  ᴏ: 'o',

  В: 'B',
  Β: 'B',
  ʙ: 'b',
  Е: 'E',
  е: 'e',
  Ε: 'E',
  ε: 'e',
  ᴇ: 'e',
  Ѕ: 'S',
  ѕ: 's',
  Т: 'T',
  Τ: 'T',
  т: 't',
  К: 'K',
  Κ: 'K',
  к: 'k',
  ᴋ: 'k',
  Ν: 'N',
  ɴ: 'n',
  Υ: 'Y',
  У: 'Y',
  у: 'y',
  ʏ: 'y',
  ν: 'v',
  ᴠ: 'v',
  Ѵ: 'V',
  ѵ: 'v',
  Ј: 'J',
  ј: 'j',
  ᴊ: 'j',
  і: 'i',
  І: 'I',
  Ι: 'I',
  ι: 'i',
  ɪ: 'i',
  ԁ: 'd',
  ᴅ: 'd',
  һ: 'h',
  // CONFIRM's letters
  С: 'C',
  с: 'c',
  Ϲ: 'C',
  ϲ: 'c',
  ᴄ: 'c',
  Ϝ: 'F',
  ꜰ: 'f',
  ʀ: 'r',
  М: 'M',
  м: 'm',
  Μ: 'M',
  ᴍ: 'm',
};
// Zero-width and invisible formatting characters, and bidi controls.
const INVISIBLE = /[\u00AD\u061C\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF]/g;

/** A forgiving view of the text, only for recognising what someone meant to type. */
function loosen(text: string): string {
  const visible = text.normalize('NFKC').replace(INVISIBLE, '');
  return [...visible]
    .map((c) => LOOKALIKES[c] ?? c)
    .join('')
    .replace(/\s+/gu, ' ')
    .trim()
    .toLowerCase();
}

/** Why a message that means the right thing is still not the exact phrase. */
function difference(text: string): NearMissReason {
  if (/[^\x20-\x7e\t\r\n]/.test(text)) return 'lookalike';
  if (/[\t\r\n]| {2}/.test(text)) return 'spacing';
  return 'case';
}

function expectedPhrase(intent: Intent, job?: string, step?: string): string {
  const j = job && /^\d{1,15}$/.test(job) ? String(Number(job)) : '<n>';
  const s = step && STEP_ID.test(step) ? step : '<step>';
  if (intent === 'approve') return `APPROVE job:${j} step:${s}`;
  if (intent === 'deny') return `DENY job:${j} step:${s} <reason>`;
  if (intent === 'confirm') return `CONFIRM job:${j}`;
  return `REVOKE job:${j} <reason>`;
}

function exact(text: string): Command | null {
  let m = APPROVE.exec(text);
  if (m) return { kind: 'approve', jobId: Number(m[1]), step: m[2]! };
  m = DENY.exec(text);
  if (m) return { kind: 'deny', jobId: Number(m[1]), step: m[2]!, reason: m[3]! };
  m = REVOKE.exec(text);
  if (m) return { kind: 'revoke', jobId: Number(m[1]), reason: m[2]! };
  m = CONFIRM.exec(text);
  if (m) return { kind: 'confirm', jobId: Number(m[1]) };
  return null;
}

/**
 * Parses one chat message. Exact commands decide; near misses (case, spacing, lookalike
 * characters, quotes, code, extra words, missing parts) are reported with the phrase that
 * would have worked, so the bot can answer; anything else is `none`.
 */
export function parseCommand(message: string): Command {
  const text = trimAscii(message);
  if (text.length <= MAX_COMMAND_LENGTH) {
    const command = exact(text);
    if (command) return command;
  }
  // Recognise intent on a bounded, loosened prefix only: chatter is never scanned in full.
  const head = text.slice(0, 200);
  const quoted = /^\s*>/.test(head);
  const code = /`/.test(head);
  const stripped = head.replace(/^[\s>]+/, '').replace(/`+/g, ' ');
  const loose = loosen(stripped);
  const m =
    /^(appr[o0]ved?|deny|denied|rev[o0]ked?|c[o0]nfirm(?:ed)?)\b[ :]*(?:job[ :#]*([^ ]*))?(?: +step[ :#]*([^ ]*))?(.*)$/.exec(
      loose,
    );
  if (!m) return { kind: 'none' };
  const word = m[1]!;
  const intent: Intent = word.startsWith('appr')
    ? 'approve'
    : word.startsWith('den')
      ? 'deny'
      : word.startsWith('c')
        ? 'confirm'
        : 'revoke';
  const [job, step, rest] = [m[2], m[3], (m[4] ?? '').trim()];
  const expected = expectedPhrase(intent, job, step);
  const miss = (reason: NearMissReason): Command => ({ kind: 'near_miss', intent, reason, expected });
  if (text.length > MAX_COMMAND_LENGTH) return miss('too_long');
  if (quoted) return miss('quoted');
  if (code) return miss('code');
  if (!job || !/^(0|[1-9]\d{0,14})$/.test(job)) return miss('bad_job');
  if (intent === 'confirm') {
    if (step || rest) return miss('extra_text');
    if (loose === `confirm job:${job}`) return miss(difference(text));
    return miss('malformed');
  }
  if (intent !== 'revoke' && !step) return miss('missing_step');
  if (intent !== 'revoke' && step && !STEP_ID.test(step)) return miss('bad_step');
  if (intent !== 'approve' && !(intent === 'revoke' ? step || rest : rest)) return miss('missing_reason');
  if (intent === 'approve' && rest) return miss('extra_text');
  // Same words as the exact phrase once loosened: say what differs.
  const canonical = loosen(`${intent} job:${job} ${intent === 'revoke' ? '' : `step:${step} `}${rest}`);
  if (canonical === loose && /^(approve|deny|revoke) /.test(loose)) return miss(difference(text));
  return miss('malformed');
}
