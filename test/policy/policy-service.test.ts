import fs from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyEnvelope } from '../../src/crypto/envelope.js';
import { jcsHashB64u } from '../../src/crypto/hash.js';
import { hashPolicy } from '../../src/policy/hash-policy.js';
import { pinHistory, pinPolicy, readPins } from '../../src/policy/pins.js';
import { getVerifiedPolicy, registerPolicy } from '../../src/policy/registry.js';
import type { Wpc } from '../../src/policy/types.js';
import { approvalPolicyOf, toWpcPayload } from '../../src/policy/wpc-payload.js';
import { dialectName, type TestDb } from '../helpers/db.js';
import { copyPolicies, tempDir } from '../helpers/fs.js';
import { createState, newKey, ringOf, testClock } from '../helpers/state.js';
import { PolicyService } from '../../src/policy/policy-service.js';
import { verifyEd25519 } from '../../src/tokens/signing-key.js';
import { fromB64u } from '../../src/crypto/hash.js';
import { fixedClock } from '../../src/clock.js';

const opened: TestDb[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((d) => d.close()));
});
async function state(dir?: string) {
  const s = await createState(dir ?? (await copyPolicies()));
  opened.push(s.d);
  return s;
}

async function readPolicy(dir: string, file: string): Promise<Wpc> {
  return JSON.parse(await fs.readFile(path.join(dir, file), 'utf8')) as Wpc;
}
async function writePolicy(dir: string, file: string, policy: unknown) {
  await fs.writeFile(path.join(dir, file), JSON.stringify(policy, null, 2));
}

/** Bypasses the append-only trigger the way an attacker with database access would. */
async function tamper(d: TestDb, hash: string, change: string) {
  await d.db.transaction().execute(async (trx) => {
    await sql`alter table wpc_registry disable trigger wpc_registry_immutable`.execute(trx);
    await sql`update wpc_registry set canonical_payload = ${change} where policy_hash_b64u = ${hash}`.execute(
      trx,
    );
    await sql`alter table wpc_registry enable trigger wpc_registry_immutable`.execute(trx);
  });
}

