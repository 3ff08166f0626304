import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  bindGroups,
  bindPolicyNames,
  namesOfGroups,
  namesOfPolicy,
  signedNamesDisagree,
} from '../../src/policy/bind-names.js';
import { hashPolicy } from '../../src/policy/hash-policy.js';
import { parseRef } from '../../src/policy/mattermost-refs.js';
import { resolveNames } from '../../src/policy/resolve-names.js';
import type { GroupsFile, Wpc } from '../../src/policy/types.js';
import { validatePolicy } from '../../src/policy/validate-policy.js';
import { validatePolicyFile } from '../../src/policy/validate-policy-file.js';
import { toWpcPayload } from '../../src/policy/wpc-payload.js';
import { FakeNames, mmId } from './fake-names.js';

const policiesDir = new URL('../../policies/', import.meta.url);
const readJson = <T>(name: string): T => JSON.parse(readFileSync(new URL(name, policiesDir), 'utf8')) as T;
const prod = (): Wpc => readJson<Wpc>('mattermost-agent-prod.json');
const shippedGroups = (): GroupsFile => readJson<GroupsFile>('groups.json');
const now = new Date('2026-11-21T10:00:00Z');

const ALICE = mmId('alice');
const TEAM = mmId('teamops');
const CHANNEL = mmId('chanrequests');
const ONCALL = mmId('grouponcall');
const SECRESP = mmId('chansecurity');

/** A workspace where every name the tests use resolves, unless a test says otherwise. */
function workspace(): FakeNames {
  const mm = new FakeNames();
  mm.users.set('alice', { id: ALICE });
  mm.teams.set('ops', { id: TEAM });
  mm.channels.set('ops/requests', { id: CHANNEL });
  mm.channels.set('ops/security-response', { id: SECRESP });
  mm.groups.set('ops-oncall', [{ id: ONCALL }]);
  return mm;
}

/** groups.json whose ops-oncall group names its members by name. */
function namedGroups(): GroupsFile {
  const g = shippedGroups();
  g.groups['ops-oncall']!.members = [
    { mattermost_group: '@ops-oncall' },
    { user_id: '@alice', note: 'alice.nguyen' },
    { user_id: 'f9g6ejxi8rtawyzhfgrt6tynuc' },
  ];
  g.groups.security!.members.push({ mattermost_channel: 'ops/security-response' });
  return g;
}

function namedPolicy(): Wpc {
  const p = prod();
  p.channel_context.allowed_team_ids = ['ops'];
  p.channel_context.allowed_channel_ids = ['ops/requests', 'acshgfaj95444smnfg94nxbtmm'];
  return p;
}

function tableFor(mm: FakeNames | null, policy: Wpc, groups: GroupsFile) {
  return resolveNames([...namesOfPolicy(policy), ...namesOfGroups(groups)], mm, { now });
}

describe('the name grammar', () => {
  it('reads 26 lowercase letters and digits as an id, whatever the kind', () => {
    for (const kind of ['user', 'group', 'team', 'channel'] as const)
      expect(parseRef(kind, 'fn5tnqd3rq1k6a6rjes4egzp8n')).toEqual({
        kind,
        id: 'fn5tnqd3rq1k6a6rjes4egzp8n',
      });
  });

  it('reads @username, @group-name, team and team/channel as names', () => {
    expect(parseRef('user', '@alice.nguyen')).toEqual({
      kind: 'user',
      name: { kind: 'user', written: '@alice.nguyen' },
    });
    expect(parseRef('group', '@ops-oncall')).toMatchObject({ name: { written: '@ops-oncall' } });
    expect(parseRef('team', 'ops')).toMatchObject({ name: { written: 'ops' } });
    expect(parseRef('channel', 'ops/requests')).toMatchObject({ name: { written: 'ops/requests' } });
  });

  it('refuses hostile or malformed names: @ alone, controls, bidi, over-long, paths, upper case, non-strings', () => {
    const bad: [Parameters<typeof parseRef>[0], unknown][] = [
      ['user', '@'],
      ['user', ''],
      ['user', 'alice'],
      ['user', '@Alice'],
      ['user', '@alice\u0000'],
      ['user', '@ali\nce'],
      ['user', '@alice\u202e'],
      ['user', `@a${'b'.repeat(64)}`],
      ['user', '@a/../../users'],
      ['user', '@a%2f..'],
      ['group', '@'],
      ['group', 'ops-oncall'],
      ['team', 'Ops'],
      ['team', `t${'e'.repeat(64)}`],
      ['channel', 'requests'],
      ['channel', 'ops/requests/x'],
      ['channel', 'ops/../x'],
      ['channel', 'ops/requests\t'],
      ['user', 42],
      ['channel', null],
    ];
    for (const [kind, value] of bad)
      expect(parseRef(kind, value), `${kind} ${JSON.stringify(value)}`).toHaveProperty('invalid');
  });
});

