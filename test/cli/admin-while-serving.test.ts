import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/agents/agent-keys.js';
import { loadConfig } from '../../src/config.js';
import { advertiseServer, lockDataDir, SERVER_FILE } from '../../src/db/data-dir-lock.js';
import type { Db } from '../../src/db/database.js';
import { claimToken } from '../../src/jobs/agent-job-ops.js';
import { createJob } from '../../src/jobs/create-job.js';
import { engineFor, engineParts, openRuntime, policyServiceFor } from '../../src/runtime.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { loadSigningKey } from '../../src/tokens/signing-key.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import { cli, type CliResult } from '../helpers/cli.js';
import { OPS, U } from '../helpers/engine.js';
import { copyPolicies, tempDir } from '../helpers/fs.js';
import { writePgliteDataDir } from '../helpers/db.js';
import { silentLogger } from '../helpers/log.js';

/**
 * CLI commands while `serve` holds the embedded database (PGlite, whatever dialect the run
 * is for: with DATABASE_URL nothing is held). The server runs in this process, so a command
 * that tried the database itself would be refused ERR_DB_LOCKED ("this process"): every
 * success below went through the admin API.
 */

const ADMIN = 'admin-token-for-the-cli-while-serving-tests-0123';
const WRONG = 'not-the-admin-token-but-just-as-long-0123456789';
const servers: RunningServer[] = [];
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
  for (const c of cleanups.splice(0)) await c();
});

type Env = Record<string, string>;

/** An embedded-database environment; `keyFrom` shares another's signing key (equal signatures and ids). */
async function pgliteEnv(keyFrom?: Env): Promise<Env> {
  const dataDir = await tempDir('claw-admin-');
  const keyFile = (env: Env | { DATA_DIR: string }) =>
    path.join(env.DATA_DIR!, 'keys', 'signing-key.jwk.json');
  if (keyFrom) {
    await fs.mkdir(path.dirname(keyFile({ DATA_DIR: dataDir })), { recursive: true, mode: 0o700 });
    await fs.copyFile(keyFile(keyFrom), keyFile({ DATA_DIR: dataDir }));
  } else {
    await loadSigningKey({ kind: 'generated', file: keyFile({ DATA_DIR: dataDir }) });
  }
  // As PGlite's initdb leaves it (copied: initdb takes seconds); the runtime migrates it.
  await writePgliteDataDir(path.join(dataDir, 'pglite'));
  return {
    DATA_DIR: dataDir,
    POLICIES_DIR: await copyPolicies(),
    ADMIN_TOKEN: ADMIN,
    HOST: '127.0.0.1',
    PORT: '0',
  };
}

/**
 * State as a running server would leave it: policies registered, the ops agent, two jobs in
 * the ops channel with their read-only steps minted.
 */
async function seed(env: Env) {
  const rt = await openRuntime(loadConfig(env), silentLogger());
  try {
    const policies = policyServiceFor(rt);
    await policies.reload();
    const engine = engineFor(engineParts(rt), policies);
    await createAgent(rt.database.db, { id: OPS.executor, description: 'ops', at: rt.clock() });
    for (const n of [1, 2]) {
      const job = await createJob(engine, {
        origin: {
          kind: 'mattermost',
          teamId: OPS.team,
          channelId: OPS.channel,
          rootPostId: `root${String(n).padStart(22, '0')}`,
        },
        requesterId: U.grace,
        runbook: {
          name: 'service-context',
          params: { service: 'payments-api', query: 'latency spikes', notify_channel: 'payments-oncall' },
        },
      });
      // One token left live in job 2, two in job 1: the engine revokes several in no fixed order.
      for (const step of n === 1 ? ['search-kb'] : ['search-kb', 'read-runbook']) {
        const { token } = await claimToken(engine, { jobId: job.jobId, step, agentId: OPS.executor });
        await redeemToken(engine, token);
      }
    }
    const tokens = await rt.database.db
      .selectFrom('tokens')
      .select(['jti', 'token_hash', 'job_id'])
      .orderBy('job_id')
      .orderBy('step_id')
      .execute();
    return {
      tokens,
      triage: policies.current()!.resolution.active.get('invoice-triage')!.hash,
    };
  } finally {
    await rt.close();
  }
}

