import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { events, Probe, rest } from './helpers.js';
import { world, type World } from './world.js';

let w: World;
const probes: Probe[] = [];

async function open(token: string): Promise<Probe> {
  const probe = await Probe.open(w.sandbox, { token });
  probes.push(probe);
  await probe.until((f) => f.event === 'hello');
  return probe;
}

beforeEach(async () => {
  w = await world();
});

afterEach(async () => {
  for (const p of probes.splice(0)) p.close();
  await w.sandbox.close();
});

const EMPTY = {
  omit_users: null,
  user_id: '',
  channel_id: '',
  team_id: '',
  connection_id: '',
  omit_connection_id: '',
};

describe('channel membership events (App.AddUserToChannel, App.removeUserFromChannel)', () => {
  it('user_added goes to the channel, the new member included, with user_id and team_id', async () => {
    const [alice, outsider] = await Promise.all([open(w.alice.token), open(w.outsider.token)]);
    w.sandbox.addChannelMember(w.town.id, w.outsider.user.id);
    const expected = {
      event: 'user_added',
      data: { team_id: w.team.id, user_id: w.outsider.user.id },
      broadcast: { ...EMPTY, channel_id: w.town.id },
    };
    expect(await alice.until((f) => f.event === 'user_added')).toMatchObject({ ...expected, seq: 1 });
    expect(await outsider.until((f) => f.event === 'user_added')).toMatchObject({ ...expected, seq: 1 });
    // Adding someone already there publishes nothing.
    w.sandbox.addChannelMember(w.town.id, w.outsider.user.id);
    expect(events(await alice.drain(), 'user_added')).toEqual([]);
  });

  it('user_removed goes to the remaining members (user_id) and to the removed person alone (channel_id)', async () => {
    const [alice, bob, bot] = await Promise.all([open(w.alice.token), open(w.bob.token), open(w.bot.token)]);
    w.sandbox.removeChannelMember(w.town.id, w.bob.user.id);
    const toChannel = await alice.until((f) => f.event === 'user_removed');
    expect(toChannel).toEqual({
      event: 'user_removed',
      data: { remover_id: '', user_id: w.bob.user.id },
      broadcast: { ...EMPTY, channel_id: w.town.id },
      seq: 1,
    });
    expect(await bot.until((f) => f.event === 'user_removed')).toMatchObject({ seq: 1 });
    const toBob = events(await bob.drain(), 'user_removed');
    expect(toBob).toEqual([
      {
        event: 'user_removed',
        data: { channel_id: w.town.id, remover_id: '' },
        broadcast: { ...EMPTY, user_id: w.bob.user.id },
        seq: 1,
      },
    ]);
    // Removing someone who is not a member publishes nothing.
    w.sandbox.removeChannelMember(w.town.id, w.bob.user.id);
    expect(events(await alice.drain(), 'user_removed')).toEqual([]);
  });

  it('the control API adds and removes with the same events', async () => {
    const alice = await open(w.alice.token);
    const control = (method: string, path: string, body?: unknown) =>
      fetch(`${w.sandbox.url}/sandbox/v1${path}`, {
        method,
        headers: { 'Content-Type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    expect(
      (await control('POST', `/channels/${w.town.id}/members`, { user_id: w.outsider.user.id })).status,
    ).toBe(200);
    expect((await control('DELETE', `/channels/${w.town.id}/members/${w.outsider.user.id}`)).status).toBe(
      200,
    );
    expect(events(await alice.drain()).map((f) => [f.event, f.seq])).toEqual([
      ['user_added', 1],
      ['user_removed', 2],
    ]);
  });
});

describe('group membership events (App.publishGroupMemberEvent)', () => {
  it('group_member_add and group_member_delete go to the member alone, group_member a JSON string', async () => {
    const group = w.sandbox.createGroup({ name: 'oncall' });
    const [alice, bob] = await Promise.all([open(w.alice.token), open(w.bob.token)]);
    w.sandbox.addGroupMembers(group.id, [w.alice.user.id]);
    w.sandbox.removeGroupMember(group.id, w.alice.user.id);
    w.sandbox.removeGroupMember(group.id, w.alice.user.id); // not a member any more: nothing
    const got = events(await alice.drain());
    expect(got.map((f) => f.event)).toEqual(['group_member_add', 'group_member_delete']);
    expect(got[0]!.broadcast).toEqual({ ...EMPTY, user_id: w.alice.user.id });
    expect(typeof got[0]!.data!.group_member).toBe('string');
    expect(JSON.parse(got[0]!.data!.group_member as string)).toEqual({
      group_id: group.id,
      user_id: w.alice.user.id,
      create_at: expect.any(Number),
      delete_at: 0,
    });
    expect(JSON.parse(got[1]!.data!.group_member as string)).toMatchObject({
      group_id: group.id,
      user_id: w.alice.user.id,
      delete_at: expect.any(Number),
    });
    expect(JSON.parse(got[1]!.data!.group_member as string).delete_at).toBeGreaterThan(0);
    // Nobody else hears of it: bob's stream stays empty.
    expect(await bob.drain()).toEqual([]);
  });
});

describe('account events (App.UpdateActive → sendUpdatedUserEvent)', () => {
  it('deactivating sends user_updated to everyone but the account: sanitized, or sensitive to admins', async () => {
    const [bob, admin, outsider] = await Promise.all([
      open(w.bob.token),
      open(w.admin.token),
      open(w.outsider.token),
    ]);
    const alice = await open(w.alice.token);
    w.sandbox.setUserActive(w.alice.user.id, false);
    for (const [probe, flag] of [
      [bob, 'contains_sanitized_data'],
      [outsider, 'contains_sanitized_data'],
      [admin, 'contains_sensitive_data'],
    ] as const) {
      const got = events(await probe.drain(), 'user_updated');
      expect(got).toHaveLength(1);
      expect(got[0]!.broadcast).toEqual({ ...EMPTY, omit_users: { [w.alice.user.id]: true }, [flag]: true });
      // An object, not a JSON string, with the account's delete_at set.
      const user = got[0]!.data!.user as { id: string; delete_at: number };
      expect(user).toMatchObject({ id: w.alice.user.id });
      expect(user.delete_at).toBeGreaterThan(0);
    }
    // The account itself gets its own unsanitized copy, addressed to it alone.
    const own = events(await alice.drain(), 'user_updated');
    expect(own.map((f) => f.broadcast)).toEqual([{ ...EMPTY, user_id: w.alice.user.id }]);
  });

  it('PUT /users/{id}/active by an admin publishes the same event', async () => {
    const bob = await open(w.bob.token);
    const res = await rest(w.sandbox, w.admin.token, 'PUT', `/users/${w.alice.user.id}/active`, {
      active: false,
    });
    expect(res.status).toBe(200);
    const got = events(await bob.drain(), 'user_updated');
    expect(got).toHaveLength(1);
    expect((got[0]!.data!.user as { delete_at: number }).delete_at).toBeGreaterThan(0);
  });
});
