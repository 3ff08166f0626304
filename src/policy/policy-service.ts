import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Db } from '../db/database.js';
import { isAppError } from '../errors.js';
import { trustedSignerDids } from '../tokens/key-ring.js';
import type { SigningKey } from '../tokens/signing-key.js';
import { loadPolicyDir, type PolicyDir } from './load-policy-dir.js';
import { currentPins } from './pins.js';
import { envelopeFromRow, registerPolicy } from './registry.js';
import { type ChannelBinding, type Resolution, resolveChannels } from './resolve-channels.js';
import type { GroupsFile, Wpc } from './types.js';

export interface PolicySnapshot {
  loadedAt: Date;
  dir: PolicyDir;
  resolution: Resolution;
  groups: GroupsFile | null;
  /** Every problem worth an operator's attention, one line each. */
  problems: string[];
  fingerprint: string;
}

export type ChannelPolicy = ({ open: true } & ChannelBinding) | { open: false; reasons: string[] };

/**
 * Owns the live policy state: loads POLICIES_DIR, registers every valid version (signed) in
 * the registry, applies pins, and answers "which policy governs this channel?". Reloads when
 * a pin is added or a policy file changes.
 */
export class PolicyService {
  private snapshot: PolicySnapshot | null = null;

  constructor(
    private readonly deps: { db: Db; key: SigningKey; clock: Clock; log: Logger; policiesDir: string },
  ) {}

  current(): PolicySnapshot | null {
    return this.snapshot;
  }

  channelPolicy(channelId: string): ChannelPolicy {
    const snap = this.snapshot;
    if (!snap) return { open: false, reasons: ['policies are not loaded'] };
    const binding = snap.resolution.channels.get(channelId);
    if (binding) return { open: true, ...binding };
    return {
      open: false,
      reasons: snap.resolution.closed.get(channelId) ?? ['no policy allows this channel'],
    };
  }

  /** Reloads if pins or files changed since the last load; returns whether it did. */
  async refreshIfChanged(): Promise<boolean> {
    const fingerprint = await this.fingerprint();
    if (this.snapshot && fingerprint === this.snapshot.fingerprint) return false;
    await this.reload(fingerprint);
    return true;
  }

  async reload(knownFingerprint?: string): Promise<PolicySnapshot> {
    const { db, key, clock, log } = this.deps;
    const fingerprint = knownFingerprint ?? (await this.fingerprint());
    const dir = await loadPolicyDir(this.deps.policiesDir);
    const problems: string[] = [];
    if (!dir.groups.ok)
      problems.push(...dir.groups.problems.map((p) => `groups.json ${p.path}: ${p.message} [${p.rule}]`));

    const files: Parameters<typeof resolveChannels>[0]['files'] = [];
    const failedFiles: Parameters<typeof resolveChannels>[0]['failedFiles'] = [];
    for (const f of dir.files) {
      if (f.ok) {
        const source = path.basename(f.file);
        const { created } = await registerPolicy(db, { hashed: f, key, clock, source });
        if (created)
          log.info({ policy: f.policy.policy_name, hash: f.hash, source }, 'policy version registered');
        files.push({ file: source, name: f.policy.policy_name, hash: f.hash, policy: f.policy });
      } else {
        const source = path.basename(f.file);
        problems.push(...f.problems.map((p) => `${source} ${p.path}: ${p.message} [${p.rule}]`));
        failedFiles.push({
          file: source,
          name: f.policyName,
          claimedChannels: [...f.claimedChannels, ...(await this.channelsPreviouslyFrom(source))],
        });
      }
    }

    const { pins } = await currentPins(db);
    const trusted = await trustedSignerDids(db);
    const pinned = new Map<string, { ok: true; policy: Wpc } | { ok: false; reason: string }>();
    for (const hash of new Set(pins.values())) {
      const row = await db
        .selectFrom('wpc_registry')
        .selectAll()
        .where('policy_hash_b64u', '=', hash)
        .executeTakeFirst();
      try {
        if (!row) throw new Error('not in the registry');
        pinned.set(hash, { ok: true, policy: envelopeFromRow(row, trusted).payload });
      } catch (err) {
        pinned.set(hash, { ok: false, reason: isAppError(err) ? err.message : (err as Error).message });
      }
    }

    const resolution = resolveChannels({ files, failedFiles, pins, pinned });
    problems.push(...resolution.problems.map((p) => `policy "${p.name}": ${p.reason}`));
    for (const [channel, reasons] of resolution.closed)
      problems.push(`channel ${channel} closed: ${reasons.join('; ')}`);
    for (const p of problems) log.error({ problem: p }, 'policy problem');
    log.info(
      {
        active: [...resolution.active.values()].map((c) => ({
          name: c.name,
          hash: c.hash,
          origin: c.origin,
        })),
        openChannels: resolution.channels.size,
        closedChannels: resolution.closed.size,
      },
      'policies loaded',
    );
    this.snapshot = {
      loadedAt: clock(),
      dir,
      resolution,
      groups: dir.groups.ok ? dir.groups.value : null,
      problems,
      fingerprint,
    };
    return this.snapshot;
  }

  /** Channels claimed by versions first registered from a file that is now unreadable. */
  private async channelsPreviouslyFrom(source: string): Promise<string[]> {
    const rows = await this.deps.db
      .selectFrom('wpc_registry')
      .select('canonical_payload')
      .where('source', '=', source)
      .execute();
    return rows.flatMap((r) => {
      try {
        return (JSON.parse(r.canonical_payload) as Wpc).channel_context.allowed_channel_ids;
      } catch {
        return [];
      }
    });
  }

  private async fingerprint(): Promise<string> {
    const { version } = await currentPins(this.deps.db);
    let entries: string[];
    try {
      const names = (await fs.readdir(this.deps.policiesDir)).sort();
      entries = await Promise.all(
        names.map(async (n) => {
          const st = await fs.stat(path.join(this.deps.policiesDir, n)).catch(() => null);
          return `${n}:${st?.size ?? -1}:${st?.mtimeMs ?? -1}`;
        }),
      );
    } catch {
      entries = ['(unreadable)'];
    }
    return `${version}|${entries.join(',')}`;
  }
}