describe('resolveNames', () => {
  const ref = (kind: 'user' | 'group' | 'team' | 'channel', written: string) => ({ kind, written });

  it('judges what Mattermost says: unknown, a bot, deactivated, archived, two groups of one name', async () => {
    const mm = workspace();
    mm.users.set('clawbot', { id: mmId('bot'), is_bot: true });
    mm.users.set('gone', { id: mmId('gone'), delete_at: 1 });
    mm.teams.set('old', { id: mmId('oldteam'), delete_at: 1 });
    mm.channels.set('ops/attic', { id: mmId('attic'), delete_at: 1 });
    mm.groups.set('twins', [{ id: mmId('twina') }, { id: mmId('twinb') }]);
    mm.groups.set('dissolved', [{ id: mmId('dissolved'), delete_at: 1 }]);
    const t = await resolveNames(
      [
        ref('user', '@alice'),
        ref('user', '@nobody'),
        ref('user', '@clawbot'),
        ref('user', '@gone'),
        ref('team', 'old'),
        ref('channel', 'ops/attic'),
        ref('channel', 'ops/secret'),
        ref('group', '@twins'),
        ref('group', '@dissolved'),
        ref('group', '@none'),
      ],
      mm,
      { now },
    );
    expect(t.get(ref('user', '@alice'))).toEqual({ ok: true, id: ALICE });
    expect(t.get(ref('user', '@nobody'))).toEqual({
      ok: false,
      status: 'unknown',
      reason: 'no Mattermost user is named @nobody',
    });
    expect(t.get(ref('user', '@clawbot'))).toMatchObject({
      status: 'refused',
      reason: expect.stringMatching(/bot account/),
    });
    expect(t.get(ref('user', '@gone'))).toMatchObject({
      status: 'refused',
      reason: expect.stringMatching(/deactivated/),
    });
    expect(t.get(ref('team', 'old'))).toMatchObject({
      status: 'refused',
      reason: expect.stringMatching(/archived/),
    });
    expect(t.get(ref('channel', 'ops/attic'))).toMatchObject({
      status: 'refused',
      reason: expect.stringMatching(/archived/),
    });
    expect(t.get(ref('channel', 'ops/secret'))).toMatchObject({
      status: 'unknown',
      reason: expect.stringMatching(/add the bot/),
    });
    expect(t.get(ref('group', '@twins'))).toMatchObject({
      status: 'ambiguous',
      reason: '2 Mattermost groups are named @twins',
    });
    expect(t.get(ref('group', '@dissolved'))).toMatchObject({ status: 'refused' });
    expect(t.get(ref('group', '@none'))).toMatchObject({
      status: 'unknown',
      reason: expect.stringMatching(/licensed/),
    });
  });

  it('never uses an id Mattermost answered malformed', async () => {
    const mm = new FakeNames();
    mm.users.set('alice', { id: 'ALICE/../x' });
    const t = await resolveNames([ref('user', '@alice')], mm, { now });
    expect(t.get(ref('user', '@alice'))).toMatchObject({ ok: false, status: 'refused' });
  });

  it('asks once per distinct name', async () => {
    const mm = workspace();
    await resolveNames(
      [ref('user', '@alice'), ref('user', '@alice'), ref('team', 'ops'), ref('group', '@alice')],
      mm,
      {
        now,
      },
    );
    expect(mm.calls).toBe(3);
  });

  it('leaves every name unchecked when Mattermost is down, and stops asking after the first failure', async () => {
    const mm = workspace();
    mm.down = new Error('cannot reach Mattermost: connect ECONNREFUSED 127.0.0.1:1');
    const refs = Array.from({ length: 40 }, (_, i) => ref('user', `@user${i}`));
    const t = await resolveNames(refs, mm, { now, concurrency: 2 });
    expect(mm.calls).toBeLessThanOrEqual(2);
    for (const r of refs)
      expect(t.get(r)).toEqual({
        ok: false,
        status: 'unchecked',
        reason: 'Mattermost could not be asked: cannot reach Mattermost: connect ECONNREFUSED 127.0.0.1:1',
      });
    expect(t.hasUnchecked()).toBe(true);
  });

  it('without Mattermost configured, says so for every name', async () => {
    const t = await resolveNames([ref('channel', 'ops/requests')], null, { now });
    expect(t.entries()).toEqual([
      {
        ref: ref('channel', 'ops/requests'),
        resolution: { ok: false, status: 'unchecked', reason: expect.stringMatching(/MATTERMOST_URL/) },
      },
    ]);
  });
});

