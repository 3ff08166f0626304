import type { MmChannelType } from './types.js';

export interface MentionCandidate {
  id: string;
  username: string;
  /** Counts for `@here` (the server's status cache says "online"). */
  online: boolean;
}

export interface MentionInput {
  message: string;
  senderId: string;
  channelType: MmChannelType;
  /** For a DM, `<userA>__<userB>`. */
  channelName: string;
  members: MentionCandidate[];
  fromWebhook: boolean;
  /** allowChannelMentions: a plain post by someone with use_channel_mentions. */
  allowChannelMentions: boolean;
}

/** Code blocks and inline code never mention anyone (the server strips them before parsing). */
function withoutCode(message: string): string {
  return message.replace(/```[\s\S]*?(```|$)/g, ' ').replace(/`[^`\n]*`/g, ' ');
}

/** Words as MentionParserStandard splits them: letters, digits and `:.-_@` hold together. */
function words(text: string): string[] {
  return text.split(/[^\p{L}\p{N}:.\-_@]+/u).filter(Boolean);
}

/**
 * Who a post mentions, per app/notification.go getExplicitMentionsAndKeywords: in a DM the
 * other member (both when a webhook or an outsider posts); elsewhere `@username` of channel
 * members, `@channel`/`@all` (everyone) and `@here` (online members) when channel mentions are
 * allowed; in a group message every member. The sender never mentions themselves unless the post
 * came from a webhook.
 */
export function mentionedUserIds(input: MentionInput): string[] {
  const memberIds = new Set(input.members.map((m) => m.id));
  const mentioned = new Set<string>();
  if (input.channelType === 'D') {
    for (const id of input.channelName.split('__')) {
      if ((id !== input.senderId || input.fromWebhook) && memberIds.has(id)) mentioned.add(id);
    }
    return [...mentioned];
  }
  const keywords = new Map<string, string[]>();
  for (const member of input.members) keywords.set(`@${member.username.toLowerCase()}`, [member.id]);
  if (input.allowChannelMentions) {
    const everyone = input.members.map((m) => m.id);
    keywords.set('@channel', everyone);
    keywords.set('@all', everyone);
    keywords.set(
      '@here',
      input.members.filter((m) => m.online).map((m) => m.id),
    );
  }
  for (const word of words(withoutCode(input.message))) {
    if (!word.startsWith('@')) continue;
    const lower = word.toLowerCase();
    const ids = keywords.get(lower) ?? keywords.get(lower.replace(/[.\-:_]+$/, ''));
    for (const id of ids ?? []) mentioned.add(id);
  }
  if (input.channelType === 'G') for (const id of memberIds) mentioned.add(id);
  if (!input.fromWebhook) mentioned.delete(input.senderId);
  return [...mentioned];
}
