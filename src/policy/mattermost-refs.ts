/**
 * How policies and `groups.json` name Mattermost things: by id, or by a name an operator can
 * read. The grammar leaves nothing to guess: a value of exactly 26 lowercase letters and digits
 * is an id (Mattermost's `model.NewId`), and a name has a shape no id has — `@username`,
 * `@group-name`, `team-name/channel-name`, or a team name that is not 26 letters and digits.
 * `policies/wpc.schema.json` and `policies/groups.schema.json` carry the same patterns.
 */

export type RefKind = 'user' | 'group' | 'team' | 'channel';

/** A name as written, with what it names. */
export interface NameRef {
  kind: RefKind;
  written: string;
}

export const MATTERMOST_ID = /^[a-z0-9]{26}$/;

/** Mattermost usernames start with a letter (`model.IsValidUsername`); group names need not. */
const NAME_PATTERNS: Readonly<Record<RefKind, RegExp>> = {
  user: /^@[a-z][a-z0-9._-]{0,63}$/,
  group: /^@[a-z0-9][a-z0-9._-]{0,63}$/,
  team: /^[a-z0-9][a-z0-9_-]{0,63}$/,
  channel: /^[a-z0-9][a-z0-9_-]{0,63}\/[a-z0-9][a-z0-9_-]{0,63}$/,
};

const SHAPES: Readonly<Record<RefKind, string>> = {
  user: 'a 26-character user id or @username',
  group: 'a 26-character group id or @group-name',
  team: 'a 26-character team id or a team name',
  channel: 'a 26-character channel id or team-name/channel-name',
};

export type ParsedRef =
  { kind: RefKind; id: string } | { kind: RefKind; name: NameRef } | { invalid: string };

/** Reads one reference. Untrusted text (a broken file, a signed version from the database) goes through here. */
export function parseRef(kind: RefKind, written: unknown): ParsedRef {
  if (typeof written !== 'string') return { invalid: `must be ${SHAPES[kind]}` };
  if (MATTERMOST_ID.test(written)) return { kind, id: written };
  if (NAME_PATTERNS[kind].test(written)) return { kind, name: { kind, written } };
  return { invalid: `must be ${SHAPES[kind]}` };
}

/** The name a reference holds, or null for an id or anything malformed. */
export function nameIn(kind: RefKind, written: unknown): NameRef | null {
  const parsed = parseRef(kind, written);
  return 'name' in parsed ? parsed.name : null;
}

/** The parts of a `team-name/channel-name` reference. */
export function channelNameParts(written: string): { team: string; channel: string } {
  const slash = written.indexOf('/');
  return { team: written.slice(0, slash), channel: written.slice(slash + 1) };
}

/** One key per (kind, name): a user and a group may both be called `@ops`. */
export const refKey = (ref: NameRef): string => `${ref.kind}:${ref.written}`;