async function serve(env: Env): Promise<RunningServer> {
  const server = await startServer(loadConfig(env), silentLogger());
  servers.push(server);
  return server;
}

/** Everything the commands change, as rows. */
async function outcome(db: Db) {
  return {
    agents: await db
      .selectFrom('agents')
      .select(['id', 'description', 'key_hint', 'revoked_at'])
      .orderBy('id')
      .execute(),
    tokens: await db
      .selectFrom('tokens')
      .select(['job_id', 'step_id', 'sub', 'revoked_at', 'revoke_reason', 'compact'])
      .orderBy('job_id')
      .orderBy('step_id')
      .execute()
      .then((rows) => rows.map(({ compact, ...t }) => ({ ...t, stored: compact !== null }))),
    jobs: await db.selectFrom('jobs').select(['id', 'status', 'end_reason']).orderBy('id').execute(),
    events: (
      await db
        .selectFrom('job_events')
        .select(['job_id', 'seq', 'event_type', 'payload'])
        .orderBy('job_id')
        .orderBy('seq')
        .execute()
    ).map((e) => ({ ...e, payload: JSON.parse(e.payload) as unknown })),
    pins: await db
      .selectFrom('policy_pins')
      .select(['id', 'policy_name', 'policy_hash_b64u', 'actor', 'reason', 'signer_did'])
      .orderBy('id')
      .execute(),
    killSwitch: await db.selectFrom('kill_switch').select(['paused', 'actor', 'reason']).execute(),
    registry: await db
      .selectFrom('wpc_registry')
      .select(['policy_name', 'policy_hash_b64u'])
      .orderBy('policy_hash_b64u')
      .execute(),
  };
}

/**
 * Values that differ from run to run become «n» by first appearance (keys, ids, hashes: which
 * of them are equal is part of what both paths must agree on); times become «time», since two
 * times falling in the same second is chance, not meaning (a loaded machine flipped it).
 */
class Canon {
  private readonly seen = new Map<string, string>();
  private static readonly VOLATILE = [
    /cak_[A-Za-z0-9_-]{43}/g,
    /cak_[A-Za-z0-9_-]{4}/g,
    /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g,
    /(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])/g,
    /(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g,
    /pb_[A-Za-z0-9_-]+/g,
  ];
  private static readonly TIMES = [/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z/g, /epoch:\d+/g];
  /** Token times in seconds since the epoch. */
  private static readonly EPOCH_FIELDS = new Set(['iat', 'exp', 'nbf']);

  text(s: string): string {
    const timeless = Canon.TIMES.reduce((t, re) => t.replace(re, '«time»'), s);
    return Canon.VOLATILE.reduce(
      (t, re) =>
        t.replace(re, (m) => {
          if (!this.seen.has(m)) this.seen.set(m, `«${this.seen.size}»`);
          return this.seen.get(m)!;
        }),
      timeless,
    );
  }

  value(v: unknown): unknown {
    if (typeof v === 'string') return this.text(v);
    if (v instanceof Date) return this.text(v.toISOString());
    if (Array.isArray(v)) return v.map((x) => this.value(x));
    if (v && typeof v === 'object')
      return Object.fromEntries(
        Object.entries(v).map(([k, x]) => [
          k,
          Canon.EPOCH_FIELDS.has(k) && typeof x === 'number' ? this.text(`epoch:${x}`) : this.value(x),
        ]),
      );
    return v;
  }
}