describe(`policy registry (${dialectName})`, () => {
  it('registers a version once, signed by the bot key, and serves it verified', async () => {
    const s = await state();
    const policy = await readPolicy(await copyPolicies(), 'invoice-triage.json');
    const hashed = hashPolicy(policy);
    const first = await registerPolicy(s.db, {
      hashed,
      key: s.key,
      clock: testClock,
      source: 'invoice-triage.json',
    });
    const again = await registerPolicy(s.db, {
      hashed,
      key: s.key,
      clock: testClock,
      source: 'elsewhere.json',
    });
    expect(first.created).toBe(true);
    expect(again.created).toBe(false);
    expect(again.row.source).toBe('invoice-triage.json');
    const envelope = await getVerifiedPolicy(s.db, hashed.hash, s.keyRing.trusts);
    expect(envelope.payload_hash_b64u).toBe(hashed.hash);
    expect(envelope.payload).toEqual(toWpcPayload(policy));
    expect(approvalPolicyOf(envelope.payload)).toEqual(policy);
    expect(envelope.signer_did).toBe(s.key.did);
    expect(verifyEnvelope(envelope, { type: 'work_policy_contract', hashPayload: jcsHashB64u }).ok).toBe(
      true,
    );
  });

  it('refuses to serve a tampered payload: ERR_WPC_CORRUPTED', async () => {
    const s = await state();
    const hashed = hashPolicy(await readPolicy(await copyPolicies(), 'invoice-triage.json'));
    await registerPolicy(s.db, { hashed, key: s.key, clock: testClock, source: null });
    const evil = hashed.canonical.replace('"required_approvals":2', '"required_approvals":1');
    expect(evil).not.toBe(hashed.canonical);
    await tamper(s.d, hashed.hash, evil);
    await expect(getVerifiedPolicy(s.db, hashed.hash, s.keyRing.trusts)).rejects.toMatchObject({
      code: 'ERR_WPC_CORRUPTED',
    });
  });

  it('refuses a stored payload that is no longer canonical, even if it means the same', async () => {
    const s = await state();
    const hashed = hashPolicy(await readPolicy(await copyPolicies(), 'invoice-triage.json'));
    await registerPolicy(s.db, { hashed, key: s.key, clock: testClock, source: null });
    await tamper(s.d, hashed.hash, JSON.stringify(hashed.policy, null, 1));
    await expect(getVerifiedPolicy(s.db, hashed.hash, s.keyRing.trusts)).rejects.toMatchObject({
      code: 'ERR_WPC_CORRUPTED',
    });
  });

  it('refuses a version signed by a key this deployment never published', async () => {
    const s = await state();
    const hashed = hashPolicy(await readPolicy(await copyPolicies(), 'invoice-triage.json'));
    await registerPolicy(s.db, { hashed, key: newKey(), clock: testClock, source: null });
    await expect(getVerifiedPolicy(s.db, hashed.hash, s.keyRing.trusts)).rejects.toMatchObject({
      code: 'ERR_WPC_CORRUPTED',
    });
  });

  it('still verifies versions signed by a rotated-out key, and only while that key is trusted', async () => {
    const s = await state();
    const hashed = hashPolicy(await readPolicy(await copyPolicies(), 'invoice-triage.json'));
    await registerPolicy(s.db, { hashed, key: s.key, clock: testClock, source: null });
    const rotated = ringOf(newKey(), s.key);
    const envelope = await getVerifiedPolicy(s.db, hashed.hash, rotated.trusts);
    expect(envelope.signer_did).toBe(s.key.did);
    await expect(getVerifiedPolicy(s.db, hashed.hash, ringOf(newKey()).trusts)).rejects.toMatchObject({
      code: 'ERR_WPC_CORRUPTED',
    });
  });

  it('a version re-signed by a new key gets its own row; both verify while both keys are trusted', async () => {
    const s = await state();
    const hashed = hashPolicy(await readPolicy(await copyPolicies(), 'invoice-triage.json'));
    const next = newKey();
    await registerPolicy(s.db, { hashed, key: s.key, clock: testClock, source: null });
    await registerPolicy(s.db, { hashed, key: next, clock: testClock, source: null });
    const rows = await s.db
      .selectFrom('wpc_registry')
      .select('signer_did')
      .where('policy_hash_b64u', '=', hashed.hash)
      .execute();
    expect(rows.map((r) => r.signer_did).sort()).toEqual([s.key.did, next.did].sort());
    expect((await getVerifiedPolicy(s.db, hashed.hash, ringOf(next).trusts)).signer_did).toBe(next.did);
  });

  it('distinguishes a malformed hash from an unknown one', async () => {
    const s = await state();
    await expect(getVerifiedPolicy(s.db, 'abc', s.keyRing.trusts)).rejects.toMatchObject({
      code: 'ERR_WPC_HASH_MALFORMED',
    });
    await expect(getVerifiedPolicy(s.db, `${'A'.repeat(42)}=`, s.keyRing.trusts)).rejects.toMatchObject({
      code: 'ERR_WPC_HASH_MALFORMED',
    });
    await expect(getVerifiedPolicy(s.db, 'A'.repeat(43), s.keyRing.trusts)).rejects.toMatchObject({
      code: 'ERR_WPC_NOT_FOUND',
    });
  });
});

describe(`policy pins (${dialectName})`, () => {
  it('pins only registered versions of the same policy and keeps the history', async () => {
    const s = await state();
    const snap = await s.policies.reload();
    const invoice = snap.resolution.active.get('invoice-triage')!;
    const other = snap.resolution.active.get('mattermost-agent-prod')!;
    await expect(
      pinPolicy(s.db, {
        trusts: s.keyRing.trusts,
        key: s.key,
        clock: testClock,
        name: 'invoice-triage',
        hash: 'B'.repeat(43),
        actor: 'ops',
        reason: 'r',
      }),
    ).rejects.toMatchObject({
      code: 'ERR_WPC_NOT_FOUND',
    });
    await expect(
      pinPolicy(s.db, {
        trusts: s.keyRing.trusts,
        key: s.key,
        clock: testClock,
        name: 'invoice-triage',
        hash: other.hash,
        actor: 'ops',
        reason: 'r',
      }),
    ).rejects.toMatchObject({
      code: 'ERR_POLICY_CONFLICT',
    });
    await expect(
      pinPolicy(s.db, {
        trusts: s.keyRing.trusts,
        key: s.key,
        clock: testClock,
        name: 'invoice-triage',
        hash: 'bad',
        actor: 'ops',
        reason: 'r',
      }),
    ).rejects.toMatchObject({
      code: 'ERR_WPC_HASH_MALFORMED',
    });
    await expect(
      pinPolicy(s.db, {
        trusts: s.keyRing.trusts,
        key: s.key,
        clock: testClock,
        name: 'no-such-policy',
        hash: null,
        actor: 'ops',
        reason: 'r',
      }),
    ).rejects.toMatchObject({
      code: 'ERR_POLICY_NOT_FOUND',
    });
    await pinPolicy(s.db, {
      trusts: s.keyRing.trusts,
      key: s.key,
      clock: testClock,
      name: 'invoice-triage',
      hash: invoice.hash,
      actor: 'ops',
      reason: 'freeze',
    });
    expect((await readPins(s.db, s.keyRing.trusts)).pins.get('invoice-triage')).toBe(invoice.hash);
    await pinPolicy(s.db, {
      trusts: s.keyRing.trusts,
      key: s.key,
      clock: testClock,
      name: 'invoice-triage',
      hash: null,
      actor: 'ops',
      reason: 'thaw',
    });
    expect((await readPins(s.db, s.keyRing.trusts)).pins.has('invoice-triage')).toBe(false);
    expect((await pinHistory(s.db, 'invoice-triage')).map((p) => p.reason)).toEqual(['freeze', 'thaw']);
  });
});

