import type { GroupSearchParams } from '@mattermost/types/groups';
import type { Logger } from 'pino';
import type { NameLookup } from '../policy/name-lookup.js';
import { ChatError } from '../ports/chat-error.js';
import { MattermostRest } from './mattermost-rest.js';

/** Group search pages read before giving up on finding an exact name among prefix matches. */
const GROUP_PAGES = 5;
const GROUP_PAGE_SIZE = 200;

/**
 * 404, and 403 (a private team or channel the bot is not in), both mean the bot cannot rely on
 * the thing: it is reported as unknown. Everything else (unreachable, busy, token refused)
 * is thrown, so the name stays unchecked and is asked about again.
 */
function isAbsent(err: unknown): boolean {
  return err instanceof ChatError && (err.kind === 'not_found' || err.kind === 'forbidden');
}

/**
 * The policy loader's name lookups over Mattermost REST v4. Names reach here already checked
 * against the grammar of `policy/mattermost-refs.ts`; they are still percent-encoded, since
 * Client4 puts them into the path as they are.
 */
export function mattermostNameLookup(rest: MattermostRest, attempts = 2): NameLookup {
  const ask = async <T>(what: string, fn: Parameters<MattermostRest['call']>[1]): Promise<T | null> => {
    try {
      return (await rest.call(what, fn, attempts)) as T;
    } catch (err) {
      if (isAbsent(err)) return null;
      throw err;
    }
  };
  return {
    async userByUsername(username) {
      const user = await ask<{ id: string; is_bot?: boolean; delete_at?: number }>('getUserByUsername', (c) =>
        c.getUserByUsername(encodeURIComponent(username)),
      );
      return user && { id: user.id, is_bot: user.is_bot === true, delete_at: user.delete_at ?? 0 };
    },
    async teamByName(name) {
      const team = await ask<{ id: string; delete_at?: number }>('getTeamByName', (c) =>
        c.getTeamByName(encodeURIComponent(name)),
      );
      return team && { id: team.id, delete_at: team.delete_at ?? 0 };
    },
    async channelByName(team, channel) {
      const ch = await ask<{ id: string; delete_at?: number }>('getChannelByNameAndTeamName', (c) =>
        c.getChannelByNameAndTeamName(encodeURIComponent(team), encodeURIComponent(channel), true),
      );
      return ch && { id: ch.id, delete_at: ch.delete_at ?? 0 };
    },
    async groupsNamed(name) {
      // `q` matches names and display names by prefix: keep only exact names.
      const exact: { id: string; delete_at: number }[] = [];
      for (let page = 0; page < GROUP_PAGES; page++) {
        const search: GroupSearchParams = {
          q: name,
          filter_allow_reference: true,
          include_archived: true,
          page,
          per_page: GROUP_PAGE_SIZE,
        };
        let groups: { id: string; name?: string | null; delete_at?: number }[];
        try {
          groups = (await ask('getGroups', (c) => c.getGroups(search))) ?? [];
        } catch (err) {
          // Groups are a licensed feature: an unlicensed server answers 501, and has no such group.
          if (err instanceof ChatError && err.status === 501) return [];
          throw err;
        }
        for (const g of groups) if (g.name === name) exact.push({ id: g.id, delete_at: g.delete_at ?? 0 });
        if (groups.length < GROUP_PAGE_SIZE) break;
      }
      return exact;
    },
  };
}

/** The lookup over a configured Mattermost; null without one (every name then stays unresolved). */
export function nameLookupFor(
  mattermost: { url: string; token: string } | null,
  log: Logger,
  attempts?: number,
): NameLookup | null {
  if (!mattermost) return null;
  const rest = new MattermostRest({ ...mattermost, log: log.child({ component: 'mattermost-names' }) });
  return mattermostNameLookup(rest, attempts);
}
