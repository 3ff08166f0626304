import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/crypto/jcs.js';
import { loadPolicyDir, loadPolicyFile } from '../../src/policy/load-policy-dir.js';
import type { GroupsFile, Wpc } from '../../src/policy/types.js';
import { validatePolicyFile } from '../../src/policy/validate-policy-file.js';
import { toWpcPayload } from '../../src/policy/wpc-payload.js';
import { REPO_POLICIES_DIR, tempDir } from '../helpers/fs.js';

const CHANGE = 'change-mgmt-prod-approval.json';
const readShipped = async <T>(name: string): Promise<T> =>
  JSON.parse(await fs.readFile(path.join(REPO_POLICIES_DIR, name), 'utf8')) as T;
const groups = await readShipped<GroupsFile>('groups.json');
const policy = await readShipped<Wpc>(CHANGE);

/** The WPC v1 form of the shipped policy, as an author would write it (a fresh copy). */
const v1Form = (): Record<string, unknown> =>
  JSON.parse(JSON.stringify(toWpcPayload(policy))) as Record<string, unknown>;

describe('validatePolicyFile: either form an author may write', () => {
  it('accepts the approval policy as it is', () => {
    expect(validatePolicyFile(policy, { groups })).toEqual({ ok: true, value: policy });
  });

  it('accepts the WPC v1 form and returns the approval policy it carries', () => {
    expect(validatePolicyFile(v1Form(), { groups })).toEqual({ ok: true, value: policy });
  });

  it('both forms load to the same hash, and the WPC v1 file is byte for byte what is hashed (after JCS)', async () => {
    const dir = await tempDir();
    await fs.copyFile(path.join(REPO_POLICIES_DIR, 'groups.json'), path.join(dir, 'groups.json'));
    await fs.writeFile(path.join(dir, 'a-legacy-form.json'), JSON.stringify(policy, null, 2));
    const written = v1Form();
    await fs.writeFile(path.join(dir, 'b-v1-form.json'), JSON.stringify(written, null, 2));
    const [a, b] = (await loadPolicyDir(dir)).files;
    if (!a?.ok || !b?.ok) throw new Error(JSON.stringify([a, b]));
    expect(b.hash).toBe(a.hash);
    expect(b.canonical).toBe(canonicalJson(written));
    expect(b.policy).toEqual(policy);
  });

  it('reports problems inside the carried policy at their path in the file', () => {
    const file = v1Form();
    const carried = (file.metadata as { claw_approvals: Wpc }).claw_approvals;
    carried.execution.approval_rule.required_approvals = 0;
    carried.channel_context.requester_groups = ['nobody'];
    const result = validatePolicyFile(file, { groups });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems).toContainEqual(
      expect.objectContaining({
        path: '$.metadata.claw_approvals.execution.approval_rule.required_approvals',
        rule: 'schema:minimum',
      }),
    );
    // Semantic problems (here after the schema passes) are placed the same way.
    carried.execution.approval_rule.required_approvals = 2;
    const semantic = validatePolicyFile(file, { groups });
    expect(semantic.ok).toBe(false);
    if (!semantic.ok)
      expect(semantic.problems).toEqual([
        expect.objectContaining({
          path: '$.metadata.claw_approvals.channel_context.requester_groups[0]',
          rule: 'lint:unknown-group',
        }),
      ]);
  });

  it('a WPC v1 file without an approval policy names where it is missing', () => {
    const file = v1Form();
    file.metadata = {};
    const result = validatePolicyFile(file, { groups });
    expect(result).toMatchObject({
      ok: false,
      problems: [expect.objectContaining({ path: '$.metadata.claw_approvals', rule: 'schema:type' })],
    });
  });

  const mismatches: [string, (f: Record<string, unknown>) => void, string][] = [
    ['a wider model list', (f) => (f.allowed_models = ['openrouter/*', 'gpt-4o']), '$.allowed_models[]'],
    ['another provider', (f) => (f.allowed_providers = ['anthropic']), '$.allowed_providers[]'],
    ['no issuer', (f) => delete f.issuer_did, '$.issuer_did'],
    ['another policy_id', (f) => (f.policy_id = 'other'), '$.policy_id'],
    [
      'a field with no source',
      (f) => (f.minimum_model_identity_tier = 'tee_measured'),
      '$.minimum_model_identity_tier',
    ],
    ['extra metadata', (f) => ((f.metadata as Record<string, unknown>).owner = 'ops'), '$.metadata.owner'],
  ];
  it.each(mismatches)('refuses a WPC v1 file whose gateway fields disagree (%s) at %s', (_why, spoil, at) => {
    const file = v1Form();
    spoil(file);
    const result = validatePolicyFile(file, { groups });
    expect(result.ok).toBe(false);
    if (!result.ok)
      expect(result.problems).toContainEqual(
        expect.objectContaining({ path: at, rule: 'wpc:payload-mismatch' }),
      );
  });

  it('refuses a WPC v1 file whose lists keep another order than its approval policy', () => {
    const file = v1Form();
    const models = ['openrouter/a', 'openrouter/b'];
    (file.metadata as { claw_approvals: Wpc }).claw_approvals.models!.allowed_models = models;
    file.allowed_models = [...models];
    expect(validatePolicyFile(file, { groups }).ok).toBe(true);
    file.allowed_models = [...models].reverse();
    expect(validatePolicyFile(file, { groups })).toEqual({
      ok: false,
      problems: [expect.objectContaining({ path: '$', rule: 'wpc:payload-mismatch' })],
    });
  });

  it('a broken WPC v1 file still reports the channels and name it claims, so they stay closed', async () => {
    const dir = await tempDir();
    const file = v1Form();
    file.allowed_models = ['*'];
    await fs.writeFile(path.join(dir, CHANGE), JSON.stringify(file));
    const result = await loadPolicyFile(path.join(dir, CHANGE), groups);
    expect(result).toMatchObject({
      ok: false,
      policyName: policy.policy_name,
      claimedChannels: policy.channel_context.allowed_channel_ids,
    });
  });
});