describe(`channel resolution through the policy service (${dialectName})`, () => {
  it('opens each shipped policy’s channels', async () => {
    const s = await state();
    const snap = await s.policies.reload();
    expect(snap.problems).toEqual([]);
    expect(snap.resolution.active.size).toBe(5);
    const prod = await readPolicy(await copyPolicies(), 'mattermost-agent-prod.json');
    for (const channel of prod.channel_context.allowed_channel_ids) {
      expect(s.policies.channelPolicy(channel)).toMatchObject({
        open: true,
        policyName: 'mattermost-agent-prod',
      });
    }
    expect(s.policies.channelPolicy('unknownchannel')).toEqual({
      open: false,
      reasons: ['no policy allows this channel'],
    });
  });

  it('rolls back by pin: a new file version is registered but the pinned one stays active', async () => {
    const dir = await copyPolicies();
    const s = await state(dir);
    const v1 = (await s.policies.reload()).resolution.active.get('invoice-triage')!;
    await pinPolicy(s.db, {
      trusts: s.keyRing.trusts,
      key: s.key,
      clock: testClock,
      name: 'invoice-triage',
      hash: v1.hash,
      actor: 'ops',
      reason: 'hold v1',
    });
    const policy = await readPolicy(dir, 'invoice-triage.json');
    policy.token_requirements.cst_ttl_seconds_max = 600;
    await writePolicy(dir, 'invoice-triage.json', policy);
    expect(await s.policies.refreshIfChanged()).toBe(true);
    const pinned = s.policies.current()!.resolution.active.get('invoice-triage')!;
    expect(pinned).toMatchObject({ hash: v1.hash, origin: 'pin' });
    const v2 = hashPolicy(policy).hash;
    expect(
      await s.db
        .selectFrom('wpc_registry')
        .select('policy_hash_b64u')
        .where('policy_hash_b64u', '=', v2)
        .executeTakeFirst(),
    ).toBeTruthy();
    await pinPolicy(s.db, {
      trusts: s.keyRing.trusts,
      key: s.key,
      clock: testClock,
      name: 'invoice-triage',
      hash: null,
      actor: 'ops',
      reason: 'release v2',
    });
    expect(await s.policies.refreshIfChanged()).toBe(true);
    expect(s.policies.current()!.resolution.active.get('invoice-triage')).toMatchObject({
      hash: v2,
      origin: 'file',
    });
    expect(await s.policies.refreshIfChanged()).toBe(false);
  });

  it('closes a pinned policy’s channels when its stored version fails verification', async () => {
    const dir = await copyPolicies();
    const s = await state(dir);
    const v1 = (await s.policies.reload()).resolution.active.get('invoice-triage')!;
    await pinPolicy(s.db, {
      trusts: s.keyRing.trusts,
      key: s.key,
      clock: testClock,
      name: 'invoice-triage',
      hash: v1.hash,
      actor: 'ops',
      reason: 'hold',
    });
    await tamper(s.d, v1.hash, '{"tampered":true}');
    const snap = await s.policies.reload();
    expect(snap.resolution.active.has('invoice-triage')).toBe(false);
    for (const c of v1.policy.channel_context.allowed_channel_ids) {
      expect(s.policies.channelPolicy(c)).toMatchObject({
        open: false,
        reasons: expect.arrayContaining([expect.stringContaining('failed verification')]),
      });
    }
    expect(snap.problems.join('\n')).toContain('policy "invoice-triage": pinned version');
  });

  it('closes a channel claimed by two policies, and leaves their other channels open', async () => {
    const dir = await copyPolicies();
    const prod = await readPolicy(dir, 'mattermost-agent-prod.json');
    const invoice = await readPolicy(dir, 'invoice-triage.json');
    const shared = prod.channel_context.allowed_channel_ids[0]!;
    invoice.channel_context.allowed_channel_ids.push(shared);
    await writePolicy(dir, 'invoice-triage.json', invoice);
    const s = await state(dir);
    await s.policies.reload();
    expect(s.policies.channelPolicy(shared)).toMatchObject({
      open: false,
      reasons: [expect.stringMatching(/claimed by 2 policies: invoice-triage, mattermost-agent-prod/)],
    });
    expect(s.policies.channelPolicy(prod.channel_context.allowed_channel_ids[1]!)).toMatchObject({
      open: true,
    });
    expect(s.policies.channelPolicy(invoice.channel_context.allowed_channel_ids[0]!)).toMatchObject({
      open: true,
    });
  });

  it('closes the channels of a policy file that stops validating, and of one that stops parsing', async () => {
    const dir = await copyPolicies();
    const s = await state(dir);
    await s.policies.reload();
    const prod = await readPolicy(dir, 'mattermost-agent-prod.json');
    const invoice = await readPolicy(dir, 'invoice-triage.json');
    await writePolicy(dir, 'mattermost-agent-prod.json', {
      ...prod,
      execution: {
        ...prod.execution,
        approval_rule: { ...prod.execution.approval_rule, required_approvals: 0 },
      },
    });
    await fs.writeFile(path.join(dir, 'invoice-triage.json'), '{ not json');
    const snap = await s.policies.reload();
    for (const c of [
      ...prod.channel_context.allowed_channel_ids,
      ...invoice.channel_context.allowed_channel_ids,
    ]) {
      expect(s.policies.channelPolicy(c).open).toBe(false);
    }
    // The unparseable file's channels are known from the versions it registered before.
    expect(snap.resolution.closed.get(invoice.channel_context.allowed_channel_ids[0]!)).toEqual([
      'invoice-triage.json failed validation',
    ]);
    expect(snap.problems.some((p) => p.includes('json:syntax'))).toBe(true);
    expect(snap.problems.some((p) => p.includes('$.execution.approval_rule.required_approvals'))).toBe(true);
  });

  it('closes every channel when groups.json is missing (approvers cannot be resolved)', async () => {
    const dir = await copyPolicies();
    await fs.rm(path.join(dir, 'groups.json'));
    const s = await state(dir);
    const snap = await s.policies.reload();
    expect(snap.resolution.channels.size).toBe(0);
    expect(snap.resolution.closed.size).toBeGreaterThan(0);
  });
});

