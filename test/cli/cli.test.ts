import fs from 'node:fs/promises';
import path from 'node:path';
import { canonicalize as independentJcs } from 'json-canonicalize';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256B64u } from '../../src/crypto/hash.js';
import { toWpcPayload } from '../../src/policy/wpc-payload.js';
import { cli, stateEnv } from '../helpers/cli.js';
import type { TestDb } from '../helpers/db.js';
import { dialectName } from '../helpers/db.js';
import { copyPolicies, REPO_POLICIES_DIR } from '../helpers/fs.js';

const dbs: (TestDb | null)[] = [];
afterEach(async () => {
  await Promise.all(dbs.splice(0).map((d) => d?.close()));
});
async function env(extra: Record<string, string> = {}) {
  const s = await stateEnv(extra);
  dbs.push(s.db);
  return s.env;
}

const shipped = async () =>
  (await fs.readdir(REPO_POLICIES_DIR)).filter(
    (f) => f.endsWith('.json') && f !== 'groups.json' && !f.endsWith('.schema.json'),
  );

describe('claw-approvals policy hash / lint (no database)', () => {
  it('hash prints what an independent RFC 8785 implementation computes, for every shipped policy', async () => {
    const files = await shipped();
    expect(files).toHaveLength(5);
    for (const file of files) {
      const full = path.join(REPO_POLICIES_DIR, file);
      const expected = sha256B64u(independentJcs(toWpcPayload(JSON.parse(await fs.readFile(full, 'utf8')))));
      const res = await cli(['policy', 'hash', full], { POLICIES_DIR: REPO_POLICIES_DIR });
      expect(res).toEqual({ code: 0, out: expected, err: '' });
      expect(expected).toMatch(/^[A-Za-z0-9_-]{43}$/);
    }
  });

  it('hash --canonical prints the exact text that is hashed', async () => {
    const full = path.join(REPO_POLICIES_DIR, 'invoice-triage.json');
    const res = await cli(['policy', 'hash', '--canonical', full], { POLICIES_DIR: REPO_POLICIES_DIR });
    const [hash, canonical] = res.out.split('\n');
    expect(sha256B64u(canonical!)).toBe(hash);
    expect(canonical).toBe(independentJcs(toWpcPayload(JSON.parse(await fs.readFile(full, 'utf8')))));
  });

  it('hash refuses an invalid policy with the JSON path and the rule', async () => {
    const dir = await copyPolicies();
    const file = path.join(dir, 'invoice-triage.json');
    const policy = JSON.parse(await fs.readFile(file, 'utf8'));
    policy.execution.approval_rule.required_approvals = 0;
    policy.surprise = true;
    await fs.writeFile(file, JSON.stringify(policy));
    const res = await cli(['policy', 'hash', file], { POLICIES_DIR: dir });
    expect(res.code).toBe(1);
    expect(res.out).toBe('');
    expect(res.err).toContain('$.execution.approval_rule.required_approvals: must be >= 1 [schema:minimum]');
    expect(res.err).toContain('$.surprise: is not an allowed property [schema:additionalProperties]');
    expect(res.err).toContain('ERR_POLICY_INVALID');
  });

  it('lint passes the shipped directory and fails a conflicting one', async () => {
    expect((await cli(['policy', 'lint'], { POLICIES_DIR: REPO_POLICIES_DIR })).code).toBe(0);
    const dir = await copyPolicies();
    const a = JSON.parse(await fs.readFile(path.join(dir, 'invoice-triage.json'), 'utf8'));
    const b = JSON.parse(await fs.readFile(path.join(dir, 'mattermost-agent-prod.json'), 'utf8'));
    a.channel_context.allowed_channel_ids.push(b.channel_context.allowed_channel_ids[0]);
    await fs.writeFile(path.join(dir, 'invoice-triage.json'), JSON.stringify(a));
    const res = await cli(['policy', 'lint'], { POLICIES_DIR: dir });
    expect(res.code).toBe(1);
    expect(res.err).toContain(`channel ${b.channel_context.allowed_channel_ids[0]}: claimed by 2 policies`);
  });

  it('lint reports a broken groups.json', async () => {
    const dir = await copyPolicies();
    await fs.writeFile(
      path.join(dir, 'groups.json'),
      '{"groups_version":"1","groups":{"x":{"members":[{"user_id":"BAD ID"}]}}}',
    );
    const res = await cli(['policy', 'lint'], { POLICIES_DIR: dir });
    expect(res.code).toBe(1);
    expect(res.err).toContain('groups.json');
  });

  it('diff between two files lists the changed paths', async () => {
    const dir = await copyPolicies();
    const file = path.join(dir, 'invoice-triage.json');
    const policy = JSON.parse(await fs.readFile(file, 'utf8'));
    policy.token_requirements.cst_ttl_seconds_max = 300;
    policy.tools.deny.push('shell');
    const changed = path.join(dir, 'changed.json');
    await fs.writeFile(changed, JSON.stringify(policy));
    const res = await cli(['policy', 'diff', file, changed], { POLICIES_DIR: dir });
    expect(res.code).toBe(0);
    expect(res.out.split('\n')).toEqual([
      '~ $.token_requirements.cst_ttl_seconds_max: 1800 -> 300',
      '+ $.tools.deny[]: "shell"',
    ]);
  });
});

