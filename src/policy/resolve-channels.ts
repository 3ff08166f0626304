import type { Wpc } from './types.js';

/** A policy version that could be made active, with where it came from. */
export interface Candidate {
  name: string;
  hash: string;
  policy: Wpc;
  origin: 'file' | 'pin';
}

export interface ResolveInput {
  /** Valid policy files. */
  files: { file: string; name: string; hash: string; policy: Wpc }[];
  /** Files (or pins) that failed to load, validate or verify, with what they claim(ed). */
  failedFiles: { file: string; name: string | null; claimedChannels: string[]; reason?: string }[];
  /** name -> pinned hash. */
  pins: ReadonlyMap<string, string>;
  /** Pinned versions read back from the registry: verified policy, or why not. */
  pinned: ReadonlyMap<string, { ok: true; policy: Wpc } | { ok: false; reason: string }>;
  /** Names that must not be activated at all (e.g. their pin history failed verification). */
  closedNames?: ReadonlySet<string>;
}

export interface ChannelBinding {
  policyName: string;
  hash: string;
  policy: Wpc;
}

export interface Resolution {
  active: Map<string, Candidate>;
  channels: Map<string, ChannelBinding>;
  /** Channels that stay closed, each with every reason. */
  closed: Map<string, string[]>;
  /** Policy-level problems to report (names that could not be activated). */
  problems: { name: string; reason: string }[];
}

/**
 * Decides which policy governs each channel. Fail closed: a channel is open only when exactly
 * one active, verified policy claims it and nothing broken claims it too.
 */
export function resolveChannels(input: ResolveInput): Resolution {
  const active = new Map<string, Candidate>();
  const problems: Resolution['problems'] = [];
  const closed = new Map<string, string[]>();
  const close = (channel: string, reason: string) =>
    closed.set(channel, [...(closed.get(channel) ?? []), reason]);

  const byName = new Map<string, ResolveInput['files']>();
  for (const f of input.files) byName.set(f.name, [...(byName.get(f.name) ?? []), f]);
  const brokenNames = new Set(input.failedFiles.flatMap((f) => (f.name ? [f.name] : [])));

  const names = new Set([...byName.keys(), ...input.pins.keys()]);
  for (const name of [...names].sort()) {
    const pinnedHash = input.pins.get(name);
    const files = byName.get(name) ?? [];
    if (input.closedNames?.has(name)) {
      for (const f of files)
        for (const c of f.policy.channel_context.allowed_channel_ids) close(c, `policy "${name}" is closed`);
      continue;
    }
    if (pinnedHash !== undefined) {
      const pinned = input.pinned.get(pinnedHash);
      if (pinned?.ok) {
        active.set(name, { name, hash: pinnedHash, policy: pinned.policy, origin: 'pin' });
      } else {
        const reason = `pinned version ${pinnedHash} failed verification: ${pinned?.reason ?? 'not loaded'}`;
        problems.push({ name, reason });
        for (const f of files)
          for (const c of f.policy.channel_context.allowed_channel_ids)
            close(c, `policy "${name}": ${reason}`);
      }
      continue;
    }
    if (files.length > 1) {
      const reason = `defined by ${files.length} files (${files.map((f) => f.file).join(', ')})`;
      problems.push({ name, reason });
      for (const f of files)
        for (const c of f.policy.channel_context.allowed_channel_ids) close(c, `policy "${name}" ${reason}`);
      continue;
    }
    if (brokenNames.has(name) && files.length > 0) {
      const reason = 'another file with this name failed validation';
      problems.push({ name, reason });
      for (const f of files)
        for (const c of f.policy.channel_context.allowed_channel_ids) close(c, `policy "${name}": ${reason}`);
      continue;
    }
    const only = files[0];
    if (only) active.set(name, { name, hash: only.hash, policy: only.policy, origin: 'file' });
  }

  for (const f of input.failedFiles) {
    for (const c of f.claimedChannels) close(c, f.reason ?? `${f.file} failed validation`);
  }

  const claims = new Map<string, Candidate[]>();
  for (const cand of active.values()) {
    for (const c of cand.policy.channel_context.allowed_channel_ids)
      claims.set(c, [...(claims.get(c) ?? []), cand]);
  }
  const channels = new Map<string, ChannelBinding>();
  for (const [channel, cands] of claims) {
    if (cands.length > 1) {
      close(channel, `claimed by ${cands.length} policies: ${cands.map((c) => c.name).join(', ')}`);
      continue;
    }
    const cand = cands[0]!;
    if (!closed.has(channel))
      channels.set(channel, { policyName: cand.name, hash: cand.hash, policy: cand.policy });
  }
  return { active, channels, closed, problems };
}