describe(`a database writer cannot open channels (${dialectName})`, () => {
  it('a version and pin signed by a key the bot does not hold are refused, and the name closes', async () => {
    const dir = await copyPolicies();
    const s = await state(dir);
    const snap = await s.policies.reload();
    const invoice = snap.resolution.active.get('invoice-triage')!;
    // The attacker registers a weaker version of the policy under their own key and pins it,
    // using plain INSERTs (no trigger bypass needed).
    const attacker = newKey();
    const weak = structuredClone(invoice.policy);
    weak.execution.approval_rule.required_approvals = 1;
    weak.execution.approval_rule.distinct_groups = false;
    weak.execution.approval_rule.allow_requester_approval = true;
    const hashedWeak = hashPolicy(weak);
    await registerPolicy(s.db, { hashed: hashedWeak, key: attacker, clock: testClock, source: null });
    await pinPolicy(s.db, {
      trusts: ringOf(attacker).trusts,
      key: attacker,
      clock: testClock,
      name: 'invoice-triage',
      hash: hashedWeak.hash,
      actor: 'mallory',
      reason: 'x',
    });
    const after = await s.policies.reload();
    expect(after.resolution.active.has('invoice-triage')).toBe(false);
    for (const c of invoice.policy.channel_context.allowed_channel_ids) {
      expect(s.policies.channelPolicy(c)).toMatchObject({
        open: false,
        reasons: expect.arrayContaining([expect.stringContaining('pin history failed verification')]),
      });
    }
    expect(after.problems.join('\n')).toContain('signed by an untrusted key');
    await expect(getVerifiedPolicy(s.db, hashedWeak.hash, s.keyRing.trusts)).rejects.toMatchObject({
      code: 'ERR_WPC_CORRUPTED',
    });
  });

  it('an edited pin (e.g. pointing it at another version) breaks the chain and closes the name', async () => {
    const dir = await copyPolicies();
    const s = await state(dir);
    const v1 = (await s.policies.reload()).resolution.active.get('invoice-triage')!;
    await pinPolicy(s.db, {
      trusts: s.keyRing.trusts,
      key: s.key,
      clock: testClock,
      name: 'invoice-triage',
      hash: v1.hash,
      actor: 'ops',
      reason: 'hold',
    });
    expect((await s.policies.reload()).resolution.active.get('invoice-triage')).toMatchObject({
      origin: 'pin',
    });
    await s.db.transaction().execute(async (trx) => {
      await sql`alter table policy_pins disable trigger policy_pins_append_only`.execute(trx);
      await sql`update policy_pins set reason = 'quietly changed'`.execute(trx);
      await sql`alter table policy_pins enable trigger policy_pins_append_only`.execute(trx);
    });
    const snap = await s.policies.reload();
    expect(snap.resolution.active.has('invoice-triage')).toBe(false);
    expect(snap.problems.join('\n')).toContain('does not match its hash');
    expect(s.policies.channelPolicy(v1.policy.channel_context.allowed_channel_ids[0]!).open).toBe(false);
  });

  it('a failing pinned version closes the channels it claimed even if another policy now claims them', async () => {
    const dir = await copyPolicies();
    const s = await state(dir);
    const v1 = (await s.policies.reload()).resolution.active.get('invoice-triage')!;
    const x = v1.policy.channel_context.allowed_channel_ids[0]!;
    await pinPolicy(s.db, {
      trusts: s.keyRing.trusts,
      key: s.key,
      clock: testClock,
      name: 'invoice-triage',
      hash: v1.hash,
      actor: 'ops',
      reason: 'hold',
    });
    // The file moves invoice-triage elsewhere, and another policy claims X.
    const invoice = await readPolicy(dir, 'invoice-triage.json');
    invoice.channel_context.allowed_channel_ids = ['ynewchannelforinvoicesxxxx'];
    await writePolicy(dir, 'invoice-triage.json', invoice);
    const prod = await readPolicy(dir, 'mattermost-agent-prod.json');
    prod.channel_context.allowed_channel_ids.push(x);
    await writePolicy(dir, 'mattermost-agent-prod.json', prod);
    await s.policies.reload();
    expect(s.policies.channelPolicy(x).open).toBe(false); // claimed by the pinned v1 and by prod
    // Now the pinned row is tampered: X must stay closed, not fall to mattermost-agent-prod.
    await tamper(s.d, v1.hash, '{"tampered":true}');
    await s.policies.reload();
    expect(s.policies.channelPolicy(x)).toMatchObject({
      open: false,
      reasons: expect.arrayContaining([expect.stringContaining('pinned version')]),
    });
  });

  it('re-validates pinned versions against today’s groups.json', async () => {
    const dir = await copyPolicies();
    const s = await state(dir);
    const v1 = (await s.policies.reload()).resolution.active.get('invoice-triage')!;
    await pinPolicy(s.db, {
      trusts: s.keyRing.trusts,
      key: s.key,
      clock: testClock,
      name: 'invoice-triage',
      hash: v1.hash,
      actor: 'ops',
      reason: 'hold',
    });
    const groups = JSON.parse(await fs.readFile(path.join(dir, 'groups.json'), 'utf8'));
    Reflect.deleteProperty(groups.groups, v1.policy.execution.approval_rule.allowed_approver_groups[0]!);
    await fs.writeFile(path.join(dir, 'groups.json'), JSON.stringify(groups));
    const snap = await s.policies.reload();
    expect(snap.resolution.active.has('invoice-triage')).toBe(false);
    expect(snap.problems.join('\n')).toContain('lint:unknown-group');
  });
});