describe('bindPolicyNames: what is signed', () => {
  it('replaces each name by its id and records every name relied on, its own and its groups', async () => {
    const policy = namedPolicy();
    const groups = namedGroups();
    const table = await tableFor(workspace(), policy, groups);
    const bound = bindPolicyNames(policy, bindGroups(groups, table), table);
    expect(bound.ok).toBe(true);
    if (!bound.ok) return;
    expect(bound.value.channel_context.allowed_team_ids).toEqual([TEAM]);
    expect(bound.value.channel_context.allowed_channel_ids).toEqual([CHANNEL, 'acshgfaj95444smnfg94nxbtmm']);
    // ops-oncall is an approver group of this policy; security (with its channel name) is not.
    expect(bound.value.mattermost_names).toEqual({
      users: { '@alice': ALICE },
      groups: { '@ops-oncall': ONCALL },
      teams: { ops: TEAM },
      channels: { 'ops/requests': CHANNEL },
    });
    // The signed form is a valid policy, and its hash differs from the unbound file's.
    expect(validatePolicy(bound.value, { groups: bindGroups(groups, table).file }).ok).toBe(true);
    expect(hashPolicy(bound.value).hash).not.toBe(hashPolicy(policy).hash);
  });

  it('leaves a policy that relies on no name exactly as it is, so its hash does not change', async () => {
    const policy = prod();
    const groups = shippedGroups();
    const table = await tableFor(null, policy, groups);
    const bound = bindPolicyNames(policy, bindGroups(groups, table), table);
    expect(bound).toEqual({ ok: true, value: policy });
    if (bound.ok) expect(hashPolicy(bound.value).hash).toBe(hashPolicy(prod()).hash);
  });

  it('refuses the policy when its own name does not resolve, at the name’s path', async () => {
    const policy = namedPolicy();
    policy.channel_context.allowed_channel_ids[0] = 'ops/typo';
    const groups = shippedGroups();
    const table = await tableFor(workspace(), policy, groups);
    expect(bindPolicyNames(policy, bindGroups(groups, table), table)).toEqual({
      ok: false,
      problems: [
        {
          path: '$.channel_context.allowed_channel_ids[0]',
          rule: 'names:unknown',
          message: expect.stringMatching(/^no channel ops\/typo is visible to the bot/),
        },
      ],
    });
  });

  it('refuses a policy whose approver group has a bot or a deactivated user, naming group, member and why', async () => {
    for (const [user, why] of [
      [{ id: mmId('robot'), is_bot: true }, /@alice is a bot account/],
      [{ id: ALICE, delete_at: 1_700_000_000_000 }, /@alice is deactivated/],
    ] as const) {
      const mm = workspace();
      mm.users.set('alice', user);
      const policy = prod();
      const groups = namedGroups();
      const table = await tableFor(mm, policy, groups);
      const bound = bindPolicyNames(policy, bindGroups(groups, table), table);
      expect(bound.ok).toBe(false);
      if (bound.ok) return;
      expect(bound.problems).toEqual([
        {
          path: '$.execution.approval_rule.allowed_approver_groups[0]',
          rule: 'names:refused',
          message: expect.stringMatching(
            /^group "ops-oncall" \(groups\.json \$\.groups\["ops-oncall"\]\.members\[1\]\.user_id\): /,
          ),
        },
      ]);
      expect(bound.problems[0]!.message).toMatch(why);
    }
  });

  it('refuses a name and an id that are one channel', async () => {
    const policy = namedPolicy();
    policy.channel_context.allowed_channel_ids = ['ops/requests', CHANNEL];
    const groups = shippedGroups();
    const table = await tableFor(workspace(), policy, groups);
    const bound = bindPolicyNames(policy, bindGroups(groups, table), table);
    expect(bound).toMatchObject({
      ok: false,
      problems: [{ path: '$.channel_context.allowed_channel_ids[1]', rule: 'names:duplicate' }],
    });
  });
});

