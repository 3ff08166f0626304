/**
 * `<@user id>` marks a person in a bot message. Outbox delivery renders it as `@username` just
 * before posting: identity is decided by id, names are for display only.
 */
export const mention = (userId: string) => `<@${userId}>`;
export const MENTION_TOKEN = /<@([a-z0-9]{26})>/g;
