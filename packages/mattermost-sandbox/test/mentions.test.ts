import { describe, expect, it } from 'vitest';
import { mentionedUserIds, type MentionInput } from '../src/mentions.js';

const members = [
  { id: 'a', username: 'alice', online: true },
  { id: 'b', username: 'bob', online: false },
  { id: 'c', username: 'clawbot', online: true },
];
const base: MentionInput = {
  message: '',
  senderId: 'a',
  channelType: 'O',
  channelName: 'town-square',
  members,
  fromWebhook: false,
  allowChannelMentions: true,
};
const mentioned = (over: Partial<MentionInput>): string[] => mentionedUserIds({ ...base, ...over }).sort();

describe('mentionedUserIds', () => {
  it('finds @username case-insensitively, with trailing punctuation, outside code', () => {
    expect(mentioned({ message: '@BOB, and @clawbot.' })).toEqual(['b', 'c']);
    expect(mentioned({ message: 'email bob@example.com or `@bob` or ```\n@clawbot\n```' })).toEqual([]);
    expect(mentioned({ message: '@bobby @nobody' })).toEqual([]);
  });

  it('never lets the sender mention themselves, unless the post came from a webhook', () => {
    expect(mentioned({ message: '@alice' })).toEqual([]);
    expect(mentioned({ message: '@alice', fromWebhook: true })).toEqual(['a']);
  });

  it('expands @channel/@all to everyone and @here to online members, when allowed', () => {
    expect(mentioned({ message: '@channel' })).toEqual(['b', 'c']);
    expect(mentioned({ message: '@all' })).toEqual(['b', 'c']);
    expect(mentioned({ message: '@here' })).toEqual(['c']);
    expect(mentioned({ message: '@channel', allowChannelMentions: false })).toEqual([]);
  });

  it('mentions the other member of a DM, and both when an outsider or a webhook posts', () => {
    expect(mentioned({ channelType: 'D', channelName: 'a__c', message: 'hi' })).toEqual(['c']);
    expect(mentioned({ channelType: 'D', channelName: 'b__c', message: 'hi' })).toEqual(['b', 'c']);
    expect(mentioned({ channelType: 'D', channelName: 'a__c', message: 'hi', fromWebhook: true })).toEqual([
      'a',
      'c',
    ]);
  });
});