describe('bindGroups', () => {
  it('gives the directory ids only, and leaves out a member whose name did not resolve', async () => {
    const mm = workspace();
    mm.users.delete('alice');
    const groups = namedGroups();
    const table = await tableFor(mm, prod(), groups);
    const bound = bindGroups(groups, table);
    expect(bound.file.groups['ops-oncall']!.members).toEqual([
      { mattermost_group: ONCALL },
      { user_id: 'f9g6ejxi8rtawyzhfgrt6tynuc' },
    ]);
    expect(bound.file.groups.security!.members.at(-1)).toEqual({ mattermost_channel: SECRESP });
    expect([...bound.problems.keys()]).toEqual(['ops-oncall']);
  });
});

describe('signedNamesDisagree: a signed version against today’s names', () => {
  async function signedThenToday(change: (mm: FakeNames) => void) {
    const groups = namedGroups();
    const before = workspace();
    const t0 = await tableFor(before, prod(), groups);
    const signed = bindPolicyNames(prod(), bindGroups(groups, t0), t0);
    if (!signed.ok) throw new Error('expected the policy to bind');
    const after = workspace();
    change(after);
    const t1 = await tableFor(after, prod(), groups);
    return signedNamesDisagree(signed.value, bindGroups(groups, t1));
  }

  it('agrees when nothing changed', async () => {
    expect(await signedThenToday(() => {})).toBeNull();
  });

  it('says who changed when a username now stands for someone else', async () => {
    const mallory = mmId('mallory');
    expect(await signedThenToday((mm) => mm.users.set('alice', { id: mallory }))).toBe(
      `names changed since it was signed: @alice stood for ${ALICE} when signed and now for ${mallory}`,
    );
  });

  it('refuses when a name the groups rely on no longer resolves', async () => {
    expect(await signedThenToday((mm) => mm.groups.delete('ops-oncall'))).toMatch(
      /group "ops-oncall" .*no Mattermost group is named @ops-oncall/,
    );
  });
});

describe('policy files never write mattermost_names', () => {
  it('refuses it in either form, naming the path', () => {
    const policy = { ...prod(), mattermost_names: { users: { '@alice': ALICE } } } as Wpc;
    expect(validatePolicyFile(policy)).toEqual({
      ok: false,
      problems: [{ path: '$.mattermost_names', rule: 'names:loader-only', message: expect.any(String) }],
    });
    expect(validatePolicyFile(toWpcPayload(policy))).toMatchObject({
      ok: false,
      problems: [{ path: '$.metadata.claw_approvals.mattermost_names', rule: 'names:loader-only' }],
    });
  });

  it('accepts names where ids go, and refuses a bare channel name', () => {
    expect(validatePolicyFile(namedPolicy(), { groups: namedGroups() }).ok).toBe(true);
    const bare = namedPolicy();
    bare.channel_context.allowed_channel_ids[0] = 'requests';
    expect(validatePolicyFile(bare)).toMatchObject({
      ok: false,
      problems: [{ path: '$.channel_context.allowed_channel_ids[0]', rule: 'schema:pattern' }],
    });
  });
});