describe('configuration and usage errors', () => {
  it('names every bad key and exits 1', async () => {
    const res = await cli(['migrate'], { PORT: 'eighty', DATABASE_URL: 'mysql://x', LOG_LEVEL: 'loud' });
    expect(res.code).toBe(1);
    expect(res.err).toContain('ERR_CONFIG_INVALID');
    for (const key of ['PORT', 'DATABASE_URL', 'LOG_LEVEL']) expect(res.err).toContain(`  ${key}: `);
  });

  it('unknown commands exit 2 with help', async () => {
    const res = await cli(['frobnicate'], {});
    expect(res.code).toBe(2);
    expect(res.err).toContain("unknown command 'frobnicate'");
  });

  it('a bad DATABASE_URL fails migrate with ERR_DB_UNAVAILABLE, password hidden', async () => {
    const res = await cli(['migrate'], { DATABASE_URL: 'postgres://u:hunter2@127.0.0.1:1/x' });
    expect(res.code).toBe(1);
    expect(res.err).toContain('ERR_DB_UNAVAILABLE');
    expect(res.err).not.toContain('hunter2');
  });
});

describe(`stateful commands (${dialectName})`, () => {
  it('migrate applies pending migrations once', async () => {
    const e = await env();
    const first = await cli(['migrate'], e);
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/^Success \d{14}_foundation/);
    const second = await cli(['migrate'], e);
    expect(second.out).toContain('is up to date');
  });

  it('list, show, new version, pin (rollback), diff by hash, unpin', async () => {
    const dir = await copyPolicies();
    const e = await env({ POLICIES_DIR: dir });
    const registered = await cli(['policy', 'register'], e);
    expect(registered.code).toBe(0);
    expect(registered.out.split('\n')).toHaveLength(5);
    expect(registered.out).toMatch(/^change-mgmt-prod-approval {2}[A-Za-z0-9_-]{43} {2}registered$/m);
    const list1 = JSON.parse((await cli(['policy', 'list', '--json'], e)).out);
    expect(list1.policies.map((p: { name: string }) => p.name)).toHaveLength(5);
    const v1 = list1.policies.find((p: { name: string }) => p.name === 'invoice-triage')
      .active_hash as string;

    const show = await cli(['policy', 'show', 'invoice-triage'], e);
    expect(show.code).toBe(0);
    expect(JSON.parse(show.out)).toMatchObject({
      envelope_type: 'work_policy_contract',
      payload_hash_b64u: v1,
    });

    const file = path.join(dir, 'invoice-triage.json');
    const policy = JSON.parse(await fs.readFile(file, 'utf8'));
    policy.execution.approval_rule.approval_ttl_seconds = 900;
    await fs.writeFile(file, JSON.stringify(policy));
    expect((await cli(['policy', 'register'], e)).out).toContain('invoice-triage');
    const list2 = JSON.parse((await cli(['policy', 'list', '--json'], e)).out);
    const entry2 = list2.policies.find((p: { name: string }) => p.name === 'invoice-triage');
    expect(entry2.versions).toHaveLength(2);
    expect(entry2.active_hash).not.toBe(v1);
    const v2 = entry2.active_hash as string;

    const diff = await cli(['policy', 'diff', v1, v2], e);
    expect(diff.out).toBe('~ $.execution.approval_rule.approval_ttl_seconds: 3600 -> 900');

    expect((await cli(['policy', 'pin', 'invoice-triage', v1], e)).code).toBe(2); // --reason is required
    const pin = await cli(['policy', 'pin', 'invoice-triage', v1, '--reason', 'ttl change broke on-call'], e);
    expect(pin.code).toBe(0);
    const list3 = JSON.parse((await cli(['policy', 'list', '--json'], e)).out);
    const entry3 = list3.policies.find((p: { name: string }) => p.name === 'invoice-triage');
    expect(entry3).toMatchObject({ active_hash: v1, origin: 'pin' });
    expect(entry3.pins).toEqual([
      expect.objectContaining({ hash: v1, actor: 'tester', reason: 'ttl change broke on-call' }),
    ]);

    const badPin = await cli(['policy', 'pin', 'mattermost-agent-prod', v1, '--reason', 'x'], e);
    expect(badPin.code).toBe(1);
    expect(badPin.err).toContain('ERR_POLICY_CONFLICT');

    expect((await cli(['policy', 'unpin', 'invoice-triage', '--reason', 'fixed'], e)).code).toBe(0);
    const list4 = JSON.parse((await cli(['policy', 'list', '--json'], e)).out);
    expect(list4.policies.find((p: { name: string }) => p.name === 'invoice-triage')).toMatchObject({
      active_hash: v2,
      origin: 'file',
    });
  });

  it('keys show, then rotate: the new key signs, the old one stays trusted', async () => {
    const e = await env({ POLICIES_DIR: REPO_POLICIES_DIR });
    const before = JSON.parse((await cli(['keys', 'show'], e)).out);
    expect(before.active.kid).toMatch(/^[0-9a-f]{16}$/);
    expect(before.active.public_jwk).not.toHaveProperty('d');
    const rotated = await cli(['keys', 'rotate'], e);
    expect(rotated.code).toBe(0);
    const after = JSON.parse((await cli(['keys', 'show'], e)).out);
    expect(after.active.kid).not.toBe(before.active.kid);
    expect(after.retired).toEqual([{ kid: before.active.kid, retired_at: expect.any(String) }]);
    expect(after.trusted_dids).toEqual([after.active.did, before.active.did]);
    const keyFile = path.join(e.DATA_DIR!, 'keys', 'signing-key.jwk.json');
    expect((await fs.stat(keyFile)).mode & 0o777).toBe(0o600);
    expect(rotated.out + after.out).not.toContain('"d"');
  });

  it('commands other than serve never create a signing key', async () => {
    const s = await stateEnv({ POLICIES_DIR: REPO_POLICIES_DIR }, { withKey: false });
    dbs.push(s.db);
    for (const args of [
      ['keys', 'show'],
      ['policy', 'list'],
      ['keys', 'rotate'],
    ]) {
      const res = await cli(args, s.env);
      expect(res.code).toBe(1);
      expect(res.err).toContain('ERR_KEY_UNREADABLE');
    }
    await expect(fs.stat(path.join(s.env.DATA_DIR!, 'keys', 'signing-key.jwk.json'))).rejects.toThrow();
  });

  it('policy list does not register anything (read-only)', async () => {
    const e = await env({ POLICIES_DIR: REPO_POLICIES_DIR });
    const list = JSON.parse((await cli(['policy', 'list', '--json'], e)).out);
    expect(list.policies).toHaveLength(5);
    expect(list.policies.every((p: { versions: unknown[] }) => p.versions.length === 0)).toBe(true);
  });

  it('keys rotate refuses a key supplied as SIGNING_KEY_JWK', async () => {
    const res = await cli(['keys', 'rotate'], { SIGNING_KEY_JWK: '{"kty":"OKP"}' });
    expect(res.code).toBe(1);
    expect(res.err).toContain('SIGNING_KEY_JWK');
  });
});
