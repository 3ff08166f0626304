import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Db } from '../db/database.js';
import type { WpcRegistryRow } from '../db/schema.js';
import type { KeyRing } from '../tokens/key-ring.js';
import { signedNamesDisagree } from './bind-names.js';
import { type BoundPolicyDir, bindPolicyDir, namesInPolicyDir } from './bind-policy-dir.js';
import { loadPolicyDir } from './load-policy-dir.js';
import type { RefKind } from './mattermost-refs.js';
import type { NameLookup } from './name-lookup.js';
import { type NameStatus, type NameTable, resolveNames } from './resolve-names.js';
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

/** A Mattermost name of this load that stands for no id, and why. */
export interface UnresolvedName {
  kind: RefKind;
  name: string;
  status: NameStatus;
  reason: string;
}

export interface PolicySnapshot {
  loadedAt: Date;
  dir: BoundPolicyDir;
  resolution: Resolution;
  /** groups.json with every name replaced by its id (what the directory reads). */
  groups: GroupsFile | null;
  /** Every name this load looked up, and what Mattermost said. */
  names: NameTable;
  unresolvedNames: UnresolvedName[];
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
  /** Resolves `@user`, `@group`, `team` and `team/channel` names; without it every name stays unresolved. */
  names?: NameLookup;
  /** A load that could not ask Mattermost about some name tries again after this long (default 30 s). */
  nameRetryMs?: number;
  /** Names are looked up again after this long even when no file changed (default 5 min): renames happen in Mattermost. */
  namesMaxAgeMs?: number;
}

const NAME_RETRY_MS = 30_000;
const NAMES_MAX_AGE_MS = 5 * 60_000;

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
    const closed = snap.resolution.closed.get(channelId);
    if (closed) return { open: false, reasons: closed };
    // A channel written by a name that did not resolve has no id to be closed under; it may be this one.
    const unresolved = [...snap.dir.unresolvedChannels].map(
      ([name, why]) => `channel name ${name} did not resolve, so its channel is closed (${why.join('; ')})`,
    );
    return { open: false, reasons: ['no policy allows this channel', ...unresolved] };
  }

  /** Names are due to be asked about again: some could not be checked, or all are old. */
  private namesDue(snap: PolicySnapshot): boolean {
    // Without Mattermost nothing would answer differently: the next file change reloads.
    if (!this.deps.names) return false;
    const age = this.deps.clock().getTime() - snap.names.resolvedAt.getTime();
    if (snap.names.hasUnchecked()) return age >= (this.deps.nameRetryMs ?? NAME_RETRY_MS);
    return snap.names.entries().length > 0 && age >= (this.deps.namesMaxAgeMs ?? NAMES_MAX_AGE_MS);
  }

  /** Reloads if pins or file contents changed since the last load, or names are due; returns whether it did. */
  async refreshIfChanged(): Promise<boolean> {
    try {
      const fingerprint = await this.fingerprint();
      if (
        this.snapshot &&
        fingerprint === this.snapshot.fingerprint &&
        !this.lastError &&
        !this.namesDue(this.snapshot)
      )
        return false;
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
    const read = await loadPolicyDir(this.deps.policiesDir);
    const names = await resolveNames(namesInPolicyDir(read), this.deps.names ?? null, { now: clock() });
    this.noteRenames(previous?.names, names);
    const dir = bindPolicyDir(read, names);
    const groups = dir.boundGroups?.file ?? null;
    const problems: string[] = [];
    if (!dir.groups.ok) {
      problems.push(...dir.groups.problems.map((p) => `groups.json ${p.path}: ${p.message} [${p.rule}]`));
    }
    problems.push(...dir.groupNameProblems.map((p) => `groups.json ${p.path}: ${p.message} [${p.rule}]`));
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
        // A name that did not resolve is said in full: the channel's refusal must name it.
        const unresolved = f.problems.filter((p) => p.rule.startsWith('names:'));
        failedFiles.push({
          file: source,
          name: f.policyName,
          claimedChannels: [
            ...f.claimedChannels,
            ...earlier,
            ...(f.policyName ? claimedBy(f.policyName) : []),
          ],
          ...(unresolved.length
            ? {
                reason: `policy "${f.policyName ?? source}" (${source}) relies on names that did not resolve: ${unresolved.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
              }
            : {}),
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
        if (!groups || !dir.boundGroups) throw new Error('groups.json is missing or invalid');
        const disagree = signedNamesDisagree(policy, dir.boundGroups);
        if (disagree) throw new Error(disagree);
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
    const unresolvedNames = names
      .entries()
      .flatMap(({ ref, resolution: r }) =>
        r.ok ? [] : [{ kind: ref.kind, name: ref.written, status: r.status, reason: r.reason }],
      );
    return { loadedAt: clock(), dir, resolution, groups, names, unresolvedNames, problems, fingerprint };
  }

  /** A name that now stands for another id is worth a warning: a rename, or a name taken over. */
  private noteRenames(before: NameTable | undefined, after: NameTable): void {
    for (const { ref, resolution } of after.entries()) {
      const earlier = before?.get(ref);
      if (resolution.ok && earlier?.ok && earlier.id !== resolution.id)
        this.deps.log.warn(
          { kind: ref.kind, name: ref.written, before: earlier.id, after: resolution.id },
          'a Mattermost name now stands for another id; policies relying on it are signed again as new versions',
        );
    }
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
