import path from 'node:path';
import type { Command } from 'commander';
import { B64U_SHA256 } from '../crypto/hash.js';
import { AppError } from '../errors.js';
import {
  diffVersions,
  formatChanges,
  type PolicyVersion,
  versionOfFile,
  versionOfPayload,
} from '../policy/diff-policy.js';
import type { Logger } from 'pino';
import { nameLookupFor } from '../chat/mattermost-names.js';
import {
  checkActor,
  checkPolicyName,
  checkText,
  MAX_ADMIN_REASON,
  type PinView,
  pinView,
  type PolicyReport,
  policyReport,
} from '../http/routes/admin-shapes.js';
import type { Config } from '../config.js';
import { bindPolicyDir, namesInPolicyDir } from '../policy/bind-policy-dir.js';
import { loadPolicyDir, loadPolicyFile, type PolicyDir, readJsonFile } from '../policy/load-policy-dir.js';
import { resolveNames } from '../policy/resolve-names.js';
import { pinPolicy } from '../policy/pins.js';
import { assertHashFormat, getVerifiedPolicy, listRegisteredPolicies } from '../policy/registry.js';
import { resolveChannels } from '../policy/resolve-channels.js';
import { formatProblems, validateGroups } from '../policy/validate-policy.js';
import { policyServiceFor, type Runtime } from '../runtime.js';
import type { CliContext } from './context.js';
import { json } from './output.js';
import { onDatabaseOrServer } from './server-admin.js';

const UNCHECKED = 'names:unchecked';

/**
 * Resolves the Mattermost names of a policy directory, as the server would (one try per
 * call: a command should not wait out a server that is down), and binds the policies to them.
 */
async function bindNames(dir: PolicyDir, config: Config, log: Logger) {
  const lookup = nameLookupFor(config.mattermost, log, 1);
  const names = await resolveNames(namesInPolicyDir(dir), lookup, { now: new Date() });
  return { dir: bindPolicyDir(dir, names), names };
}

/** The live resolution as a server would compute it, without registering anything. */
function inspectPolicies(rt: Runtime) {
  return policyServiceFor(rt, { readOnly: true }).reload();
}

