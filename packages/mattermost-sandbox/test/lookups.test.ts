import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startSandbox } from '../src/sandbox.js';
import { rest } from './helpers.js';
import { world, type World } from './world.js';

let w: World;

beforeEach(async () => {
  w = await world();
});

afterEach(async () => {
  await w.sandbox.close();
});

const errorId = (r: { body: unknown }): unknown => (r.body as { id?: unknown }).id;

describe('users by name', () => {
  it('answers /users/me for the token holder, bot or person', async () => {
    const me = await rest(w.sandbox, w.bot.token, 'GET', '/users/me');
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ id: w.bot.user.id, username: 'clawbot', is_bot: true });
  });

  it('resolves a list of usernames, leaving unknown names out and sanitising other people', async () => {
    const r = await rest(w.sandbox, w.bob.token, 'POST', '/users/usernames', [
      'alice',
      'nobody',
      'bob',
      'alice',
    ]);
    expect(r.status).toBe(200);
    const users = r.body as Record<string, unknown>[];
    expect(users.map((u) => u.username)).toEqual(['alice', 'bob']);
    expect(users[0]).not.toHaveProperty('notify_props');
    expect(users[1]).toHaveProperty('notify_props');
  });

  it('refuses an empty list and a body that is not a list of strings', async () => {
    const empty = await rest(w.sandbox, w.bob.token, 'POST', '/users/usernames', []);
    expect(empty.status).toBe(400);
    expect(errorId(empty)).toBe('api.context.invalid_param.app_error');
    for (const body of [{ usernames: ['alice'] }, [1, 2], 'not json']) {
      const bad = await rest(w.sandbox, w.bob.token, 'POST', '/users/usernames', body);
      expect(bad.status).toBe(400);
      expect(errorId(bad)).toBe('api.payload.parse.error');
    }
  });

  it('needs a session', async () => {
    const r = await rest(w.sandbox, '', 'POST', '/users/usernames', ['alice']);
    expect(r.status).toBe(401);
  });
});

describe('teams and channels by name', () => {
  it('serves a team by name to its members; others get 403, unknown names 404, malformed 400', async () => {
    const ok = await rest(w.sandbox, w.alice.token, 'GET', '/teams/name/ops');
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ id: w.team.id, name: 'ops' });
    expect((await rest(w.sandbox, w.outsider.token, 'GET', '/teams/name/ops')).status).toBe(403);
    const missing = await rest(w.sandbox, w.alice.token, 'GET', '/teams/name/nope');
    expect(missing.status).toBe(404);
    expect(errorId(missing)).toBe('app.team.get_by_name.missing.app_error');
    const malformed = await rest(w.sandbox, w.alice.token, 'GET', '/teams/name/Ops');
    expect(malformed.status).toBe(400);
    expect(errorId(malformed)).toBe('api.context.invalid_url_param.app_error');
  });

  it('resolves team-name/channel-name like getChannelByNameForTeamName', async () => {
    const town = await rest(w.sandbox, w.bob.token, 'GET', '/teams/name/ops/channels/name/town-square');
    expect(town.status).toBe(200);
    expect(town.body).toMatchObject({ id: w.town.id, team_id: w.team.id });
    // A team member outside a public channel may still read it (read_public_channel).
    w.sandbox.addTeamMember(w.team.id, w.outsider.user.id);
    expect(
      (await rest(w.sandbox, w.outsider.token, 'GET', '/teams/name/ops/channels/name/town-square')).status,
    ).toBe(200);
    // A private channel the caller is not in is reported as missing, not forbidden.
    const secret = await rest(w.sandbox, w.bob.token, 'GET', '/teams/name/ops/channels/name/secret');
    expect(secret.status).toBe(404);
    expect(errorId(secret)).toBe('app.channel.get_by_name.missing.app_error');
    expect((await rest(w.sandbox, w.alice.token, 'GET', '/teams/name/ops/channels/name/secret')).status).toBe(
      200,
    );
    const noChannel = await rest(w.sandbox, w.alice.token, 'GET', '/teams/name/ops/channels/name/nope');
    expect(errorId(noChannel)).toBe('app.channel.get_by_name.missing.app_error');
    const noTeam = await rest(w.sandbox, w.alice.token, 'GET', '/teams/name/nope/channels/name/town-square');
    expect(errorId(noTeam)).toBe('app.team.get_by_name.missing.app_error');
  });

  it('refuses a public channel to someone outside its team', async () => {
    const r = await rest(w.sandbox, w.outsider.token, 'GET', '/teams/name/ops/channels/name/town-square');
    expect(r.status).toBe(403);
  });

  it('lists a user’s teams to that user or an admin only', async () => {
    const mine = await rest(w.sandbox, w.alice.token, 'GET', '/users/me/teams');
    expect((mine.body as { id: string }[]).map((t) => t.id)).toEqual([w.team.id]);
    expect((await rest(w.sandbox, w.outsider.token, 'GET', '/users/me/teams')).body).toEqual([]);
    expect((await rest(w.sandbox, w.bob.token, 'GET', `/users/${w.alice.user.id}/teams`)).status).toBe(403);
    expect((await rest(w.sandbox, w.admin.token, 'GET', `/users/${w.alice.user.id}/teams`)).status).toBe(200);
  });

  it('answers team membership to those who can view the team; a non-member is a 404', async () => {
    const member = await rest(
      w.sandbox,
      w.alice.token,
      'GET',
      `/teams/${w.team.id}/members/${w.bot.user.id}`,
    );
    expect(member.status).toBe(200);
    expect(member.body).toMatchObject({
      team_id: w.team.id,
      user_id: w.bot.user.id,
      roles: 'team_user',
      delete_at: 0,
    });
    const missing = await rest(
      w.sandbox,
      w.alice.token,
      'GET',
      `/teams/${w.team.id}/members/${w.outsider.user.id}`,
    );
    expect(missing.status).toBe(404);
    expect(errorId(missing)).toBe('app.team.get_member.missing.app_error');
    const outsider = await rest(
      w.sandbox,
      w.outsider.token,
      'GET',
      `/teams/${w.team.id}/members/${w.alice.user.id}`,
    );
    expect(outsider.status).toBe(403);
  });
});

