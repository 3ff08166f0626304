import { MENTION_TOKEN } from '../../src/chat/mention-token.js';

/** Bidi controls: they can make text read other than it is. */
export const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

/**
 * Everything in `text` (a bot message before delivery renders its `<@id>` tokens) that
 * Mattermost would act on in the bot's voice: bidi controls, mentions, autolinks, markdown links
 * and images, channel links. `<@id>` tokens of `ours` are the bot's own names for people, and
 * links below `publicUrl` the bot's own pages; both are allowed.
 */
export function liveMarkup(
  text: string,
  ours: readonly string[] = [],
  publicUrl = 'https://claw.example.test',
): string[] {
  const found: string[] = [];
  if (BIDI.test(text)) found.push('bidi control');
  for (const m of text.matchAll(MENTION_TOKEN)) if (!ours.includes(m[1]!)) found.push(`name token ${m[0]}`);
  const rest = text.replace(MENTION_TOKEN, '');
  const checks: [RegExp, string][] = [
    [/@(?!\u200b)/u, 'mention'],
    [/~(?!\u200b)/u, 'channel link'],
    [/www\./iu, 'www autolink'],
    [/\]\(/u, 'markdown link or image'],
  ];
  for (const [re, what] of checks) if (re.test(rest)) found.push(what);
  for (const m of rest.matchAll(/[a-z]+:\/\/\S*/giu))
    if (!m[0].startsWith(`${publicUrl}/`)) found.push(`link ${m[0]}`);
  return found;
}

/**
 * A bot message without its fenced ```json blocks of arguments: there, text is shown as code and
 * is inert (whether nothing in the arguments ended a block early is messages.test.ts's concern).
 */
export const outsideJsonBlocks = (text: string): string => text.replace(/^```json\n[\s\S]*?\n```$/gmu, '');
