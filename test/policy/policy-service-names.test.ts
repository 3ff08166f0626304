import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock.js';
import { diffVersions, formatChanges, versionOfPayload } from '../../src/policy/diff-policy.js';
import { hashPolicy } from '../../src/policy/hash-policy.js';
import { pinPolicy } from '../../src/policy/pins.js';
import { PolicyService } from '../../src/policy/policy-service.js';
import { getVerifiedPolicy, listRegisteredPolicies } from '../../src/policy/registry.js';
import type { GroupsFile, Wpc } from '../../src/policy/types.js';
import { approvalPolicyOf } from '../../src/policy/wpc-payload.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { copyPolicies } from '../helpers/fs.js';
import { captureLogger } from '../helpers/log.js';
import { newKey, ringOf } from '../helpers/state.js';
import { FakeNames, mmId } from './fake-names.js';

const opened: TestDb[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((d) => d.close()));
});

const ALICE = mmId('alice');
const TEAM = mmId('teamops');
const REQUESTS = mmId('chanrequests');
/** The shipped prod policy's second channel, kept as an id. */
const APPROVALS = 'acshgfaj95444smnfg94nxbtmm';
/** invoice-triage's channel: a policy that relies on no name. */
const INVOICES = 'ynewchannelforinvoicesxxxx';

/** A clock the test moves. */
function movableClock(start = Date.parse('2026-11-21T10:00:00Z')): Clock & { advance(ms: number): void } {
  let t = start;
  return Object.assign(() => new Date(t), { advance: (ms: number) => void (t += ms) });
}

function workspace(): FakeNames {
  const mm = new FakeNames();
  mm.users.set('alice', { id: ALICE });
  mm.teams.set('ops', { id: TEAM });
  mm.channels.set('ops/requests', { id: REQUESTS });
  return mm;
}

async function readJson<T>(dir: string, file: string): Promise<T> {
  return JSON.parse(await fs.readFile(path.join(dir, file), 'utf8')) as T;
}
async function writeJson(dir: string, file: string, value: unknown) {
  await fs.writeFile(path.join(dir, file), JSON.stringify(value, null, 2));
}

/**
 * The shipped policies, with the prod policy's team and first channel written as names and
 * @alice among its approvers; invoice-triage gets a channel of its own, by id.
 */
async function namedPolicies(): Promise<string> {
  const dir = await copyPolicies();
  const prod = await readJson<Wpc>(dir, 'mattermost-agent-prod.json');
  prod.channel_context.allowed_team_ids = ['ops'];
  prod.channel_context.allowed_channel_ids = ['ops/requests', APPROVALS];
  await writeJson(dir, 'mattermost-agent-prod.json', prod);
  const invoice = await readJson<Wpc>(dir, 'invoice-triage.json');
  invoice.channel_context.allowed_channel_ids = [INVOICES];
  await writeJson(dir, 'invoice-triage.json', invoice);
  const groups = await readJson<GroupsFile>(dir, 'groups.json');
  groups.groups['ops-oncall']!.members.push({ user_id: '@alice', note: 'by name' });
  await writeJson(dir, 'groups.json', groups);
  return dir;
}

async function service(dir: string, names: FakeNames | undefined, clock = movableClock()) {
  const d = await createTestDb();
  opened.push(d);
  const key = newKey();
  const capture = captureLogger();
  const policies = new PolicyService({
    db: d.db,
    keyRing: ringOf(key),
    clock,
    log: capture.log,
    policiesDir: dir,
    ...(names ? { names } : {}),
    nameRetryMs: 30_000,
    namesMaxAgeMs: 300_000,
  });
  return { d, key, policies, clock, capture };
}