describe(`reloading (${dialectName})`, () => {
  it('notices a content change even when size and mtime are restored', async () => {
    const dir = await copyPolicies();
    const s = await state(dir);
    await s.policies.reload();
    const file = path.join(dir, 'invoice-triage.json');
    const before = await fs.stat(file);
    const text = await fs.readFile(file, 'utf8');
    const edited = text.replace('"approval_ttl_seconds": 3600', '"approval_ttl_seconds": 1800');
    expect(edited.length).toBe(text.length);
    await fs.writeFile(file, edited);
    await fs.utimes(file, before.atime, before.mtime);
    expect(await s.policies.refreshIfChanged()).toBe(true);
    expect(
      s.policies.current()!.resolution.active.get('invoice-triage')!.policy.execution.approval_rule
        .approval_ttl_seconds,
    ).toBe(1800);
  });

  it('concurrent reloads run one at a time and the newest state wins', async () => {
    const dir = await copyPolicies();
    const s = await state(dir);
    const results = await Promise.all([s.policies.reload(), s.policies.reload(), s.policies.reload()]);
    expect(new Set(results.map((r) => r.fingerprint)).size).toBe(1);
    expect(s.policies.current()).toBe(results[2]);
  });

  it('reports a failed reload until one succeeds', async () => {
    const dir = await copyPolicies();
    const s = await state(dir);
    await s.policies.reload();
    await s.d.close();
    await expect(s.policies.refreshIfChanged()).rejects.toThrow();
    expect(s.policies.reloadError()).toBeTruthy();
    // The previous snapshot stays readable, but readiness reports the failure.
    expect(s.policies.current()).not.toBeNull();
  });
});

