/**
 * What a chat post asks of the bot, as a pure function of the post and the bot's name.
 * Only normal posts by people count (SPEC section 2 rule 1): the bot's own posts, other bots,
 * webhook and bot-flagged posts, and system posts are ignored before any text is read.
 */
import { type Command, MAX_COMMAND_LENGTH, parseCommand } from '../approvals/parse-command.js';
import type { ChatPost } from '../chat/chat-port.js';
import { code, cut } from '../presenter/messages.js';

export type BotCommand =
  | { kind: 'run'; runbook: string; params: Record<string, string>; problems: string[] }
  | { kind: 'status'; jobId: number | null }
  | { kind: 'cancel'; jobId: number | null; reason: string }
  | { kind: 'help' }
  /** The kill switch (security group only): stop, or restart, all new work everywhere. */
  | { kind: 'pause'; reason: string }
  | { kind: 'resume'; reason: string }
  | { kind: 'too_long'; length: number; limit: number }
  | { kind: 'unknown'; text: string };

export type Intent =
  | { kind: 'ignore'; why: string }
  | { kind: 'decision'; command: Exclude<Command, { kind: 'none' }> }
  | { kind: 'mention'; command: BotCommand };

/**
 * Props the server sets on posts no person typed. SPEC rule 1 asks for their absence, so any
 * value counts ("false" included): a person's client never sends them. Plugins and OAuth apps
 * post on someone's behalf, which is not that person approving.
 */
const AUTOMATED: [prop: string, why: string][] = [
  ['from_webhook', 'webhook post'],
  ['from_bot', 'bot post'],
  ['from_plugin', 'plugin post'],
  ['from_oauth_app', 'OAuth app post'],
  ['override_username', 'overridden username'],
];

/** Why this post can never act, or null if it is a person's normal post. */
export function notFromAPerson(post: ChatPost, botUserId: string): string | null {
  if (post.user_id === botUserId) return 'own post';
  if (post.original_id !== '') return 'old version of an edited post';
  if (post.type !== '') return `post type ${post.type}`;
  for (const [prop, why] of AUTOMATED) if (Object.hasOwn(post.props, prop)) return why;
  return null;
}

export const MAX_MENTION_LENGTH = 2000;
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
      problems.push(`${code(m[4], 40)} is not key=value`);
      continue;
    }
    const key = m[1]!;
    if (!/^[a-z][a-z0-9_]{0,63}$/.test(key)) problems.push(`${code(key, 40)} is not a parameter name`);
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
      // Everything after the verb and the runbook name: the params.
      const { params, problems } = parseParams(/^\S+\s*\S*([\s\S]*)$/.exec(text)![1]!);
      if (!/^[a-z0-9][a-z0-9_.-]{0,63}$/.test(runbook))
        problems.unshift('name a runbook: run <runbook> key=value …');
      return { kind: 'run', runbook, params, problems };
    }
    case 'status':
      return { kind: 'status', jobId: jobRef(words[0]) };
    case 'cancel':
      return { kind: 'cancel', jobId: jobRef(words[0]), reason: cut(words.slice(1).join(' '), 300) };
    case 'pause':
    case 'resume':
      return { kind: verb!.toLowerCase() as 'pause' | 'resume', reason: cut(words.join(' '), 300) };
    case 'help':
    case '':
      return { kind: 'help' };
    default:
      return { kind: 'unknown', text: text.slice(0, 80) };
  }
}

/**
 * A decision phrase on a later line of a short message ("lgtm⏎APPROVE job:1 step:x") is not a
 * decision (rule 2: nothing else may be in the message), but its author meant one and should be
 * told. Quoted lines are someone else's words and stay chatter.
 */
function buriedDecision(message: string): Extract<Command, { kind: 'near_miss' }> | null {
  if (message.length > MAX_COMMAND_LENGTH) return null;
  for (const line of message.split(/\r?\n/).slice(1, 10)) {
    if (/^\s*>/.test(line)) continue;
    const c = parseCommand(line);
    if (c.kind === 'none') continue;
    if (c.kind === 'near_miss') return { ...c, reason: 'extra_text' };
    const intent = c.kind;
    const expected =
      c.kind === 'approve'
        ? `APPROVE job:${c.jobId} step:${c.step}`
        : c.kind === 'deny'
          ? `DENY job:${c.jobId} step:${c.step} <reason>`
          : c.kind === 'confirm'
            ? `CONFIRM job:${c.jobId}`
            : `REVOKE job:${c.jobId} <reason>`;
    return { kind: 'near_miss', intent, reason: 'extra_text', expected };
  }
  return null;
}

/** Routes one post. Chatter (no command, no mention) is `ignore`, decided without I/O. */
export function routePost(post: ChatPost, bot: { id: string; username: string }): Intent {
  const not = notFromAPerson(post, bot.id);
  if (not) return { kind: 'ignore', why: not };
  const command = parseCommand(post.message);
  if (command.kind !== 'none') return { kind: 'decision', command };
  const buried = buriedDecision(post.message);
  if (buried) return { kind: 'decision', command: buried };
  const text = post.message.trimStart();
  const head = text.slice(0, bot.username.length + 2);
  const mention = new RegExp(`^@${bot.username.replace(/[.-]/g, '\\$&')}(?![a-z0-9._-])`, 'i');
  if (mention.test(head)) {
    if (post.message.length > MAX_MENTION_LENGTH) {
      return {
        kind: 'mention',
        command: { kind: 'too_long', length: post.message.length, limit: MAX_MENTION_LENGTH },
      };
    }
    // `@bot: help` and `@bot, help` address the bot as `@bot help` does.
    return {
      kind: 'mention',
      command: parseMention(text.slice(bot.username.length + 1).replace(/^[:,]/, '')),
    };
  }
  return { kind: 'ignore', why: 'not for the bot' };
}
