import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Db } from '../db/database.js';
import type { WpcRegistryRow } from '../db/schema.js';
import type { KeyRing } from '../tokens/key-ring.js';
import { loadPolicyDir, type PolicyDir } from './load-policy-dir.js';
import { pinsDigest, readPins } from './pins.js';
import { envelopeFromRow, registerPolicy, verifiedEnvelope } from './registry.js';
import {
  type ChannelBinding,
  type Resolution,
  type ResolveInput,
  resolveChannels,
} from './resolve-channels.js';
import type { GroupsFile, Wpc } from './types.js';
import { formatProblems, validatePolicy } from './validate-policy.js';
import { approvalPolicyOf, carriedApprovalPolicy } from './wpc-payload.js';

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

export interface PolicyServiceDeps {
  db: Db;
  keyRing: KeyRing;
  clock: Clock;
  log: Logger;
  policiesDir: string;
  /** Inspect without writing: file versions are not registered (CLI read commands). */
  readOnly?: boolean;
  /**
   * Where the newest verified pin of each policy is remembered, outside the database, so
   * that deleting pins (which would silently roll a policy back) is noticed after a restart.
   */
  pinHeadsFile?: string;
}

async function readHeads(file: string | undefined): Promise<Map<string, string>> {
  if (!file) return new Map();
  try {
    const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
    return new Map(Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === 'string'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new Error(`pin heads file ${file} is unreadable; fix or remove it deliberately`, { cause: err });
  }
}

async function writeHeads(file: string, heads: ReadonlyMap<string, string>): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp`;
  await fs.writeFile(tmp, `${JSON.stringify(Object.fromEntries([...heads].sort()), null, 2)}\n`, {
    mode: 0o600,
  });
  await fs.rename(tmp, file);
}

function channelsOf(rows: readonly WpcRegistryRow[]): string[] {
  return rows.flatMap((r) => {
    try {
      const policy = carriedApprovalPolicy(JSON.parse(r.canonical_payload)) as Partial<Wpc> | undefined;
      const ids = policy?.channel_context?.allowed_channel_ids;
      return Array.isArray(ids) ? ids.filter((c): c is string => typeof c === 'string') : [];
    } catch {
      return [];
    }
  });
}

/**
 * Owns the live policy state: loads POLICIES_DIR, registers every valid version (signed) in
 * the registry, applies verified pins, and answers "which policy governs this channel?".
 * Reloads when a pin lands or a policy file's content changes.
 */
export class PolicyService {
  private snapshot: PolicySnapshot | null = null;
  private lastError: string | null = null;
  private inFlight: Promise<PolicySnapshot> | null = null;
  /** Newest verified pin per policy seen by this process. */
  private heads = new Map<string, string>();

  constructor(private readonly deps: PolicyServiceDeps) {}

  current(): PolicySnapshot | null {
    return this.snapshot;
  }

  /** Why the last reload failed, while the previous snapshot is still in use; null when healthy. */
  reloadError(): string | null {
    return this.lastError;
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

  /** Reloads if pins or file contents changed since the last load; returns whether it did. */
  async refreshIfChanged(): Promise<boolean> {
    try {
      const fingerprint = await this.fingerprint();
      if (this.snapshot && fingerprint === this.snapshot.fingerprint && !this.lastError) return false;
      await this.reload();
      return true;
    } catch (err) {
      this.lastError = (err as Error).message ?? String(err);
      throw err;
    }
  }

  /** One reload at a time: a caller arriving during a reload waits for that one and then runs its own. */
  async reload(): Promise<PolicySnapshot> {
    const previous = this.inFlight;
    const run = (async () => {
      await previous?.catch(() => {});
      try {
        const snap = await this.load();
        this.snapshot = snap;
        this.lastError = null;
        return snap;
      } catch (err) {
        this.lastError = (err as Error).message ?? String(err);
        throw err;
      }
    })();
    this.inFlight = run;
    try {
      return await run;
    } finally {
      if (this.inFlight === run) this.inFlight = null;
    }
  }

  private async load(): Promise<PolicySnapshot> {
    const { db, keyRing, clock, log } = this.deps;
    const previous = this.snapshot;
    const trusted = keyRing.trusts;
    const fingerprint = await this.fingerprint();
    const dir = await loadPolicyDir(this.deps.policiesDir);
    const groups = dir.groups.ok ? dir.groups.value : null;
    const problems: string[] = [];
    if (!dir.groups.ok) {
      problems.push(...dir.groups.problems.map((p) => `groups.json ${p.path}: ${p.message} [${p.rule}]`));
    }
    const registry = await db.selectFrom('wpc_registry').selectAll().execute();
    const rowsBy = (pick: (r: WpcRegistryRow) => boolean) => registry.filter(pick);
    // Every channel a name has claimed: in any registered version that still parses, and in the
    // version that was active before this reload (a tampered row may no longer say).
    const claimedBy = (name: string) => [
      ...channelsOf(rowsBy((r) => r.policy_name === name)),
      ...(previous?.resolution.active.get(name)?.policy.channel_context.allowed_channel_ids ?? []),
    ];

    const files: ResolveInput['files'] = [];
    const failedFiles: ResolveInput['failedFiles'] = [];
    for (const f of dir.files) {
      const source = path.basename(f.file);
      if (!f.ok) {
        problems.push(...f.problems.map((p) => `${source} ${p.path}: ${p.message} [${p.rule}]`));
        // What it claims now, what versions from this file claimed, and what its name claimed.
        const earlier = channelsOf(rowsBy((r) => r.source === source));
        failedFiles.push({
          file: source,
          name: f.policyName,
          claimedChannels: [
            ...f.claimedChannels,
            ...earlier,
            ...(f.policyName ? claimedBy(f.policyName) : []),
          ],
        });
        continue;
      }
      try {
        // What agents will fetch by hash must verify, or the channel does not open.
        if (this.deps.readOnly) {
          const rows = rowsBy((r) => r.policy_hash_b64u === f.hash);
          if (rows.length) verifiedEnvelope(f.hash, rows, trusted);
        } else {
          const { row, created } = await registerPolicy(db, {
            hashed: f,
            key: keyRing.active,
            clock,
            source,
          });
          if (created)
            log.info({ policy: f.policy.policy_name, hash: f.hash, source }, 'policy version registered');
          envelopeFromRow(row, trusted);
        }
        files.push({ file: source, name: f.policy.policy_name, hash: f.hash, policy: f.policy });
      } catch (err) {
        problems.push(`${source}: ${(err as Error).message}`);
        failedFiles.push({
          file: source,
          name: f.policy.policy_name,
          claimedChannels: f.policy.channel_context.allowed_channel_ids,
          reason: `${source}: its registered version failed verification`,
        });
      }
    }

    const knownHeads = new Map([...(await readHeads(this.deps.pinHeadsFile)), ...this.heads]);
    const pinState = await readPins(db, trusted, knownHeads);
    const pinned = new Map<string, { ok: true; policy: Wpc } | { ok: false; reason: string }>();
    for (const hash of new Set(pinState.pins.values())) {
      try {
        const policy = approvalPolicyOf(
          verifiedEnvelope(
            hash,
            rowsBy((r) => r.policy_hash_b64u === hash),
            trusted,
          ).payload,
        );
        // A pinned version must still satisfy today's schema and groups.
        const checked = validatePolicy(policy, groups ? { groups } : {});
        if (!checked.ok)
          throw new Error(`no longer valid: ${formatProblems(checked.problems).replace(/\n/g, '; ')}`);
        if (!groups) throw new Error('groups.json is missing or invalid');
        pinned.set(hash, { ok: true, policy });
      } catch (err) {
        pinned.set(hash, { ok: false, reason: (err as Error).message });
      }
    }
    for (const [name, hash] of pinState.pins) {
      const check = pinned.get(hash);
      if (check?.ok && check.policy.policy_name !== name) {
        // A version of another policy pinned under this name would carry its rules elsewhere.
        pinState.broken.set(name, `pinned version ${hash} is a version of "${check.policy.policy_name}"`);
        continue;
      }
      if (check?.ok && check.policy.policy_name === name) continue;
      failedFiles.push({
        file: `pinned ${name}`,
        name: null,
        claimedChannels: claimedBy(name),
        reason: `policy "${name}": pinned version ${hash} failed verification: ${check && !check.ok ? check.reason : 'not loaded'}`,
      });
    }

    // A name whose pin history or pinned version cannot be trusted closes every channel any
    // of its versions ever claimed, so no other policy can quietly take them over.
    for (const [name, reason] of pinState.broken) {
      problems.push(`policy "${name}": ${reason}`);
      failedFiles.push({
        file: `pins of ${name}`,
        name: null,
        claimedChannels: claimedBy(name),
        reason: `policy "${name}": ${reason}`,
      });
    }
    // Remember verified heads (broken names keep their old head, so they stay broken).
    for (const [name, head] of pinState.heads) if (!pinState.broken.has(name)) this.heads.set(name, head);
    if (this.deps.pinHeadsFile && !this.deps.readOnly)
      await writeHeads(this.deps.pinHeadsFile, new Map([...knownHeads, ...this.heads]));

    const resolution = resolveChannels({
      files,
      failedFiles,
      pins: pinState.pins,
      pinned,
      closedNames: new Set(pinState.broken.keys()),
    });
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
    return { loadedAt: clock(), dir, resolution, groups, problems, fingerprint };
  }

  /** Changes when a pin lands or any file in POLICIES_DIR changes content (not just mtime). */
  private async fingerprint(): Promise<string> {
    const hash = createHash('sha256');
    hash.update(`pins:${await pinsDigest(this.deps.db)}\n`);
    try {
      for (const name of (await fs.readdir(this.deps.policiesDir)).sort()) {
        const content = await fs.readFile(path.join(this.deps.policiesDir, name)).catch(() => null);
        hash.update(
          `${name}:${content ? createHash('sha256').update(content).digest('hex') : 'unreadable'}\n`,
        );
      }
    } catch {
      hash.update('(directory unreadable)');
    }
    return hash.digest('hex');
  }
}