describe('PolicyService with Mattermost names', () => {
  it('opens the channel a name stands for, and signs the ids with the names beside them', async () => {
    const s = await service(await namedPolicies(), workspace());
    const snap = await s.policies.reload();
    const open = s.policies.channelPolicy(REQUESTS);
    expect(open).toMatchObject({ open: true, policyName: 'mattermost-agent-prod' });
    if (!open.open) return;
    expect(open.policy.channel_context).toMatchObject({
      allowed_team_ids: [TEAM],
      allowed_channel_ids: [REQUESTS, APPROVALS],
    });
    expect(open.policy.mattermost_names).toEqual({
      users: { '@alice': ALICE },
      teams: { ops: TEAM },
      channels: { 'ops/requests': REQUESTS },
    });
    // What agents fetch by hash is the bound version, signed.
    const envelope = await getVerifiedPolicy(s.d.db, open.hash, ringOf(s.key).trusts);
    expect(approvalPolicyOf(envelope.payload)).toEqual(open.policy);
    expect(hashPolicy(open.policy).hash).toBe(open.hash);
    // The directory sees ids only.
    expect(snap.groups?.groups['ops-oncall']!.members.at(-1)).toEqual({ user_id: ALICE, note: 'by name' });
    expect(snap.unresolvedNames).toEqual([]);
    expect(snap.problems).toEqual([]);
  });

  it('closes the channels of a policy whose name is unknown, and says which name to every request', async () => {
    const mm = workspace();
    mm.channels.delete('ops/requests');
    const s = await service(await namedPolicies(), mm);
    const snap = await s.policies.reload();
    // The id it also lists is closed with the reason; the name's own channel has no id, and every
    // unknown channel hears which names did not resolve.
    const byId = s.policies.channelPolicy(APPROVALS);
    expect(byId.open).toBe(false);
    if (!byId.open)
      expect(byId.reasons.join('\n')).toMatch(
        /policy "mattermost-agent-prod" \(mattermost-agent-prod\.json\) relies on names that did not resolve: \$\.channel_context\.allowed_channel_ids\[0\]: no channel ops\/requests is visible to the bot/,
      );
    const elsewhere = s.policies.channelPolicy(mmId('somewhere'));
    expect(elsewhere).toEqual({
      open: false,
      reasons: [
        'no policy allows this channel',
        expect.stringMatching(/^channel name ops\/requests did not resolve, so its channel is closed/),
      ],
    });
    expect(s.policies.channelPolicy(INVOICES).open).toBe(true);
    expect(snap.unresolvedNames).toEqual([
      {
        kind: 'channel',
        name: 'ops/requests',
        status: 'unknown',
        reason: expect.stringMatching(/^no channel/),
      },
    ]);
    expect(snap.problems.join('\n')).toContain('ops/requests');
  });

  it('a groups.json name that is a bot closes only the policies naming that group', async () => {
    const mm = workspace();
    mm.users.set('alice', { id: ALICE, is_bot: true });
    const s = await service(await namedPolicies(), mm);
    const snap = await s.policies.reload();
    const prod = s.policies.channelPolicy(APPROVALS);
    expect(prod.open).toBe(false);
    if (!prod.open) expect(prod.reasons.join(' ')).toMatch(/group "ops-oncall".*@alice is a bot account/);
    expect(s.policies.channelPolicy(INVOICES).open).toBe(true);
    expect(snap.problems).toContainEqual(
      expect.stringMatching(/^groups\.json .*@alice is a bot account.*\[names:refused\]$/),
    );
    // The directory never sees the refused name.
    expect(JSON.stringify(snap.groups)).not.toContain('@alice');
  });

  it('Mattermost down at load: names stay unresolved (never guessed), ids keep working, and a later refresh opens them', async () => {
    const mm = workspace();
    mm.down = new Error('cannot reach Mattermost: connect ECONNREFUSED');
    const s = await service(await namedPolicies(), mm);
    const snap = await s.policies.reload();
    expect(s.policies.channelPolicy(APPROVALS).open).toBe(false);
    expect(s.policies.channelPolicy(INVOICES).open).toBe(true);
    expect(snap.unresolvedNames.map((n) => [n.name, n.status])).toEqual(
      expect.arrayContaining([
        ['ops', 'unchecked'],
        ['ops/requests', 'unchecked'],
        ['@alice', 'unchecked'],
      ]),
    );
    mm.down = null;
    // Nothing changed on disk, and the retry delay has not passed: no reload, nothing asked.
    const asked = mm.calls;
    expect(await s.policies.refreshIfChanged()).toBe(false);
    expect(mm.calls).toBe(asked);
    s.clock.advance(30_000);
    expect(await s.policies.refreshIfChanged()).toBe(true);
    expect(s.policies.channelPolicy(REQUESTS).open).toBe(true);
    expect(s.policies.channelPolicy(APPROVALS).open).toBe(true);
  });

  it('a username taken over by someone else becomes a new signed version, visible in policy diff and in the log', async () => {
    const mm = workspace();
    const s = await service(await namedPolicies(), mm);
    await s.policies.reload();
    const first = s.policies.channelPolicy(REQUESTS);
    const mallory = mmId('mallory');
    mm.users.set('alice', { id: mallory });
    // Names are asked about again once they are old, even though no file changed.
    expect(await s.policies.refreshIfChanged()).toBe(false);
    s.clock.advance(300_000);
    expect(await s.policies.refreshIfChanged()).toBe(true);
    const second = s.policies.channelPolicy(REQUESTS);
    expect(first.open && second.open).toBe(true);
    if (!first.open || !second.open) return;
    expect(second.hash).not.toBe(first.hash);
    const versions = (await listRegisteredPolicies(s.d.db, 'mattermost-agent-prod')).map(
      (v) => v.policy_hash_b64u,
    );
    expect(versions).toEqual(expect.arrayContaining([first.hash, second.hash]));
    const trusts = ringOf(s.key).trusts;
    const diff = diffVersions(
      versionOfPayload((await getVerifiedPolicy(s.d.db, first.hash, trusts)).payload),
      versionOfPayload((await getVerifiedPolicy(s.d.db, second.hash, trusts)).payload),
    );
    expect(formatChanges(diff)).toBe(`~ $.mattermost_names.users["@alice"]: "${ALICE}" -> "${mallory}"`);
    expect(s.capture.text()).toContain('a Mattermost name now stands for another id');
    expect(s.policies.current()?.groups?.groups['ops-oncall']!.members.at(-1)).toEqual({
      user_id: mallory,
      note: 'by name',
    });
  });

  it('a pinned version whose names now stand for other ids does not govern (rollback cannot carry a rename)', async () => {
    const mm = workspace();
    const s = await service(await namedPolicies(), mm);
    await s.policies.reload();
    const signed = s.policies.channelPolicy(REQUESTS);
    if (!signed.open) throw new Error('expected the channel to be open');
    await pinPolicy(s.d.db, {
      name: 'mattermost-agent-prod',
      hash: signed.hash,
      actor: 'tester',
      reason: 'rollback drill',
      key: s.key,
      trusts: ringOf(s.key).trusts,
      clock: s.clock,
    });
    await s.policies.reload();
    expect(s.policies.channelPolicy(REQUESTS)).toMatchObject({ open: true, hash: signed.hash });
    mm.users.set('alice', { id: mmId('mallory') });
    await s.policies.reload();
    const after = s.policies.channelPolicy(REQUESTS);
    expect(after.open).toBe(false);
    if (!after.open)
      expect(after.reasons.join(' ')).toMatch(/names changed since it was signed: @alice stood for/);
  });

  it('without a lookup (API-only), a policy relying on names stays closed and says Mattermost is not configured', async () => {
    const s = await service(await namedPolicies(), undefined);
    const snap = await s.policies.reload();
    expect(s.policies.channelPolicy(APPROVALS).open).toBe(false);
    expect(s.policies.channelPolicy(INVOICES).open).toBe(true);
    expect(snap.unresolvedNames[0]?.reason).toMatch(/MATTERMOST_URL/);
    // Nobody could answer differently later: no reload until something changes.
    s.clock.advance(3_600_000);
    expect(await s.policies.refreshIfChanged()).toBe(false);
  });
});
