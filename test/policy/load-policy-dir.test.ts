import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { hashPolicy } from '../../src/policy/hash-policy.js';
import { loadPolicyDir, loadPolicyFile } from '../../src/policy/load-policy-dir.js';
import type { GroupsFile, Wpc } from '../../src/policy/types.js';

const policiesDir = fileURLToPath(new URL('../../policies/', import.meta.url));
const shipped = async (name: string): Promise<string> => fs.readFile(path.join(policiesDir, name), 'utf8');

const tempDirs: string[] = [];
async function tempDir(files: Record<string, string>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'claw-policies-'));
  tempDirs.push(dir);
  for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(dir, name), text);
  return dir;
}

afterEach(async () => {
  for (const dir of tempDirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

const CHANGE = 'change-mgmt-prod-approval.json';
const MCP = 'mcp-enterprise-agent-minimal.json';

describe('loadPolicyDir', () => {
  it('loads valid policies with their hash', async () => {
    const dir = await tempDir({
      'groups.json': await shipped('groups.json'),
      [CHANGE]: await shipped(CHANGE),
    });
    const loaded = await loadPolicyDir(dir);
    expect(loaded.dir).toBe(dir);
    expect(loaded.groups.ok).toBe(true);
    expect(loaded.files).toHaveLength(1);
    const [result] = loaded.files;
    if (!result?.ok) throw new Error(`expected ok, got ${JSON.stringify(result)}`);
    expect(result.file).toBe(path.join(dir, CHANGE));
    expect(result.policy).toEqual(JSON.parse(await shipped(CHANGE)));
    expect(result.hash).toBe(hashPolicy(result.policy).hash);
    expect(result.hash).toHaveLength(43);
    expect(result.hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(result.canonical).toBe(hashPolicy(result.policy).canonical);
  });

  it('gives different policies different hashes and ignores whitespace', async () => {
    const change = JSON.parse(await shipped(CHANGE)) as Wpc;
    const dir = await tempDir({
      'groups.json': await shipped('groups.json'),
      'a.json': JSON.stringify(change),
      'b.json': JSON.stringify(change, null, 4),
      'c.json': await shipped(MCP),
    });
    const files = (await loadPolicyDir(dir)).files;
    const hashes = files.map((f) => (f.ok ? f.hash : null));
    expect(hashes.every((h) => h !== null)).toBe(true);
    expect(hashes[0]).toBe(hashes[1]);
    expect(hashes[2]).not.toBe(hashes[0]);
  });

  it("reports invalid JSON as 'json:syntax'", async () => {
    const dir = await tempDir({
      'groups.json': await shipped('groups.json'),
      'broken.json': '{"wpc_version": "1",',
    });
    const [result] = (await loadPolicyDir(dir)).files;
    expect(result).toMatchObject({
      file: path.join(dir, 'broken.json'),
      ok: false,
      claimedChannels: [],
      policyName: null,
    });
    if (result?.ok !== false) throw new Error('expected a failure');
    expect(result.problems).toEqual([expect.objectContaining({ path: '$', rule: 'json:syntax' })]);
  });

  it('reports what an invalid policy tried to claim', async () => {
    const bad = JSON.parse(await shipped(CHANGE)) as Record<string, unknown>;
    bad.wpc_version = '2';
    const dir = await tempDir({
      'groups.json': await shipped('groups.json'),
      'bad.json': JSON.stringify(bad),
    });
    const [result] = (await loadPolicyDir(dir)).files;
    expect(result).toMatchObject({
      ok: false,
      policyName: 'change-mgmt-prod-approval',
      claimedChannels: ['764sdesxud1ew5yaqwmgdw4pe9'],
      problems: [expect.objectContaining({ path: '$.wpc_version', rule: 'schema:const' })],
    });
  });

  it('checks group references against groups.json', async () => {
    const groups = JSON.parse(await shipped('groups.json')) as GroupsFile;
    delete groups.groups.service_owner;
    const dir = await tempDir({ 'groups.json': JSON.stringify(groups), [CHANGE]: await shipped(CHANGE) });
    const [result] = (await loadPolicyDir(dir)).files;
    if (result?.ok !== false) throw new Error('expected a failure');
    expect(result.problems).toContainEqual(
      expect.objectContaining({
        path: '$.execution.approval_rule.allowed_approver_groups[0]',
        rule: 'lint:unknown-group',
      }),
    );
  });

  it("fails every otherwise-valid policy with 'groups:invalid' when groups.json is missing", async () => {
    const bad = JSON.parse(await shipped(MCP)) as Record<string, unknown>;
    bad.extra = true;
    const dir = await tempDir({
      [CHANGE]: await shipped(CHANGE),
      [MCP]: await shipped(MCP),
      'z-bad.json': JSON.stringify(bad),
    });
    const loaded = await loadPolicyDir(dir);
    expect(loaded.groups.ok).toBe(false);
    expect(loaded.files).toHaveLength(3);
    const [change, mcp, zBad] = loaded.files;
    expect(change).toMatchObject({
      file: path.join(dir, CHANGE),
      ok: false,
      policyName: 'change-mgmt-prod-approval',
      claimedChannels: ['764sdesxud1ew5yaqwmgdw4pe9'],
      problems: [expect.objectContaining({ path: '$', rule: 'groups:invalid' })],
    });
    expect(mcp).toMatchObject({
      ok: false,
      policyName: 'mcp-enterprise-agent-minimal',
      claimedChannels: ['ebf6bmrxx7d1z41534agm5rytg'],
      problems: [expect.objectContaining({ rule: 'groups:invalid' })],
    });
    // A policy that is invalid on its own keeps its own problems.
    expect(zBad).toMatchObject({
      ok: false,
      claimedChannels: ['ebf6bmrxx7d1z41534agm5rytg'],
      problems: [expect.objectContaining({ path: '$.extra', rule: 'schema:additionalProperties' })],
    });
  });

  it("fails every policy with 'groups:invalid' when groups.json is invalid", async () => {
    const dir = await tempDir({
      'groups.json': '{"groups_version": "2", "groups": {}}',
      [CHANGE]: await shipped(CHANGE),
    });
    const loaded = await loadPolicyDir(dir);
    expect(loaded.groups).toMatchObject({
      ok: false,
      problems: [expect.objectContaining({ path: '$.groups_version', rule: 'schema:const' })],
    });
    expect(loaded.files).toEqual([
      expect.objectContaining({ ok: false, problems: [expect.objectContaining({ rule: 'groups:invalid' })] }),
    ]);
  });

  it('does not treat *.schema.json, groups.json or non-JSON files as policies', async () => {
    const dir = await tempDir({
      'groups.json': await shipped('groups.json'),
      'wpc.schema.json': await shipped('wpc.schema.json'),
      'custom.schema.json': '{ not json',
      'README.md': '# policies',
      'notes.json.bak': '{',
      [MCP]: await shipped(MCP),
    });
    const files = (await loadPolicyDir(dir)).files;
    expect(files.map((f) => path.basename(f.file))).toEqual([MCP]);
    expect(files[0]?.ok).toBe(true);
  });

  it('reports files in sorted order', async () => {
    const change = await shipped(CHANGE);
    const dir = await tempDir({
      'groups.json': await shipped('groups.json'),
      'm.json': '{',
      'b.json': await shipped(MCP),
      'z.json': change,
      'a.json': '[]',
    });
    const files = (await loadPolicyDir(dir)).files;
    expect(files.map((f) => path.basename(f.file))).toEqual(['a.json', 'b.json', 'm.json', 'z.json']);
  });

  it('loads the shipped policies directory', async () => {
    const loaded = await loadPolicyDir(policiesDir);
    expect(loaded.groups.ok).toBe(true);
    expect(loaded.files.length).toBeGreaterThanOrEqual(5);
    for (const f of loaded.files) expect(f.ok).toBe(true);
  });

  it("reports an unreadable directory as 'file:unreadable'", async () => {
    const dir = path.join(await tempDir({}), 'missing');
    const loaded = await loadPolicyDir(dir);
    expect(loaded.files).toEqual([expect.objectContaining({ ok: false, file: dir })]);
    if (loaded.files[0]?.ok !== false) throw new Error('expected a failure');
    expect(loaded.files[0].problems).toEqual([
      expect.objectContaining({ path: '$', rule: 'file:unreadable' }),
    ]);
  });
});

describe('loadPolicyFile', () => {
  it('validates without groups when none are given', async () => {
    const dir = await tempDir({ [CHANGE]: await shipped(CHANGE) });
    const result = await loadPolicyFile(path.join(dir, CHANGE));
    if (!result.ok) throw new Error(JSON.stringify(result.problems));
    expect(result.hash).toBe(hashPolicy(result.policy).hash);
  });

  it("reports a missing file as 'file:unreadable'", async () => {
    const dir = await tempDir({});
    const result = await loadPolicyFile(path.join(dir, 'nope.json'));
    expect(result).toMatchObject({
      ok: false,
      claimedChannels: [],
      policyName: null,
      problems: [expect.objectContaining({ path: '$', rule: 'file:unreadable' })],
    });
  });
});
