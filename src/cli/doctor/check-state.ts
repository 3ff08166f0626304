import fs from 'node:fs/promises';
import path from 'node:path';
import { Migrator } from 'kysely';
import type { Logger } from 'pino';
import { systemClock } from '../../clock.js';
import type { Config } from '../../config.js';
import { type DatabaseHandle, openDatabase } from '../../db/database.js';
import { shippedMigrations } from '../../db/migrate.js';
import { isAppError } from '../../errors.js';
import { bindPolicyDir, namesInPolicyDir } from '../../policy/bind-policy-dir.js';
import { loadPolicyDir } from '../../policy/load-policy-dir.js';
import { MATTERMOST_ID } from '../../policy/mattermost-refs.js';
import type { NameLookup } from '../../policy/name-lookup.js';
import { PolicyService } from '../../policy/policy-service.js';
import { type NameTable, resolveNames } from '../../policy/resolve-names.js';
import type { GroupsFile } from '../../policy/types.js';
import { databaseTarget } from '../../runtime.js';
import { loadKeyRing } from '../../tokens/key-ring.js';
import { type Finding, note, ok, problem } from './findings.js';

/** What the policies rely on in Mattermost, for the membership and reference checks. */
export interface PolicyView {
  names: NameTable;
  /** groups.json as written (names and ids). */
  groups: GroupsFile | null;
  teams: { id: string; shown: string }[];
  channels: { id: string; shown: string }[];
}

const errorText = (err: unknown) => (isAppError(err) || err instanceof Error ? err.message : String(err));

/** Opens the database without creating one, and says whether every shipped migration is applied. */
async function checkDatabase(
  config: Config,
): Promise<{ findings: Finding[]; database: DatabaseHandle | null }> {
  const target = databaseTarget(config);
  if (target.kind === 'pglite') {
    const exists = await fs.stat(path.join(target.dataDir, 'pglite')).then(
      () => true,
      () => false,
    );
    if (!exists)
      return {
        findings: [
          note('database', `the embedded database in ${target.dataDir} does not exist yet: serve creates it`),
        ],
        database: null,
      };
  }
  let database: DatabaseHandle;
  try {
    database = await openDatabase(target);
  } catch (err) {
    if (isAppError(err) && err.code === 'ERR_DB_LOCKED')
      // A running server holds it, and it verified the database and the policies when it started.
      return {
        findings: [
          note(
            'database',
            `the embedded database in ${config.dataDir} is in use by a running server: not checked here (PGlite allows one process; DATABASE_URL lifts this)`,
          ),
        ],
        database: null,
      };
    return {
      findings: [
        problem(
          'database',
          `cannot open the database: ${errorText(err)}`,
          'check DATABASE_URL (host, port, user, password, database) and that PostgreSQL is running',
        ),
      ],
      database: null,
    };
  }
  try {
    const migrations = await new Migrator({ db: database.db, provider: shippedMigrations }).getMigrations();
    const pending = migrations.filter((m) => m.executedAt === undefined).map((m) => m.name);
    if (pending.length) {
      await database.close();
      return {
        findings: [
          problem(
            'database',
            `${database.description}: ${pending.length} migration(s) not applied (${pending.join(', ')})`,
            'run claw-approvals migrate (serve also does it when it starts)',
          ),
        ],
        database: null,
      };
    }
    return {
      findings: [ok('database', `${database.description} is reachable and its migrations are current`)],
      database,
    };
  } catch (err) {
    await database.close();
    return {
      findings: [
        problem(
          'database',
          `cannot read the migrations: ${errorText(err)}`,
          'check the database user’s rights',
        ),
      ],
      database: null,
    };
  }
}

/**
 * The database, then the policies as a server would load them (read only: nothing is
 * registered): every file, pin and registered version verified, every name resolved. Without
 * a usable database or key, the files are still linted and their names resolved.
 */