export function policyCommands(program: Command, ctx: CliContext): void {
  const policy = program
    .command('policy')
    .description('lint, hash, inspect, pin and roll back Work Policy Contracts');

  policy
    .command('lint')
    .description(
      'validate policy files (default: the whole POLICIES_DIR, including groups.json and channel claims); Mattermost names are checked when Mattermost is reachable',
    )
    .argument('[files...]', 'policy files to check; omit to check POLICIES_DIR')
    .action(async (files: string[]) => {
      const config = ctx.config();
      const read = await loadPolicyDir(config.policiesDir);
      const groups = read.groups.ok ? read.groups.value : undefined;
      const chosen = files.length
        ? { ...read, files: await Promise.all(files.map((f) => loadPolicyFile(path.resolve(f), groups))) }
        : read;
      const { dir, names } = await bindNames(chosen, config, ctx.log());
      let failed = false;
      if (!dir.groups.ok) {
        failed = true;
        ctx.output.err(`groups.json:\n${formatProblems(dir.groups.problems)}`);
      }
      const groupNames = dir.groupNameProblems.filter((p) => p.rule !== UNCHECKED);
      if (groupNames.length) {
        failed = true;
        ctx.output.err(`FAIL  groups.json\n${formatProblems(groupNames)}`);
      }
      for (const f of dir.files) {
        const shown = path.relative(process.cwd(), f.file) || f.file;
        if (f.ok) ctx.output.out(`ok    ${shown}  ${f.policy.policy_name}  ${f.hash}`);
        else if (f.problems.every((p) => p.rule === UNCHECKED))
          // Its hash depends on what its names stand for, which nobody could say.
          ctx.output.out(`ok    ${shown}  ${f.policyName ?? ''}  (hash unknown: its names were not checked)`);
        else {
          failed = true;
          const problems = f.problems.filter((p) => p.rule !== UNCHECKED);
          ctx.output.err(`FAIL  ${shown}\n${formatProblems(problems)}`);
        }
      }
      if (!files.length) {
        const ok = dir.files.flatMap((f) =>
          f.ok
            ? [{ file: path.basename(f.file), name: f.policy.policy_name, hash: f.hash, policy: f.policy }]
            : [],
        );
        const resolution = resolveChannels({
          files: ok,
          failedFiles: [],
          pins: new Map(),
          pinned: new Map(),
        });
        for (const p of resolution.problems) {
          failed = true;
          ctx.output.err(`FAIL  policy "${p.name}": ${p.reason}`);
        }
        for (const [channel, reasons] of resolution.closed) {
          failed = true;
          ctx.output.err(`FAIL  channel ${channel}: ${reasons.join('; ')}`);
        }
      }
      const unchecked = names
        .entries()
        .flatMap((e) =>
          !e.resolution.ok && e.resolution.status === 'unchecked'
            ? [{ name: e.ref.written, why: e.resolution.reason }]
            : [],
        );
      if (unchecked.length) {
        ctx.output.err(
          `note: ${unchecked.length} Mattermost name(s) not checked (${unchecked[0]!.why}): ${unchecked.map((u) => u.name).join(', ')}`,
        );
      }
      if (failed) throw new AppError('ERR_POLICY_INVALID', 'policy lint failed');
    });

  policy
    .command('hash')
    .description(
      'print policy_hash_b64u = base64url(SHA-256(JCS(payload))) of the WPC v1 payload a valid policy file is signed as (its Mattermost names resolved, as the server would)',
    )
    .argument('<file>')
    .option('--canonical', 'also print the canonical (JCS) payload that is hashed and signed')
    .action(async (file: string, opts: { canonical?: boolean }) => {
      const config = ctx.config();
      const groupsRaw = await readJsonFile(path.join(config.policiesDir, 'groups.json'));
      const groups = groupsRaw.ok ? validateGroups(groupsRaw.value) : groupsRaw;
      const loaded = await loadPolicyFile(path.resolve(file), groups.ok ? groups.value : undefined);
      const { dir } = await bindNames(
        { dir: config.policiesDir, groups, files: [loaded] },
        config,
        ctx.log(),
      );
      const result = dir.files[0]!;
      if (!result.ok) {
        ctx.output.err(formatProblems(result.problems));
        throw new AppError('ERR_POLICY_INVALID', `${file} is not a valid policy`);
      }
      ctx.output.out(result.hash);
      if (opts.canonical) ctx.output.out(result.canonical);
    });

  policy
    .command('register')
    .description('sign and register every valid version in POLICIES_DIR now (serve does this at start)')
    .action(async () => {
      await ctx.withRuntime(async (rt) => {
        const before = new Set((await listRegisteredPolicies(rt.database.db)).map((r) => r.policy_hash_b64u));
        const snap = await policyServiceFor(rt).reload();
        for (const c of snap.resolution.active.values()) {
          const state =
            c.origin === 'pin' ? 'pinned' : before.has(c.hash) ? 'already registered' : 'registered';
          ctx.output.out(`${c.name}  ${c.hash}  ${state}`);
        }
        for (const p of snap.problems) ctx.output.err(`problem: ${p}`);
        if (snap.problems.length)
          throw new AppError('ERR_POLICY_INVALID', 'some policies could not be activated');
      });
    });

  policy
    .command('show')
    .description('print the verified, signed envelope of a registered policy version')
    .argument('<hash-or-name>', 'a policy hash, or a policy name for its active version')
    .action(async (ref: string) => {
      await ctx.withRuntime(async (rt) => {
        let hash = ref;
        if (!B64U_SHA256.test(ref)) {
          const snap = await inspectPolicies(rt);
          const active = snap.resolution.active.get(ref);
          if (!active) throw new AppError('ERR_POLICY_NOT_FOUND', `no active policy named "${ref}"`);
          hash = active.hash;
        }
        ctx.output.out(json(await getVerifiedPolicy(rt.database.db, hash, rt.keyRing.trusts)));
      });
    });

  policy
    .command('diff')
    .description('show what changes between two policy versions (files or registered hashes)')
    .argument('<from>', 'policy file or hash')
    .argument('<to>', 'policy file or hash')
    .action(async (from: string, to: string) => {
      const needsDb = [from, to].some((r) => B64U_SHA256.test(r));
      const read = async (ref: string, rt?: Runtime): Promise<PolicyVersion> => {
        if (B64U_SHA256.test(ref) && rt) {
          return versionOfPayload((await getVerifiedPolicy(rt.database.db, ref, rt.keyRing.trusts)).payload);
        }
        const r = await readJsonFile(path.resolve(ref));
        if (!r.ok) throw new AppError('ERR_POLICY_UNREADABLE', `${ref}: ${formatProblems(r.problems)}`);
        return versionOfFile(r.value);
      };
      const run = async (rt?: Runtime) => {
        const changes = diffVersions(await read(from, rt), await read(to, rt));
        ctx.output.out(changes.length ? formatChanges(changes) : 'no differences');
      };
      if (needsDb) await ctx.withRuntime(run);
      else await run();
    });

  const pinOrUnpin = async (
    command: string,
    input: { name: string; hash: string | null; reason: string; actor: string },
  ) => {
    checkPolicyName(input.name);
    if (input.hash !== null) assertHashFormat(input.hash);
    checkActor(input.actor);
    checkText('the reason', input.reason, { max: MAX_ADMIN_REASON, required: true });
    return onDatabaseOrServer(ctx, command, {
      database: async (rt) =>
        pinView(
          await pinPolicy(rt.database.db, {
            ...input,
            key: rt.keyRing.active,
            trusts: rt.keyRing.trusts,
            clock: rt.clock,
          }),
        ),
      server: (api) =>
        input.hash === null
          ? api.post<PinView>('/v1/admin/policies/unpin', {
              name: input.name,
              actor: input.actor,
              reason: input.reason,
            })
          : api.post<PinView>('/v1/admin/policies/pin', input),
    });
  };

  policy
    .command('pin')
    .description(
      'make a registered version the active one for its policy name (rollback), recorded with who and why',
    )
    .argument('<name>')
    .argument('<hash>')
    .requiredOption('--reason <text>', 'why (kept in the append-only pin history)')
    .option('--actor <who>', 'who is pinning', ctx.defaultActor)
    .action(async (name: string, hash: string, opts: { reason: string; actor: string }) => {
      const row = await pinOrUnpin('policy pin', { name, hash, reason: opts.reason, actor: opts.actor });
      ctx.output.out(`pinned ${name} to ${hash} (pin #${row.id}); running servers apply it within seconds`);
    });

  policy
    .command('unpin')
    .description('let a policy name follow its file in POLICIES_DIR again')
    .argument('<name>')
    .requiredOption('--reason <text>', 'why (kept in the append-only pin history)')
    .option('--actor <who>', 'who is unpinning', ctx.defaultActor)
    .action(async (name: string, opts: { reason: string; actor: string }) => {
      const row = await pinOrUnpin('policy unpin', {
        name,
        hash: null,
        reason: opts.reason,
        actor: opts.actor,
      });
      ctx.output.out(`${name} follows its policy file again (pin #${row.id})`);
    });

  policy
    .command('list')
    .description(
      'list policies: active version, where it comes from, channels, registered versions and pin history',
    )
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const { policies: report, problems } = await onDatabaseOrServer(ctx, 'policy list', {
        database: async (rt) => policyReport(rt.database.db, await inspectPolicies(rt)),
        // What the server enforces (it registered its files' versions when it loaded them).
        server: (api) => api.get<PolicyReport>('/v1/admin/policies'),
      });
      if (opts.json) {
        ctx.output.out(json({ policies: report, problems }));
        return;
      }
      for (const p of report) {
        ctx.output.out(
          `${p.name}  active=${p.active_hash ?? '-'} (${p.origin})  channels=${p.channels.join(',') || '-'}`,
        );
        for (const v of p.versions)
          ctx.output.out(
            `    ${v.hash === p.active_hash ? '*' : ' '} ${v.hash}  ${v.registered_at}  ${v.source ?? ''}`,
          );
        for (const pin of p.pins)
          ctx.output.out(
            `    pin #${pin.id} ${pin.hash ?? '(follow file)'} by ${pin.actor} at ${pin.at}: ${pin.reason}`,
          );
      }
      for (const problem of problems) ctx.output.err(`problem: ${problem}`);
    });
}