/** The same commands on one side; `$name` arguments are that side's values. */
function script(s: Awaited<ReturnType<typeof seed>>): string[][] {
  const [first, second] = s.tokens;
  return [
    ['agents', 'create', 'agent:second', '--description', 'the second agent'],
    ['agents', 'list'],
    ['policy', 'list', '--json'],
    ['policy', 'pin', 'invoice-triage', s.triage, '--reason', 'ttl broke on-call', '--actor', 'oncall-lead'],
    ['policy', 'list'],
    ['policy', 'unpin', 'invoice-triage', '--reason', 'fixed', '--actor', 'oncall-lead'],
    ['pause', 'incident', '7', '--actor', 'sec'],
    ['pause', '--status'],
    ['pause', 'again'],
    ['resume', '--actor', 'sec'],
    ['token', 'revoke', '--jti', first!.jti, '--reason', 'leaked in a log', '--actor', 'sec'],
    ['token', 'revoke', '--token-hash', second!.token_hash, '--reason', 'the job ended it already'],
    ['agents', 'revoke', OPS.executor, '--reason', 'laptop stolen', '--actor', 'oncall-lead'],
    ['agents', 'revoke', OPS.executor],
    ['agents', 'list'],
    // Refusals: the same code and message whichever path answers.
    ['agents', 'create', 'agent:second'],
    ['agents', 'create', 'bad id with spaces'],
    ['agents', 'revoke', 'agent:nobody'],
    ['policy', 'pin', 'mattermost-agent-prod', s.triage, '--reason', 'wrong name'],
    ['policy', 'pin', 'invoice-triage', 'not-a-hash', '--reason', 'x'],
    ['policy', 'unpin', 'never-pinned', '--reason', 'x'],
    ['policy', 'pin', 'invoice-triage', s.triage, '--reason', 'two\nlines'],
    ['token', 'revoke', '--jti', '00000000-0000-4000-8000-000000000000', '--reason', 'x'],
    ['token', 'revoke', '--jti', 'garbage', '--reason', 'x'],
    ['pause', 'abc\u202edcba'],
    ['pause', '--actor', '', 'x'],
  ];
}