export async function checkState(
  config: Config,
  log: Logger,
  names: NameLookup | null,
): Promise<{ findings: Finding[]; view: PolicyView }> {
  const db = await checkDatabase(config);
  const findings = [...db.findings];
  try {
    if (db.database) {
      const ring = await loadKeyRing(config.signingKey, config.retiredKeysFile).catch((err: unknown) => {
        findings.push(note('policies', `registered versions not verified: ${errorText(err)}`));
        return null;
      });
      if (ring) {
        const service = new PolicyService({
          db: db.database.db,
          keyRing: ring.ring,
          clock: systemClock,
          log,
          policiesDir: config.policiesDir,
          pinHeadsFile: path.join(config.dataDir, 'pin-heads.json'),
          readOnly: true,
          ...(names ? { names } : {}),
        });
        const snap = await service.reload();
        const active = snap.resolution.active.size;
        findings.push(
          ...policyFindings(
            snap.problems,
            `${active} polic${active === 1 ? 'y loads' : 'ies load'} and verif${active === 1 ? 'ies' : 'y'}`,
          ),
        );
        const versions = [...snap.resolution.active.values()];
        return {
          findings,
          view: {
            names: snap.names,
            groups: snap.dir.groups.ok ? snap.dir.groups.value : null,
            teams: refsShown(
              versions.map((c) => c.policy.channel_context.allowed_team_ids),
              snap.names,
              'team',
            ),
            channels: refsShown(
              [...snap.resolution.channels.keys()].map((c) => [c]),
              snap.names,
              'channel',
            ),
          },
        };
      }
    }
    // Files only: what lint would say.
    const read = await loadPolicyDir(config.policiesDir);
    const table = await resolveNames(namesInPolicyDir(read), names, { now: systemClock() });
    const dir = bindPolicyDir(read, table);
    const problems = [
      ...(dir.groups.ok
        ? []
        : dir.groups.problems.map((p) => `groups.json ${p.path}: ${p.message} [${p.rule}]`)),
      ...dir.files.flatMap((f) =>
        f.ok ? [] : f.problems.map((p) => `${path.basename(f.file)} ${p.path}: ${p.message} [${p.rule}]`),
      ),
    ];
    const valid = dir.files.flatMap((f) => (f.ok ? [f.policy] : []));
    findings.push(
      ...policyFindings(
        problems,
        `${valid.length} policy file${valid.length === 1 ? ' is' : 's are'} valid (the files only: registered versions and pins were not checked)`,
      ),
    );
    return {
      findings,
      view: {
        names: table,
        groups: dir.groups.ok ? dir.groups.value : null,
        teams: refsShown(
          valid.map((p) => p.channel_context.allowed_team_ids),
          table,
          'team',
        ),
        channels: refsShown(
          valid.map((p) => p.channel_context.allowed_channel_ids),
          table,
          'channel',
        ),
      },
    };
  } finally {
    await db.database?.close();
  }
}

/** Problems about names are reported, with their fixes, by the names check. */
function policyFindings(problems: readonly string[], allWell: string): Finding[] {
  const own = problems.filter((p) => !p.includes('[names:'));
  return own.length
    ? own.map((p) =>
        problem(
          'policies',
          p,
          'fix what it names in POLICIES_DIR (claw-approvals policy lint checks it offline)',
        ),
      )
    : [ok('policies', allWell)];
}

/** Distinct ids, each shown by the name it was written as when there was one. */
function refsShown(lists: readonly (readonly string[])[], names: NameTable, kind: 'team' | 'channel') {
  const byId = new Map<string, string>();
  for (const { ref, resolution } of names.entries())
    if (ref.kind === kind && resolution.ok) byId.set(resolution.id, `${ref.written} (${resolution.id})`);
  const ids = [...new Set(lists.flat())].filter((v) => MATTERMOST_ID.test(v));
  return ids.map((id) => ({ id, shown: byId.get(id) ?? id }));
}