describe('groups', () => {
  it('searches groups by name or display name, with member counts only on request', async () => {
    const oncall = w.sandbox.createGroup({ name: 'ops-oncall', display_name: 'Ops On-call' });
    w.sandbox.createGroup({ name: 'sec-reviewers', display_name: 'Security reviewers' });
    w.sandbox.addGroupMembers(oncall.id, [w.alice.user.id]);
    const found = await rest(w.sandbox, w.bob.token, 'GET', '/groups?q=ONCALL');
    expect(found.status).toBe(200);
    expect(found.body).toEqual([expect.objectContaining({ id: oncall.id, name: 'ops-oncall' })]);
    expect((found.body as object[])[0]).not.toHaveProperty('member_count');
    const counted = await rest(w.sandbox, w.bob.token, 'GET', '/groups?q=on-call&include_member_count=true');
    expect(counted.body).toEqual([expect.objectContaining({ id: oncall.id, member_count: 1 })]);
    const all = await rest(w.sandbox, w.bob.token, 'GET', '/groups');
    expect((all.body as { name: string }[]).map((g) => g.name)).toEqual(['ops-oncall', 'sec-reviewers']);
    // `%` and `_` are literal, as sanitizeSearchTerm makes them.
    expect((await rest(w.sandbox, w.bob.token, 'GET', '/groups?q=%25')).body).toEqual([]);
  });

  it('answers 501 api.license_error on every groups route of an unlicensed server', async () => {
    const unlicensed = await startSandbox({ licensed: false });
    try {
      const team = unlicensed.createTeam({ name: 'ops' });
      const { user, token } = unlicensed.createUser({ username: 'alice' });
      unlicensed.addTeamMember(team.id, user.id);
      const group = unlicensed.createGroup({ name: 'ops-oncall' });
      for (const path of [
        '/groups?q=ops',
        `/groups/${group.id}`,
        `/groups/${group.id}/members`,
        '/users/me/groups',
      ]) {
        const r = await rest(unlicensed, token, 'GET', path);
        expect(r.status, path).toBe(501);
        expect(errorId(r), path).toBe('api.license_error');
      }
    } finally {
      await unlicensed.close();
    }
  });
});

describe('bots', () => {
  it('shows a bot to system admins and hides it from everyone else, the bot included', async () => {
    const asAdmin = await rest(w.sandbox, w.admin.token, 'GET', `/bots/${w.bot.user.id}`);
    expect(asAdmin.status).toBe(200);
    expect(asAdmin.body).toMatchObject({
      user_id: w.bot.user.id,
      username: 'clawbot',
      owner_id: '',
      delete_at: 0,
    });
    for (const token of [w.bot.token, w.alice.token]) {
      const hidden = await rest(w.sandbox, token, 'GET', `/bots/${w.bot.user.id}`);
      expect(hidden.status).toBe(404);
      expect(errorId(hidden)).toBe('store.sql_bot.get.missing.app_error');
    }
    const person = await rest(w.sandbox, w.admin.token, 'GET', `/bots/${w.alice.user.id}`);
    expect(person.status).toBe(404);
  });
});
