import {
  type BoundGroups,
  bindGroups,
  bindPolicyNames,
  type NameProblem,
  namesOfGroups,
  namesOfPolicy,
} from './bind-names.js';
import { hashPolicy } from './hash-policy.js';
import type { PolicyDir, PolicyFileResult } from './load-policy-dir.js';
import { type NameRef, nameIn, parseRef } from './mattermost-refs.js';
import type { NameTable } from './resolve-names.js';

/** A policy directory whose valid files are bound to ids and hashed in the form that is signed. */
export interface BoundPolicyDir extends PolicyDir {
  /** groups.json with names replaced by ids; null when groups.json is missing or invalid. */
  boundGroups: BoundGroups | null;
  /** Names in groups.json that did not resolve (each closes the policies naming its group). */
  groupNameProblems: NameProblem[];
  /** Channel names written in policies that did not resolve, with why: no id, so nothing to open. */
  unresolvedChannels: Map<string, string[]>;
}

/** Every name a load must look up: groups.json's, and those of the channels policies claim (broken ones too). */
export function namesInPolicyDir(dir: PolicyDir): NameRef[] {
  return [
    ...(dir.groups.ok ? namesOfGroups(dir.groups.value) : []),
    ...dir.files.flatMap((f) =>
      f.ok ? namesOfPolicy(f.policy) : f.claimedChannels.flatMap((c) => nameIn('channel', c) ?? []),
    ),
  ];
}

/** The ids a list of channel references stands for; a name that did not resolve stands for none. */
function channelIds(refs: readonly string[], table: NameTable): string[] {
  return refs.flatMap((written) => {
    const parsed = parseRef('channel', written);
    if ('id' in parsed) return [parsed.id];
    if (!('name' in parsed)) return [];
    const r = table.get(parsed.name);
    return r.ok ? [r.id] : [];
  });
}

/**
 * Binds every valid policy to the ids its names resolved to and hashes the result (pure). A
 * policy whose names (or whose groups' names) did not resolve becomes a failed file that
 * still claims every channel it could be tied to, so those channels close rather than open.
 */
export function bindPolicyDir(dir: PolicyDir, table: NameTable): BoundPolicyDir {
  const boundGroups = dir.groups.ok ? bindGroups(dir.groups.value, table) : null;
  const unresolvedChannels = new Map<string, string[]>();
  const noteChannels = (refs: readonly string[], who: string) => {
    for (const written of refs) {
      const name = nameIn('channel', written);
      const r = name ? table.get(name) : null;
      if (r && !r.ok)
        unresolvedChannels.set(written, [...(unresolvedChannels.get(written) ?? []), `${who}: ${r.reason}`]);
    }
  };
  const files = dir.files.map((f): PolicyFileResult => {
    if (!f.ok) {
      noteChannels(f.claimedChannels, f.policyName ? `policy "${f.policyName}"` : f.file);
      return { ...f, claimedChannels: channelIds(f.claimedChannels, table) };
    }
    const channels = f.policy.channel_context.allowed_channel_ids;
    noteChannels(channels, `policy "${f.policy.policy_name}"`);
    const bound = boundGroups ? bindPolicyNames(f.policy, boundGroups, table) : null;
    if (bound?.ok) return { file: f.file, ok: true, ...hashPolicy(bound.value) };
    return {
      file: f.file,
      ok: false,
      problems: bound?.problems ?? [],
      claimedChannels: channelIds(channels, table),
      policyName: f.policy.policy_name,
    };
  });
  return {
    ...dir,
    files,
    boundGroups,
    groupNameProblems: boundGroups ? [...boundGroups.problems.values()].flat() : [],
    unresolvedChannels,
  };
}