describe(`pin history outside-the-database checks (${dialectName})`, () => {
  async function withPinnedRollback() {
    const dir = await copyPolicies();
    const data = await tempDir();
    const heads = path.join(data, 'pin-heads.json');
    const s = await state(dir);
    const service = (readOnly = false) =>
      new PolicyService({
        db: s.db,
        keyRing: s.keyRing,
        clock: testClock,
        log: s.log,
        policiesDir: dir,
        pinHeadsFile: heads,
        readOnly,
      });
    const live = service();
    const v1 = (await live.reload()).resolution.active.get('invoice-triage')!;
    const weaker = await readPolicy(dir, 'invoice-triage.json');
    weaker.execution.approval_rule.approval_ttl_seconds = 600;
    await writePolicy(dir, 'invoice-triage.json', weaker);
    await live.reload();
    await pinPolicy(s.db, {
      key: s.key,
      trusts: s.keyRing.trusts,
      clock: testClock,
      name: 'invoice-triage',
      hash: v1.hash,
      actor: 'ops',
      reason: 'roll back',
    });
    expect(await live.refreshIfChanged()).toBe(true);
    expect(live.current()!.resolution.active.get('invoice-triage')).toMatchObject({
      hash: v1.hash,
      origin: 'pin',
    });
    return { s, live, service, v1, heads };
  }

  const deleteNewestPin = (db: TestDb['db']) =>
    db.transaction().execute(async (trx) => {
      await sql`alter table policy_pins disable trigger policy_pins_append_only`.execute(trx);
      await sql`delete from policy_pins where id = (select max(id) from policy_pins)`.execute(trx);
      await sql`alter table policy_pins enable trigger policy_pins_append_only`.execute(trx);
    });

  it('deleting the newest pin is noticed by a running server and closes the policy', async () => {
    const { s, live, v1 } = await withPinnedRollback();
    await deleteNewestPin(s.db);
    expect(await live.refreshIfChanged()).toBe(true);
    const snap = live.current()!;
    expect(snap.resolution.active.has('invoice-triage')).toBe(false);
    expect(snap.problems.join('\n')).toContain('pins seen before are missing');
    expect(live.channelPolicy(v1.policy.channel_context.allowed_channel_ids[0]!).open).toBe(false);
  });

  it('…and after a restart, through the pin heads file', async () => {
    const { s, service, v1, heads } = await withPinnedRollback();
    expect(JSON.parse(await fs.readFile(heads, 'utf8'))).toHaveProperty('invoice-triage');
    expect((await fs.stat(heads)).mode & 0o777).toBe(0o600);
    await deleteNewestPin(s.db);
    const restarted = service();
    const snap = await restarted.reload();
    expect(snap.resolution.active.has('invoice-triage')).toBe(false);
    expect(restarted.channelPolicy(v1.policy.channel_context.allowed_channel_ids[0]!).open).toBe(false);
  });

  it('TRUNCATE is refused on the registry and the pin history', async () => {
    const { s } = await withPinnedRollback();
    await expect(sql`truncate policy_pins`.execute(s.db)).rejects.toThrow(/append-only/);
    await expect(sql`truncate wpc_registry cascade`.execute(s.db)).rejects.toThrow(/append-only/);
  });

  it('a pin signature never verifies as a policy envelope signature', async () => {
    const { s } = await withPinnedRollback();
    const pin = (await pinHistory(s.db, 'invoice-triage')).at(-1)!;
    expect(verifyEd25519(s.key.publicRaw, pin.pin_hash_b64u, fromB64u(pin.signature_b64u))).toBe(false);
  });

  it('pinning refuses a hash whose row claims the name but whose verified payload is another policy', async () => {
    const s = await state();
    const snap = await s.policies.reload();
    const refund = snap.resolution.active.get('customer-support-refund-assistant')!;
    // A database writer files refund's version under "invoice-triage" with a signer of their own.
    const fake = newKey();
    await s.db
      .insertInto('wpc_registry')
      .values({
        policy_hash_b64u: refund.hash,
        policy_name: 'invoice-triage',
        canonical_payload: hashPolicy(refund.policy).canonical,
        signature_b64u: 'A'.repeat(86),
        signer_did: fake.did,
        issued_at: new Date('2030-01-01T00:00:00Z'),
        source: null,
      })
      .execute();
    await expect(
      pinPolicy(s.db, {
        key: s.key,
        trusts: s.keyRing.trusts,
        clock: testClock,
        name: 'invoice-triage',
        hash: refund.hash,
        actor: 'ops',
        reason: 'x',
      }),
    ).rejects.toMatchObject({ code: 'ERR_POLICY_CONFLICT' });
  });

  it('a retired key is not trusted for pins dated after its retirement', async () => {
    const dir = await copyPolicies();
    const s = await state(dir);
    const v1 = (await s.policies.reload()).resolution.active.get('invoice-triage')!;
    const after = fixedClock('2027-01-01T00:00:00Z');
    // s.key is retired at testClock(); a pin it signs a year later must not count.
    const rotated = ringOf(newKey(), s.key);
    await pinPolicy(s.db, {
      key: s.key,
      trusts: rotated.trusts,
      clock: after,
      name: 'invoice-triage',
      hash: v1.hash,
      actor: 'leaked',
      reason: 'x',
    });
    const service = new PolicyService({
      db: s.db,
      keyRing: rotated,
      clock: after,
      log: s.log,
      policiesDir: dir,
    });
    const snap = await service.reload();
    expect(snap.resolution.active.has('invoice-triage')).toBe(false);
    expect(snap.problems.join('\n')).toContain('signed by an untrusted key');
  });
});

