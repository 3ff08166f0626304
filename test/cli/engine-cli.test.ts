import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { TestDb } from '../helpers/db.js';
import { cli, stateEnv } from '../helpers/cli.js';
import { clawBureauPath } from '../helpers/clawbureau.js';
import { tempDir } from '../helpers/fs.js';

const fixture = (name: string) => clawBureauPath(`fixtures/${name}`);
const ALLOWLIST = fixture('allowlists.v1.json');

const dbs: (TestDb | null)[] = [];
afterEach(async () => {
  await Promise.all(dbs.splice(0).map((d) => d?.close()));
});
async function env() {
  const s = await stateEnv();
  dbs.push(s.db);
  return s.env;
}

describe('claw-approvals bundle verify (files, offline)', () => {
  it('accepts the Claw Bureau pass fixture with the signers of its allowlist', async () => {
    const dataDir = await tempDir();
    const res = await cli(
      ['bundle', 'verify', fixture('proof_bundle_pass.v1.json'), '--allowlist', ALLOWLIST],
      {
        DATA_DIR: dataDir,
      },
    );
    expect(res.code).toBe(0);
    expect(res.out).toMatch(
      /^OK bundle_conformance_001: .* 1 chained events, 0 approval receipts, 1 gateway receipts verified$/,
    );
  });

  it.each([
    ['proof_bundle_fail_invalid_signature.v1.json', 'BUNDLE_SIGNATURE_INVALID'],
    ['proof_bundle_fail_receipt_binding_mismatch.v1.json', 'RECEIPT_BINDING_MISMATCH'],
  ])('rejects %s with %s and exit code 1', async (file, reason) => {
    const res = await cli(['bundle', 'verify', fixture(file), '--allowlist', ALLOWLIST, '--json'], {
      DATA_DIR: await tempDir(),
    });
    expect(res.code).toBe(1);
    expect(JSON.parse(res.out)).toMatchObject({ ok: false, reason });
    expect(res.err).toContain(`error ERR_BUNDLE_INVALID: ${reason}`);
  });

  it('refuses a correctly signed bundle whose signer nobody said to trust', async () => {
    const dir = await tempDir();
    const none = await cli(['bundle', 'verify', fixture('proof_bundle_pass.v1.json')], { DATA_DIR: dir });
    expect(none.code).toBe(1);
    expect(none.out).toBe('');
    expect(none.err).toMatch(/^error ERR_VALIDATION: no bundle signer to trust: pass --jwks .* or --trust/);
    const other = 'did:key:z6MkfF4ykuxdK3Cea9xDqWgLLgMBvxcypy6Tv1K45Eahxy3m';
    const res = await cli(['bundle', 'verify', fixture('proof_bundle_pass.v1.json'), '--trust', other], {
      DATA_DIR: dir,
    });
    expect(res.code).toBe(1);
    expect(res.out).toMatch(/^FAIL (\S+ \()?BUNDLE_SIGNER_UNTRUSTED/);
  });

  it('refuses gateway receipts whose signer is not allowlisted', async () => {
    const dir = await tempDir();
    const allow = JSON.parse(await fs.readFile(ALLOWLIST, 'utf8')) as Record<string, unknown>;
    const file = path.join(dir, 'allow.json');
    await fs.writeFile(file, JSON.stringify({ ...allow, gateway_receipt_signer_dids: [] }));
    const res = await cli(['bundle', 'verify', fixture('proof_bundle_pass.v1.json'), '--allowlist', file], {
      DATA_DIR: dir,
    });
    expect(res.code).toBe(1);
    expect(res.out).toMatch(/^FAIL (\S+ \()?RECEIPT_SIGNER_UNTRUSTED/);
  });

  it('says what is wrong with a file that is not JSON and an argument that is neither file nor id', async () => {
    const dir = await tempDir();
    const junk = path.join(dir, 'junk.json');
    await fs.writeFile(junk, '{"envelope_version":');
    expect(
      (await cli(['bundle', 'verify', junk, '--allowlist', ALLOWLIST], { DATA_DIR: dir })).err,
    ).toContain('BUNDLE_ENVELOPE_MALFORMED');
    const res = await cli(['bundle', 'verify', 'no-such-thing'], { DATA_DIR: dir });
    expect(res.code).toBe(1);
    expect(res.err).toContain('ERR_BUNDLE_NOT_FOUND');
  });
});

describe('claw-approvals agents', () => {
  it('creates an agent, shows its key once, lists it without the key, revokes it', async () => {
    const e = await env();
    const created = await cli(
      ['agents', 'create', 'agent:ops-mattermost-1', '--description', 'ops agent'],
      e,
    );
    expect(created.code).toBe(0);
    const { key } = JSON.parse(created.out) as { key: string };
    expect(key).toMatch(/^cak_[A-Za-z0-9_-]{43}$/);

    const again = await cli(['agents', 'create', 'agent:ops-mattermost-1'], e);
    expect(again.code).toBe(1);
    expect(again.err).toContain('ERR_AGENT_EXISTS');

    const listed = await cli(['agents', 'list'], e);
    expect(listed.out).not.toContain(key);
    expect(JSON.parse(listed.out)).toEqual([
      expect.objectContaining({
        id: 'agent:ops-mattermost-1',
        key_hint: `${key.slice(0, 8)}…`,
        revoked_at: null,
      }),
    ]);

    const revoked = await cli(['agents', 'revoke', 'agent:ops-mattermost-1'], e);
    expect(JSON.parse(revoked.out).revoked_at).toEqual(expect.any(String));
    expect((await cli(['agents', 'revoke', 'nobody'], e)).err).toContain('ERR_AGENT_NOT_FOUND');
    expect((await cli(['agents', 'create', 'bad id with spaces'], e)).err).toContain('ERR_VALIDATION');
  });

  it('token introspect reports a garbage token as inactive with its reason, exit 1', async () => {
    const e = await env();
    const res = await cli(['token', 'introspect', 'not.a.token'], e);
    expect(res.code).toBe(1);
    expect(JSON.parse(res.out)).toMatchObject({ active: false, code: 'ERR_TOKEN_INVALID' });
  });

  it('token revoke needs exactly one of --jti and --token-hash, and an unknown token is not found', async () => {
    const e = await env();
    expect((await cli(['token', 'revoke', '--reason', 'x'], e)).err).toContain('ERR_VALIDATION');
    const res = await cli(
      ['token', 'revoke', '--jti', '00000000-0000-4000-8000-000000000000', '--reason', 'x'],
      e,
    );
    expect(res.code).toBe(1);
    expect(res.err).toContain('ERR_TOKEN_NOT_FOUND');
  });
});
