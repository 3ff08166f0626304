import { startSandbox, type Sandbox, type SandboxOptions } from '../src/sandbox.js';
import type { MmChannel, MmTeam, MmUser } from '../src/types.js';

export interface World {
  sandbox: Sandbox;
  team: MmTeam;
  town: MmChannel;
  secret: MmChannel;
  alice: { user: MmUser; token: string };
  bob: { user: MmUser; token: string };
  bot: { user: MmUser; token: string };
  outsider: { user: MmUser; token: string };
  admin: { user: MmUser; token: string };
}

/**
 * A team with an open channel (alice, bob and the bot are members), a private channel (alice
 * only), a user in no channel and a system admin in no channel.
 */
export async function world(opts: SandboxOptions = {}): Promise<World> {
  // A clock that ticks on every read: no two timestamps collide, so orders are deterministic.
  let t = Date.UTC(2026, 0, 1);
  const sandbox = await startSandbox({ now: () => t++, ...opts });
  const team = sandbox.createTeam({ name: 'ops', display_name: 'Ops' });
  const town = sandbox.createChannel({ team_id: team.id, name: 'town-square', display_name: 'Town Square' });
  const secret = sandbox.createChannel({ team_id: team.id, name: 'secret', type: 'P' });
  const alice = sandbox.createUser({ username: 'alice' });
  const bob = sandbox.createUser({ username: 'bob' });
  const bot = sandbox.createUser({ username: 'clawbot', is_bot: true });
  const outsider = sandbox.createUser({ username: 'outsider' });
  const admin = sandbox.createUser({ username: 'root', roles: 'system_admin system_user' });
  for (const u of [alice, bob, bot]) sandbox.addChannelMember(town.id, u.user.id);
  sandbox.addChannelMember(secret.id, alice.user.id);
  return { sandbox, team, town, secret, alice, bob, bot, outsider, admin };
}