describe(`broken files after a rename (${dialectName})`, () => {
  it('a policy file that is renamed and then breaks still closes every channel its name claimed', async () => {
    const dir = await copyPolicies();
    const s = await state(dir);
    const prod = await readPolicy(dir, 'mattermost-agent-prod.json');
    await s.policies.reload();
    await fs.rename(path.join(dir, 'mattermost-agent-prod.json'), path.join(dir, 'prod-renamed.json'));
    // Broken, but its name is still readable; it no longer lists one of its old channels.
    const broken = structuredClone(prod) as unknown as Record<string, unknown>;
    (broken.channel_context as { allowed_channel_ids: string[] }).allowed_channel_ids = [
      'zzzzzzzzzzzzzzzzzzzzzzzzzz',
    ];
    broken.unexpected = true;
    await writePolicy(dir, 'prod-renamed.json', broken);
    // Meanwhile another policy claims the dropped channel.
    const invoice = await readPolicy(dir, 'invoice-triage.json');
    invoice.channel_context.allowed_channel_ids.push(prod.channel_context.allowed_channel_ids[0]!);
    await writePolicy(dir, 'invoice-triage.json', invoice);
    await s.policies.reload();
    for (const c of prod.channel_context.allowed_channel_ids)
      expect(s.policies.channelPolicy(c).open).toBe(false);
  });
});