describe('CLI commands while serve holds the embedded database', () => {
  it('print the same and change the same through the server as on the database itself', async () => {
    const direct = await pgliteEnv();
    const viaServer = await pgliteEnv(direct);
    const seedA = await seed(direct);
    const seedB = await seed(viaServer);

    const runA: CliResult[] = [];
    for (const args of script(seedA)) runA.push(await cli(args, direct));
    const rt = await openRuntime(loadConfig(direct), silentLogger());
    const outcomeA = await outcome(rt.database.db).finally(() => rt.close());

    const server = await serve(viaServer);
    const file = JSON.parse(await fs.readFile(path.join(viaServer.DATA_DIR!, SERVER_FILE), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(file).toEqual({ lock: expect.any(String), pid: process.pid, url: server.url });
    expect((await fs.stat(path.join(viaServer.DATA_DIR!, SERVER_FILE))).mode & 0o777).toBe(0o600);
    // A command with no admin route still finds the database held.
    expect((await cli(['migrate'], viaServer)).err).toContain('ERR_DB_LOCKED');

    const runB: CliResult[] = [];
    for (const args of script(seedB)) runB.push(await cli(args, viaServer));
    const outcomeB = await outcome(server.runtime.database.db);

    const a = new Canon();
    const b = new Canon();
    script(seedA).forEach((args, i) => {
      expect(b.value(runB[i]), args.join(' ')).toEqual(a.value(runA[i]));
    });
    expect(b.value(outcomeB)).toEqual(a.value(outcomeA));

    // What the script did, so equality is not equality of nothing.
    expect(runB.map((r) => r.code)).toEqual([...Array<number>(15).fill(0), ...Array<number>(11).fill(1)]);
    expect(outcomeB.pins.map((p) => [p.actor, p.reason])).toEqual([
      ['oncall-lead', 'ttl broke on-call'],
      ['oncall-lead', 'fixed'],
    ]);
    expect(outcomeB.killSwitch).toEqual([{ paused: false, actor: 'admin:cli:sec', reason: null }]);
    expect(JSON.parse(runB[10]!.out)).toMatchObject({ jobId: 1, alreadyRevoked: false, jobEnded: true });
    expect(JSON.parse(runB[11]!.out)).toMatchObject({ jobId: 1, alreadyRevoked: true, jobEnded: false });
    expect(JSON.parse(runB[12]!.out)).toMatchObject({ tokens_revoked: 1, jobs_ended: ['job:2'] });
    const paused = outcomeB.events.filter((e) => e.event_type === 'job_paused').map((e) => e.payload);
    expect(paused).toEqual([
      { admin: 'cli:sec', reason: 'incident 7' },
      { admin: 'cli:sec', reason: 'incident 7' },
    ]);
    expect(outcomeB.events.find((e) => e.event_type === 'token_revoked')?.payload).toMatchObject({
      by: 'admin:sec',
      reason: 'leaked in a log',
    });
    expect(runB[15]!.err).toBe('error ERR_AGENT_EXISTS: agent agent:second already exists');
    expect(runB.map((r) => r.out + r.err).join('\n')).not.toContain(ADMIN);
  }, 900_000);
});

describe('CLI commands while serve holds the embedded database: when they cannot go through', () => {
  /** Each command, after the name its error gives it. */
  const mutating = (triage: string): [string, string[]][] => [
    ['agents create', ['agents', 'create', 'agent:third']],
    ['agents revoke', ['agents', 'revoke', OPS.executor]],
    ['policy pin', ['policy', 'pin', 'invoice-triage', triage, '--reason', 'r']],
    ['policy unpin', ['policy', 'unpin', 'invoice-triage', '--reason', 'r']],
    ['token revoke', ['token', 'revoke', '--jti', '00000000-0000-4000-8000-000000000000', '--reason', 'r']],
    ['pause', ['pause', 'r']],
    ['resume', ['resume']],
  ];
  const reading: [string, string[]][] = [
    ['agents list', ['agents', 'list']],
    ['policy list', ['policy', 'list']],
    ['pause --status', ['pause', '--status']],
  ];

  it('without ADMIN_TOKEN: says the server holds the database and what to do, changes nothing', async () => {
    const env = await pgliteEnv();
    const s = await seed(env);
    const server = await serve(env);
    const before = await outcome(server.runtime.database.db);
    const { ADMIN_TOKEN: _, ...noToken } = env;
    for (const [name, args] of [...mutating(s.triage), ...reading]) {
      const res = await cli(args, noToken);
      expect(res.code, name).toBe(1);
      expect(res.out).toBe('');
      expect(res.err).toBe(
        `error ERR_DB_LOCKED: the embedded database in ${env.DATA_DIR} is held by the running server (process ${process.pid}, ${server.url}); \`${name}\` goes through its admin API, which needs ADMIN_TOKEN set to the server's value. Set it, or stop the server.`,
      );
    }
    expect(await outcome(server.runtime.database.db)).toEqual(before);
  }, 300_000);

  it('with a wrong ADMIN_TOKEN: refused, never printed, nothing changed', async () => {
    const env = await pgliteEnv();
    const s = await seed(env);
    const server = await serve(env);
    const before = await outcome(server.runtime.database.db);
    for (const [name, args] of mutating(s.triage)) {
      const res = await cli(args, { ...env, ADMIN_TOKEN: WRONG });
      expect(res.code, name).toBe(1);
      expect(res.err).toMatch(
        new RegExp(
          `^error ERR_UNAUTHENTICATED: the running server at ${server.url.replace(/[.]/g, '\\.')} refused this ADMIN_TOKEN`,
        ),
      );
      expect(res.out + res.err).not.toContain(WRONG);
      expect(res.out + res.err).not.toContain(ADMIN);
    }
    expect(await outcome(server.runtime.database.db)).toEqual(before);
  }, 300_000);

  it('server unreachable: a clear error naming the lock file, exit 1; once the lock is free, the database itself', async () => {
    const env = await pgliteEnv();
    await seed(env);
    // A holder that is alive (this process) and says it listens where nobody does.
    const port = await closedPort();
    const lock = await lockDataDir(env.DATA_DIR!);
    await advertiseServer(env.DATA_DIR!, { host: '127.0.0.1', port });
    for (const args of [
      ['agents', 'create', 'agent:third'],
      ['agents', 'list'],
      ['pause', 'x'],
    ]) {
      const res = await cli(args, env);
      expect(res.code, args.join(' ')).toBe(1);
      expect(res.err).toBe(
        `error ERR_DB_LOCKED: the embedded database is held by a running server (process ${process.pid}), but its admin API at http://127.0.0.1:${port} could not be reached (ECONNREFUSED); nothing was changed. If no server runs any more, remove ${path.join(env.DATA_DIR!, 'pglite.lock')}.`,
      );
    }
    await lock.release();
    // Releasing the lock withdrew the address with it.
    await expect(fs.stat(path.join(env.DATA_DIR!, SERVER_FILE))).rejects.toThrow();
    const res = await cli(['agents', 'create', 'agent:third'], env);
    expect(res.code, res.err).toBe(0);
    expect((await cli(['agents', 'list'], env)).out).toContain('agent:third');
  }, 300_000);

  it('an address file that is not the holder’s, or with the lock free, is never contacted', async () => {
    const env = await pgliteEnv();
    await seed(env);
    const decoy = await countingServer();
    const file = path.join(env.DATA_DIR!, SERVER_FILE);
    const plant = (lock: string) =>
      fs.writeFile(file, JSON.stringify({ lock, pid: process.pid, url: decoy.url }), { mode: 0o600 });

    // Free lock, an address left behind: the command opens the database and the file goes.
    await plant(`${process.pid} somewhere stale`);
    const free = await cli(['agents', 'create', 'agent:third'], env);
    expect(free.code, free.err).toBe(0);
    await expect(fs.stat(file)).rejects.toThrow();

    // Held by this process, but the address was written under another lock.
    const lock = await lockDataDir(env.DATA_DIR!);
    cleanups.push(() => lock.release());
    await plant(`${process.pid} elsewhere another-lock`);
    const held = await cli(['agents', 'list'], env);
    expect(held.code).toBe(1);
    expect(held.err).toContain('ERR_DB_LOCKED: the embedded database in');
    expect(held.err).toContain('is in use by this process');

    // With DATABASE_URL the CLI uses PostgreSQL itself, whatever DATA_DIR holds.
    await advertiseServer(env.DATA_DIR!, { host: '127.0.0.1', port: decoy.port });
    const pg = await cli(['agents', 'list'], { ...env, DATABASE_URL: 'postgres://claw@127.0.0.1:1/none' });
    expect(pg.code).toBe(1);
    expect(pg.err).toContain('ERR_DB_UNAVAILABLE');
    expect(decoy.requests()).toBe(0);
    // The same address file is used once it is this holder's (the control for the decoy).
    expect((await cli(['agents', 'list'], env)).err).toContain('ERR_INTERNAL');
    expect(decoy.requests()).toBe(1);
  }, 300_000);
});

describe('an address planted in DATA_DIR (a live PID, a lock and an address file that match)', () => {
  it('is refused unless it is a literal loopback address in files only this user could write: the token goes nowhere', async () => {
    const env = await pgliteEnv();
    await fs.chmod(env.DATA_DIR!, 0o700);
    const decoy = await countingServer();
    const lock = `1 ${os.hostname()} planted`;
    await fs.writeFile(path.join(env.DATA_DIR!, 'pglite.lock'), lock, { mode: 0o600 });
    const plant = (url: string, mode = 0o600) =>
      fs
        .writeFile(path.join(env.DATA_DIR!, SERVER_FILE), JSON.stringify({ lock, pid: 1, url }), { mode })
        .then(() => fs.chmod(path.join(env.DATA_DIR!, SERVER_FILE), mode));

    for (const [url, mode, why] of [
      [`http://localhost:${decoy.port}`, 0o600, 'not a loopback address'],
      [decoy.url, 0o644, 'has mode 0644, open to other users'],
    ] as const) {
      await plant(url, mode);
      const res = await cli(['agents', 'list'], env);
      expect(res.code).toBe(1);
      expect(res.err).toContain('ERR_DB_LOCKED');
      expect(res.err).toContain(why);
      expect(res.err).toContain('ADMIN_TOKEN was sent nowhere');
      expect(res.err).not.toContain(ADMIN);
    }
    expect(decoy.requests()).toBe(0);
    // The control: the same address, private, is used.
    await plant(decoy.url);
    expect((await cli(['agents', 'list'], env)).err).toContain('ERR_INTERNAL');
    expect(decoy.requests()).toBe(1);
  }, 300_000);
});

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** An HTTP server that counts requests and answers each with a bare 500. */
async function countingServer() {
  let count = 0;
  const s = http.createServer((_req, res) => {
    count += 1;
    res.writeHead(500).end();
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => s.close(resolve)));
  const { port } = s.address() as net.AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, requests: () => count };
}
