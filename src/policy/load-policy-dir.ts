import fs from 'node:fs/promises';
import path from 'node:path';
import { type HashedPolicy, hashPolicy } from './hash-policy.js';
import type { GroupsFile } from './types.js';
import { type Checked, type PolicyProblem, validateGroups } from './validate-policy.js';
import { validatePolicyFile } from './validate-policy-file.js';
import { carriedApprovalPolicy } from './wpc-payload.js';

export const GROUPS_FILE = 'groups.json';

/** Outcome of reading one policy file. A broken file still reports the channels it tried to claim. */
export type PolicyFileResult =
  | ({ file: string; ok: true } & HashedPolicy)
  | {
      file: string;
      ok: false;
      problems: PolicyProblem[];
      claimedChannels: string[];
      policyName: string | null;
    };

export interface PolicyDir {
  dir: string;
  groups: Checked<GroupsFile>;
  files: PolicyFileResult[];
}

export async function readJsonFile(file: string): Promise<Checked<unknown>> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    return {
      ok: false,
      problems: [
        {
          path: '$',
          rule: 'file:unreadable',
          message: `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        },
      ],
    };
  }
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, problems: [{ path: '$', rule: 'json:syntax', message: (err as Error).message }] };
  }
}

/** Best effort: which channels a policy that failed validation was trying to claim (either form). */
function claimedChannels(value: unknown): string[] {
  const ids = (carriedApprovalPolicy(value) as { channel_context?: { allowed_channel_ids?: unknown } } | null)
    ?.channel_context?.allowed_channel_ids;
  return Array.isArray(ids) ? ids.filter((v): v is string => typeof v === 'string') : [];
}

function policyNameOf(value: unknown): string | null {
  const name = (carriedApprovalPolicy(value) as { policy_name?: unknown } | null)?.policy_name;
  return typeof name === 'string' ? name : null;
}

export async function loadPolicyFile(file: string, groups?: GroupsFile): Promise<PolicyFileResult> {
  const parsed = await readJsonFile(file);
  if (!parsed.ok)
    return { file, ok: false, problems: parsed.problems, claimedChannels: [], policyName: null };
  const checked = validatePolicyFile(parsed.value, groups ? { groups } : {});
  if (!checked.ok) {
    return {
      file,
      ok: false,
      problems: checked.problems,
      claimedChannels: claimedChannels(parsed.value),
      policyName: policyNameOf(parsed.value),
    };
  }
  return { file, ok: true, ...hashPolicy(checked.value) };
}

/**
 * Reads every `*.json` policy in a directory (schemas and groups.json excepted). Without a
 * valid groups.json no approver can be resolved, so every policy is reported as failing.
 */
export async function loadPolicyDir(dir: string): Promise<PolicyDir> {
  const groupsRaw = await readJsonFile(path.join(dir, GROUPS_FILE));
  const groups = groupsRaw.ok ? validateGroups(groupsRaw.value) : groupsRaw;
  let names: string[];
  try {
    names = (await fs.readdir(dir))
      .filter((n) => n.endsWith('.json') && n !== GROUPS_FILE && !n.endsWith('.schema.json'))
      .sort();
  } catch (err) {
    return {
      dir,
      groups,
      files: [
        {
          file: dir,
          ok: false,
          problems: [
            {
              path: '$',
              rule: 'file:unreadable',
              message: `cannot list ${dir} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
            },
          ],
          claimedChannels: [],
          policyName: null,
        },
      ],
    };
  }
  const files: PolicyFileResult[] = [];
  for (const name of names) {
    const result = await loadPolicyFile(path.join(dir, name), groups.ok ? groups.value : undefined);
    if (result.ok && !groups.ok) {
      files.push({
        file: result.file,
        ok: false,
        problems: [
          {
            path: '$',
            rule: 'groups:invalid',
            message: `${GROUPS_FILE} is missing or invalid, so approvers cannot be resolved`,
          },
        ],
        claimedChannels: result.policy.channel_context.allowed_channel_ids,
        policyName: result.policy.policy_name,
      });
    } else {
      files.push(result);
    }
  }
  return { dir, groups, files };
}
