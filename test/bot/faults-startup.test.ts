import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { answerToRoot } from '../helpers/bot-faults.js';
import { createWorld, eventually, RUN, type World } from '../helpers/bot-world.js';
import { stateEnv } from '../helpers/cli.js';
import { dialectName, type TestDb } from '../helpers/db.js';
import { captureLogger } from '../helpers/log.js';

const ADMIN = 'admin-token-for-tests-0123456789';
let w: World;
let server: RunningServer | undefined;
let serverDb: TestDb | null = null;

beforeEach(async () => {
  w = await createWorld();
});
afterEach(async () => {
  await server?.stop();
  await serverDb?.close();
  await w.close();
  server = undefined;
  serverDb = null;
});

/** `claw-approvals serve` in-process, as `main.ts` runs it, against the world's sandbox. */
async function serve(world: World, token: string) {
  const s = await stateEnv({
    POLICIES_DIR: world.policiesDir,
    MATTERMOST_URL: world.sandbox.url,
    MATTERMOST_TOKEN: token,
    ADMIN_TOKEN: ADMIN,
    HOST: '127.0.0.1',
    PORT: '0',
    PUBLIC_URL: 'https://claw.example.test',
  });
  serverDb = s.db;
  const logs = captureLogger('info');
  server = await startServer(loadConfig(s.env), logs.log, {
    bot: {
      minBackoffMs: 20,
      maxBackoffMs: 300,
      pingIntervalMs: 1_000,
      outboxPollMs: 100,
      firstCatchUpMs: 60_000,
    },
  });
  const running = server;
  const readyz = async () => {
    // The reasons in detail are for ADMIN_TOKEN holders; anyone else reads "Mattermost not connected".
    const res = await fetch(`${running.url}/readyz`, { headers: { authorization: `Bearer ${ADMIN}` } });
    const body = (await res.json()) as {
      ok: boolean;
      reasons: string[];
      checks: Record<string, { ok: boolean; reason?: string }>;
    };
    return { status: res.status, body };
  };
  const logLines = () => logs.lines().map((l) => JSON.parse(l) as { level: number; msg: string });
  return { server: running, readyz, logs, logLines };
}

describe(`Mattermost unreachable at start (${dialectName})`, () => {
  it('starts anyway, answers /readyz 503 saying why, and serves once Mattermost is back', async () => {
    await w.sandbox.close();
    const { server: s, readyz, logLines } = await serve(w, w.botToken);
    const bot = s.bot!;

    const down = await eventually(async () => {
      const r = await readyz();
      return r.status === 503 && /unreachable/.test(r.body.checks.mattermost?.reason ?? '') ? r : undefined;
    }, '/readyz 503 naming the unreachable server');
    expect(down.body.ok).toBe(false);
    expect(down.body.checks.mattermost).toMatchObject({ ok: false });
    expect(down.body.checks.database).toMatchObject({ ok: true });
    expect(down.body.reasons).toEqual([expect.stringMatching(/^mattermost: Mattermost is unreachable/)]);
    expect(bot.readiness()).toMatchObject({ ok: false, reason: expect.stringMatching(/unreachable/) });
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    // It keeps trying, without giving up or crashing.
    await eventually(
      () => logLines().filter((l) => l.msg.startsWith('Mattermost is unreachable')).length >= 2,
      'several connection attempts',
    );

    await w.sandbox.listen();
    const up = await eventually(async () => {
      const r = await readyz();
      return r.status === 200 ? r : undefined;
    }, '/readyz 200 once Mattermost is back');
    expect(up.body).toMatchObject({ ok: true, reasons: [], checks: { mattermost: { ok: true } } });
    expect(bot.readiness()).toEqual({ ok: true });
    expect(w.sandbox.connectionCount(w.botUserId)).toBe(1);

    // A request made now is answered, and recorded in the server's own database.
    const root = w.post('bruno', RUN);
    const plan = await answerToRoot(w, root.id);
    expect(plan.message).toContain('Plan for job:');
    const db = s.runtime.database.db;
    const jobs = await db.selectFrom('jobs').select(['id', 'root_post_id', 'requester_id']).execute();
    expect(jobs).toEqual([{ id: expect.any(Number), root_post_id: root.id, requester_id: w.ids.bruno }]);
    expect(plan.props.claw_job_id).toBe(`job:${jobs[0]!.id}`);
    expect(await db.selectFrom('chat_posts').select(['post_id', 'action']).execute()).toEqual([
      { post_id: root.id, action: 'run' },
    ]);
    await eventually(async () => {
      const rows = await db
        .selectFrom('outbox')
        .select(['delivered_post_id'])
        .where('kind', '=', 'post')
        .execute();
      return rows.length > 0 && rows.every((r) => r.delivered_post_id !== null);
    }, 'the plan marked delivered');
  });
});

describe(`a bot token Mattermost does not know (${dialectName})`, () => {
  it('reports the token problem (401) on /readyz, keeps running, and never logs the token', async () => {
    const token = 'unknowntoken4sandboxbotxyz';
    const { server: s, readyz, logs, logLines } = await serve(w, token);
    const bot = s.bot!;

    const refused = await eventually(async () => {
      const r = await readyz();
      return r.status === 503 && /401/.test(r.body.checks.mattermost?.reason ?? '') ? r : undefined;
    }, '/readyz 503 naming the token problem');
    expect(refused.body.checks.mattermost!.reason).toMatch(/MATTERMOST_TOKEN \(401\).*bot token/);
    expect(bot.readiness()).toMatchObject({ ok: false, reason: expect.stringMatching(/token/) });
    await eventually(
      () => w.sandbox.requestCount({ pathPrefix: '/api/v4/users/me', status: 401 }) >= 2,
      'the bot retrying',
    );
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    // Nothing is started on a token that does not work: no WebSocket is opened.
    expect(w.sandbox.connectionCount(w.botUserId)).toBe(0);
    expect(logLines().some((l) => l.level >= 50 && /MATTERMOST_TOKEN \(401\)/.test(l.msg))).toBe(true);
    expect(logs.text()).not.toContain(token);
  });
});
