import { channelNameParts, MATTERMOST_ID, type NameRef, refKey } from './mattermost-refs.js';
import type { NameLookup } from './name-lookup.js';

/**
 * Why a name stands for no id: Mattermost knows no such thing (`unknown`), more than one
 * (`ambiguous`), one that may not be used (`refused`: a bot, a deactivated user, an archived
 * channel), or it could not be asked (`unchecked`). Every one of them closes what relies on it.
 */
export type NameStatus = 'unknown' | 'ambiguous' | 'refused' | 'unchecked';

export type NameResolution = { ok: true; id: string } | { ok: false; status: NameStatus; reason: string };

/** The names of one load, each looked up once, and what Mattermost said. */
export class NameTable {
  private readonly byKey = new Map<string, { ref: NameRef; resolution: NameResolution }>();

  constructor(readonly resolvedAt: Date) {}

  set(ref: NameRef, resolution: NameResolution): void {
    this.byKey.set(refKey(ref), { ref, resolution });
  }

  get(ref: NameRef): NameResolution {
    return (
      this.byKey.get(refKey(ref))?.resolution ?? {
        ok: false,
        status: 'unchecked',
        reason: 'was not looked up',
      }
    );
  }

  entries(): { ref: NameRef; resolution: NameResolution }[] {
    return [...this.byKey.values()];
  }

  /** Some name could not be asked about: worth asking again soon. */
  hasUnchecked(): boolean {
    return this.entries().some((e) => !e.resolution.ok && e.resolution.status === 'unchecked');
  }
}

const refused = (reason: string): NameResolution => ({ ok: false, status: 'refused', reason });
const unknown = (reason: string): NameResolution => ({ ok: false, status: 'unknown', reason });

/** An id Mattermost answered with; anything but a well-formed id is refused, never used. */
function found(ref: NameRef, id: string): NameResolution {
  return MATTERMOST_ID.test(id)
    ? { ok: true, id }
    : refused(`Mattermost answered ${ref.written} with a malformed id`);
}

/** Asks about one name and judges the answer (pure judgement over what the lookup said). */
async function lookUp(ref: NameRef, lookup: NameLookup): Promise<NameResolution> {
  const bare = ref.written.replace(/^@/, '');
  switch (ref.kind) {
    case 'user': {
      const user = await lookup.userByUsername(bare);
      if (!user) return unknown(`no Mattermost user is named ${ref.written}`);
      if (user.is_bot) return refused(`${ref.written} is a bot account: only people request and approve`);
      if (user.delete_at > 0) return refused(`${ref.written} is deactivated in Mattermost`);
      return found(ref, user.id);
    }
    case 'team': {
      const team = await lookup.teamByName(bare);
      if (!team) return unknown(`no team named "${ref.written}" is visible to the bot`);
      if (team.delete_at > 0) return refused(`team "${ref.written}" is archived`);
      return found(ref, team.id);
    }
    case 'channel': {
      const { team, channel } = channelNameParts(ref.written);
      const ch = await lookup.channelByName(team, channel);
      if (!ch)
        return unknown(
          `no channel ${ref.written} is visible to the bot (a private channel shows only to its members: add the bot)`,
        );
      if (ch.delete_at > 0) return refused(`channel ${ref.written} is archived`);
      return found(ref, ch.id);
    }
    case 'group': {
      const groups = await lookup.groupsNamed(bare);
      if (groups.length === 0)
        return unknown(`no Mattermost group is named ${ref.written} (user groups need a licensed server)`);
      if (groups.length > 1)
        return {
          ok: false,
          status: 'ambiguous',
          reason: `${groups.length} Mattermost groups are named ${ref.written}`,
        };
      if (groups[0]!.delete_at > 0) return refused(`group ${ref.written} is deleted in Mattermost`);
      return found(ref, groups[0]!.id);
    }
  }
}

/**
 * Looks every distinct name up, a few at a time. Once one call fails (Mattermost unreachable,
 * token refused), the names not yet asked about are left unchecked with that reason instead of
 * each waiting for its own failure: a load never hangs on a server that is down.
 */
export async function resolveNames(
  refs: Iterable<NameRef>,
  lookup: NameLookup | null,
  opts: { now: Date; concurrency?: number },
): Promise<NameTable> {
  const distinct = new Map<string, NameRef>();
  for (const ref of refs) distinct.set(refKey(ref), ref);
  const table = new NameTable(opts.now);
  const queue = [...distinct.values()];
  let failure: string | null = null;
  const worker = async () => {
    for (let ref = queue.shift(); ref; ref = queue.shift()) {
      if (!lookup || failure !== null) {
        const reason =
          failure ?? 'Mattermost is not configured (MATTERMOST_URL), so names cannot be resolved';
        table.set(ref, { ok: false, status: 'unchecked', reason });
        continue;
      }
      try {
        table.set(ref, await lookUp(ref, lookup));
      } catch (err) {
        failure ??= `Mattermost could not be asked: ${err instanceof Error ? err.message : String(err)}`;
        table.set(ref, { ok: false, status: 'unchecked', reason: failure });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, worker));
  return table;
}
