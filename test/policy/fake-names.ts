import type { NameLookup } from '../../src/policy/name-lookup.js';

interface Thing {
  id: string;
  delete_at?: number;
}

/**
 * A Mattermost that answers name lookups from maps, counts the calls, and can be taken down.
 * Passed in as the policy service's `names` dependency, never mocked into a module.
 */
export class FakeNames implements NameLookup {
  users = new Map<string, Thing & { is_bot?: boolean }>();
  teams = new Map<string, Thing>();
  /** Keyed `team/channel`. */
  channels = new Map<string, Thing>();
  groups = new Map<string, Thing[]>();
  calls = 0;
  /** When set, every call throws this, as an unreachable server does. */
  down: Error | null = null;

  private ask<T>(answer: T): Promise<T> {
    this.calls++;
    return this.down ? Promise.reject(this.down) : Promise.resolve(answer);
  }

  userByUsername(username: string) {
    const u = this.users.get(username);
    return this.ask(u ? { id: u.id, is_bot: u.is_bot === true, delete_at: u.delete_at ?? 0 } : null);
  }

  teamByName(name: string) {
    const t = this.teams.get(name);
    return this.ask(t ? { id: t.id, delete_at: t.delete_at ?? 0 } : null);
  }

  channelByName(team: string, channel: string) {
    const c = this.channels.get(`${team}/${channel}`);
    return this.ask(c ? { id: c.id, delete_at: c.delete_at ?? 0 } : null);
  }

  groupsNamed(name: string) {
    return this.ask((this.groups.get(name) ?? []).map((g) => ({ id: g.id, delete_at: g.delete_at ?? 0 })));
  }
}

/** A well-formed, made-up 26-character Mattermost id. */
export const mmId = (seed: string): string => seed.padEnd(26, 'x').slice(0, 26);
