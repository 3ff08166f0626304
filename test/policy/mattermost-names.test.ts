import { type Sandbox, seedOpsWorkspace, startSandbox } from '@claw-approvals/mattermost-sandbox';
import { afterEach, describe, expect, it } from 'vitest';
import { mattermostNameLookup } from '../../src/chat/mattermost-names.js';
import { MattermostRest } from '../../src/chat/mattermost-rest.js';
import { resolveNames } from '../../src/policy/resolve-names.js';
import { silentLogger } from '../helpers/log.js';

const sandboxes: Sandbox[] = [];
afterEach(async () => {
  await Promise.all(sandboxes.splice(0).map((s) => s.close()));
});

async function world(opts: { licensed?: boolean } = {}) {
  const sandbox = await startSandbox(opts);
  sandboxes.push(sandbox);
  const seed = seedOpsWorkspace(sandbox);
  const rest = new MattermostRest({
    url: sandbox.url,
    token: seed.botToken,
    log: silentLogger(),
    attempts: 1,
  });
  return { sandbox, seed, lookup: mattermostNameLookup(rest, 1) };
}

const now = new Date('2026-11-21T10:00:00Z');
const user = (written: string) => ({ kind: 'user' as const, written });
const group = (written: string) => ({ kind: 'group' as const, written });
const channel = (written: string) => ({ kind: 'channel' as const, written });

describe('name lookups over Mattermost REST (the sandbox)', () => {
  it('resolves people, teams and channels by name, and refuses bots and deactivated accounts', async () => {
    const { sandbox, seed, lookup } = await world();
    sandbox.setUserActive(seed.ids.dmitri, false);
    const t = await resolveNames(
      [
        user('@alice'),
        user('@clawbot'),
        user('@dmitri'),
        user('@nobody'),
        { kind: 'team', written: 'ops' },
        channel('ops/ops-requests'),
        channel('ops/nowhere'),
      ],
      lookup,
      { now },
    );
    expect(t.get(user('@alice'))).toEqual({ ok: true, id: seed.ids.alice });
    expect(t.get(user('@clawbot'))).toMatchObject({
      status: 'refused',
      reason: expect.stringMatching(/bot account/),
    });
    expect(t.get(user('@dmitri'))).toMatchObject({
      status: 'refused',
      reason: expect.stringMatching(/deactivated/),
    });
    expect(t.get(user('@nobody'))).toMatchObject({ status: 'unknown' });
    expect(t.get({ kind: 'team', written: 'ops' })).toEqual({ ok: true, id: seed.team });
    expect(t.get(channel('ops/ops-requests'))).toEqual({ ok: true, id: seed.channel });
    expect(t.get(channel('ops/nowhere'))).toMatchObject({ status: 'unknown' });
  });

  it('does not see a private channel the bot is not in: unknown, with the fix', async () => {
    const { sandbox, seed, lookup } = await world();
    sandbox.createChannel({ team_id: seed.team, name: 'security-response', type: 'P' });
    const t = await resolveNames([channel('ops/security-response')], lookup, { now });
    expect(t.get(channel('ops/security-response'))).toMatchObject({
      status: 'unknown',
      reason: expect.stringMatching(/add the bot/),
    });
  });

  it('keeps only the group whose name is exactly the one written, among the search’s prefix matches', async () => {
    const { sandbox, lookup } = await world();
    const oncall = sandbox.createGroup({ name: 'ops-oncall', display_name: 'Ops on-call' });
    sandbox.createGroup({ name: 'ops-oncall-backup', display_name: 'Ops on-call (backup)' });
    sandbox.createGroup({ name: 'ops', display_name: 'Ops' });
    const t = await resolveNames([group('@ops-oncall'), group('@ops-on')], lookup, { now });
    expect(t.get(group('@ops-oncall'))).toEqual({ ok: true, id: oncall.id });
    expect(t.get(group('@ops-on'))).toMatchObject({ status: 'unknown' });
  });

  it('on a server without a licence for groups, a group name is unknown (not a failure to retry)', async () => {
    const { lookup } = await world({ licensed: false });
    const t = await resolveNames([group('@ops-oncall')], lookup, { now });
    expect(t.get(group('@ops-oncall'))).toMatchObject({
      status: 'unknown',
      reason: expect.stringMatching(/licensed server/),
    });
  });

  it('with the token refused, every name stays unchecked', async () => {
    const { sandbox } = await world();
    const rest = new MattermostRest({ url: sandbox.url, token: 'revoked', log: silentLogger(), attempts: 1 });
    const t = await resolveNames(
      [user('@alice'), channel('ops/ops-requests')],
      mattermostNameLookup(rest, 1),
      {
        now,
      },
    );
    for (const { resolution } of t.entries())
      expect(resolution).toMatchObject({
        ok: false,
        status: 'unchecked',
        reason: expect.stringMatching(/token/),
      });
  });
});
