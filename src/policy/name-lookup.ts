/**
 * What the policy loader asks Mattermost about names: facts only, judged in `resolve-names.ts`.
 * `src/chat/mattermost-names.ts` implements it over REST v4. Each method answers null (or no
 * match) when Mattermost knows no such thing or will not show it to the bot, and throws when
 * Mattermost cannot be asked (unreachable, busy, token refused): a name is never judged on a
 * failed call.
 */
export interface NameLookup {
  /** `GET /users/username/{username}` (without the `@`). */
  userByUsername(username: string): Promise<{ id: string; is_bot: boolean; delete_at: number } | null>;
  /** `GET /teams/name/{name}`. */
  teamByName(name: string): Promise<{ id: string; delete_at: number } | null>;
  /** `GET /teams/name/{team}/channels/name/{channel}`, archived channels included. */
  channelByName(team: string, channel: string): Promise<{ id: string; delete_at: number } | null>;
  /** The groups whose `name` is exactly this (without the `@`), deleted ones included if Mattermost says. */
  groupsNamed(name: string): Promise<{ id: string; delete_at: number }[]>;
}
