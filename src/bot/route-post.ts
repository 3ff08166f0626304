/**
 * What a chat post asks of the bot, as a pure function of the post and the bot's name.
 * Only normal posts by people count (SPEC section 2 rule 1): the bot's own posts, other bots,
 * webhook and bot-flagged posts, and system posts are ignored before any text is read.
 */
import { type Command, parseCommand } from '../approvals/parse-command.js';
import type { ChatPost } from '../chat/chat-port.js';

export type BotCommand =
  | { kind: 'run'; runbook: string; params: Record<string, string>; problems: string[] }
  | { kind: 'status'; jobId: number | null }
  | { kind: 'cancel'; jobId: number | null; reason: string }
  | { kind: 'help' }
  | { kind: 'unknown'; text: string };

export type Intent =
  | { kind: 'ignore'; why: string }
  | { kind: 'decision'; command: Exclude<Command, { kind: 'none' }> }
  | { kind: 'mention'; command: BotCommand };

const truthy = (v: unknown) => v === true || v === 'true';

/** Why this post can never act, or null if it is a person's normal post. */
export function notFromAPerson(post: ChatPost, botUserId: string): string | null {
  if (post.user_id === botUserId) return 'own post';
  if (post.type !== '') return `post type ${post.type}`;
  if (truthy(post.props.from_webhook)) return 'webhook post';
  if (truthy(post.props.from_bot)) return 'bot post';
  if (post.props.override_username !== undefined) return 'overridden username';
  return null;
}

const MAX_MENTION_LENGTH = 2000;
const JOB_REF = /^job:(0|[1-9]\d{0,14})$/;

function jobRef(word: string | undefined): number | null {
  const m = word ? JOB_REF.exec(word) : null;
  return m ? Number(m[1]) : null;
}

/** `key=value` words; values may be double-quoted to hold spaces. */
export function parseParams(words: string): { params: Record<string, string>; problems: string[] } {
  const params: Record<string, string> = {};
  const problems: string[] = [];
  const re = /\s*([^\s=]+)=(?:"([^"]*)"|(\S*))|\s*(\S+)/gy;
  for (const m of words.matchAll(re)) {
    if (m[4] !== undefined) {
      problems.push(`"${m[4].slice(0, 40)}" is not key=value`);
      continue;
    }
    const key = m[1]!;
    if (!/^[a-z][a-z0-9_]{0,63}$/.test(key)) problems.push(`"${key.slice(0, 40)}" is not a parameter name`);
    else if (Object.hasOwn(params, key)) problems.push(`${key} is given twice`);
    else params[key] = m[2] ?? m[3] ?? '';
  }
  return { params, problems };
}

export function parseMention(rest: string): BotCommand {
  const text = rest.trim();
  const [verb, ...words] = text.split(/\s+/);
  switch ((verb ?? '').toLowerCase()) {
    case 'run': {
      const runbook = words[0] ?? '';
      const { params, problems } = parseParams(text.replace(/^\S+\s+\S*\s*/, ''));
      if (!/^[a-z0-9][a-z0-9_.-]{0,63}$/.test(runbook))
        problems.unshift('name a runbook: run <runbook> key=value …');
      return { kind: 'run', runbook, params, problems };
    }
    case 'status':
      return { kind: 'status', jobId: jobRef(words[0]) };
    case 'cancel':
      return { kind: 'cancel', jobId: jobRef(words[0]), reason: words.slice(1).join(' ').slice(0, 300) };
    case 'help':
    case '':
      return { kind: 'help' };
    default:
      return { kind: 'unknown', text: text.slice(0, 80) };
  }
}

/** Routes one post. Chatter (no command, no mention) is `ignore`, decided without I/O. */
export function routePost(post: ChatPost, bot: { id: string; username: string }): Intent {
  const not = notFromAPerson(post, bot.id);
  if (not) return { kind: 'ignore', why: not };
  const command = parseCommand(post.message);
  if (command.kind !== 'none') return { kind: 'decision', command };
  const head = post.message.trimStart().slice(0, bot.username.length + 2);
  const mention = new RegExp(`^@${bot.username.replace(/[.-]/g, '\\$&')}(?![a-z0-9._-])`, 'i');
  if (mention.test(head)) {
    if (post.message.length > MAX_MENTION_LENGTH)
      return { kind: 'mention', command: { kind: 'unknown', text: 'a message that long' } };
    return {
      kind: 'mention',
      command: parseMention(post.message.trimStart().slice(bot.username.length + 1)),
    };
  }
  return { kind: 'ignore', why: 'not for the bot' };
}
