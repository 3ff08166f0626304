import { createServer } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { executeCommand, type MmCommand } from '@claw-approvals/mattermost-sandbox';
import { expect } from 'vitest';
import { buildApp } from '../../src/app.js';
import { COMMAND_PATH } from '../../src/http/routes/mattermost-command.js';
import {
  createWorld,
  type Person,
  ready,
  type RunningBot,
  startBot,
  type World,
} from '../helpers/bot-world.js';
import { silentLogger } from '../helpers/log.js';

/** A port nobody listens on now: the command's URL must be known before the server starts. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export interface CommandWorld {
  w: World;
  b: RunningBot;
  app: FastifyInstance;
  /** The command as Mattermost registered it (its token included). */
  command: MmCommand;
  url: string;
  /** `/claw <text>` run by `who` in a channel (the allowlisted one by default), through Mattermost. */
  run(who: Person, text: string, channelId?: string): Promise<{ status: number; text: string }>;
  close(): Promise<void>;
}

/**
 * As a platform engineer sets it up: a system admin registers `/claw` (POST /api/v4/commands)
 * with the server's URL, and the server starts with the token Mattermost gave. `token: null`
 * starts it with no token configured.
 */
export async function commandWorld(
  opts: { token?: 'registered' | null | string; answersPerMinute?: number } = {},
): Promise<CommandWorld> {
  const w = await createWorld();
  const b = await startBot(w);
  await ready(b);
  const admin = w.sandbox.createUser({ username: 'sysadmin', roles: 'system_admin system_user' });
  w.sandbox.addTeamMember(w.team, admin.user.id);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}${COMMAND_PATH}`;
  const res = await fetch(`${w.sandbox.url}/api/v4/commands`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${admin.token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ team_id: w.team, trigger: 'claw', method: 'P', url, display_name: 'claw' }),
  });
  expect(res.status).toBe(201);
  const command = (await res.json()) as MmCommand;
  const token = opts.token === undefined || opts.token === 'registered' ? command.token : opts.token;
  const app = buildApp({
    db: w.d.db,
    keyRing: b.engine.keyRing,
    policies: b.engine.policies,
    log: silentLogger(),
    engine: b.engine,
    mattermostUrl: w.sandbox.url,
    slashCommand: {
      token,
      chat: b.rest,
      ...(opts.answersPerMinute ? { answersPerMinute: opts.answersPerMinute } : {}),
    },
  });
  await app.listen({ host: '127.0.0.1', port });
  return {
    w,
    b,
    app,
    command,
    url,
    async run(who, text, channelId = w.channel) {
      const r = await executeCommand(w.sandbox, w.tokens[who], {
        channel_id: channelId,
        command: `/claw ${text}`,
      });
      return { status: r.status, text: String((r.body as { text?: unknown } | undefined)?.text ?? '') };
    },
    async close() {
      await app.close();
      await b.stop();
      await w.close();
    },
  };
}

/** A request as Mattermost sends it, for the cases a real server never makes (replays, forgeries). */
export function commandForm(
  cw: CommandWorld,
  who: Person,
  text: string,
  fields: Record<string, string> = {},
): URLSearchParams {
  return new URLSearchParams({
    channel_id: cw.w.channel,
    channel_name: 'ops-requests',
    command: '/claw',
    response_url: `${cw.w.sandbox.url}/hooks/commands/x`,
    team_domain: 'ops',
    team_id: cw.w.team,
    text,
    token: cw.command.token,
    trigger_id: Buffer.from(`${Math.random()}:${cw.w.ids[who]}:${Date.now()}:sig`).toString('base64'),
    user_id: cw.w.ids[who],
    user_name: who,
    ...fields,
  });
}

export async function post(
  cw: CommandWorld,
  form: URLSearchParams,
  headers: Record<string, string> = { Authorization: `Token ${cw.command.token}` },
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(cw.url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json', ...headers },
    body: form.toString(),
  });
  return { status: res.status, body: (await res.json()) as unknown };
}
