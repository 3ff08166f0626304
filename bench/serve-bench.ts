import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { OPS_WORKSPACE } from '@claw-approvals/mattermost-sandbox';
import { percentiles } from './bot-bench.js';
import { progress } from './progress.js';
import { createScratchDatabase } from './scratch-database.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = path.join(ROOT, 'dist/src/main.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (kb: number) => Number((kb / 1024).toFixed(1));

/** `npm run build`'s script, only when the build is missing or stale. */
export function ensureBuild(): { ok: boolean; note: string } {
  const run = spawnSync(process.execPath, [path.join(ROOT, 'scripts/build.mjs'), '--if-stale'], {
    cwd: ROOT,
    stdio: ['ignore', 2, 2],
  });
  if (run.status === 0) return { ok: true, note: 'dist/ current (built if it was stale)' };
  return {
    ok: false,
    note: `the build failed (exit ${run.status}); measured the existing dist/src/main.js, which may be stale`,
  };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** VmRSS and VmHWM (peak) of a process, in MiB, from /proc. */
export async function memoryOf(pid: number): Promise<{ vm_rss_mb: number; vm_hwm_mb: number }> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { vm_rss_mb: mib(kb('VmRSS')), vm_hwm_mb: mib(kb('VmHWM')) };
}

function get(port: number, urlPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

interface Started {
  child: ChildProcess;
  port: number;
  ms: number;
}

/** Spawns `args` and polls GET /healthz every 5 ms: the time from spawn to the first 200. */
async function startAndWait(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<Started> {
  const port = await freePort();
  let stderr = '';
  const t0 = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/tmp',
      HOST: '127.0.0.1',
      PORT: String(port),
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-2_000);
  });
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`the process exited before /healthz answered: ${stderr.trim()}`);
    if (performance.now() - t0 > timeoutMs) {
      child.kill('SIGKILL');
      throw new Error(`/healthz did not answer within ${timeoutMs} ms`);
    }
    const status = await get(port, '/healthz').catch(() => 0);
    if (status === 200) return { child, port, ms: performance.now() - t0 };
    await sleep(5);
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

function request(
  agent: http.Agent,
  port: number,
  urlPath: string,
  token: string,
  body: unknown,
): Promise<{ status: number; body: string; retryAfter: number }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: '127.0.0.1',
        port,
        path: urlPath,
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            retryAfter: Number(res.headers['retry-after'] ?? 1),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** The steps of the service-context runbook, submitted as explicit steps by any `agent:ops-*`. */
const STEPS = [
  {
    id: 'search-kb',
    tool: 'search',
    args: { query: 'bench service:payments-api', index: 'ops-kb', limit: 20 },
    summary: 'Search the ops knowledge base',
  },
  {
    id: 'read-runbook',
    tool: 'read',
    args: { path: 'runbooks/payments-api.md' },
    summary: 'Read the runbook',
  },
  {
    id: 'fetch-status',
    tool: 'http_get',
    args: { url: 'https://status.internal.example.com/api/v1/services/payments-api' },
    summary: 'GET the status page',
  },
  {
    id: 'post-summary',
    tool: 'send_message',
    args: { channel: 'payments-oncall', text: 'Context summary for payments-api: bench' },
    summary: 'Post the summary (two-person approval)',
  },
];

/**
 * `count` open jobs through the server's own API: agents registered with POST /v1/admin/agents,
 * jobs submitted with POST /v1/jobs. Each agent stays under its per-minute budget (600 per route);
 * a 429 is waited out and retried.
 */
async function openJobs(port: number, adminToken: string, count: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  try {
    const agents: string[] = [];
    const perAgent = 500;
    for (let i = 0; i < Math.ceil(count / perAgent); i++) {
      const r = await request(agent, port, '/v1/admin/agents', adminToken, {
        id: `agent:ops-bench-${randomBytes(4).toString('hex')}`,
        description: 'npm run bench',
      });
      if (r.status !== 201) throw new Error(`POST /v1/admin/agents answered ${r.status}: ${r.body}`);
      agents.push((JSON.parse(r.body) as { key: string }).key);
    }
    let next = 0;
    let retried = 0;
    let done = 0;
    const t0 = performance.now();
    const report = setInterval(() => progress(`${done}/${count} open jobs`), 15_000);
    try {
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < count) {
            const i = next++;
            for (;;) {
              const r = await request(agent, port, '/v1/jobs', agents[Math.floor(i / perAgent)]!, {
                channel_id: OPS_WORKSPACE.channel,
                requester_id: OPS_WORKSPACE.people.grace,
                steps: STEPS,
              });
              if (r.status === 201) {
                done++;
                break;
              }
              if (r.status !== 429) throw new Error(`POST /v1/jobs answered ${r.status}: ${r.body}`);
              retried++;
              await sleep(r.retryAfter * 1000);
            }
          }
        }),
      );
    } finally {
      clearInterval(report);
    }
    const seconds = (performance.now() - t0) / 1000;
    return {
      jobs: count,
      create_jobs_per_sec: Number((count / seconds).toFixed(1)),
      rate_limited_retries: retried,
    };
  } finally {
    agent.destroy();
  }
}

/** Our server: first start, `starts` warm starts, RSS idle, then RSS with `openJobCount` open jobs. */
async function benchOneServe(
  env: Record<string, string>,
  opts: { starts: number; idleMs: number; openJobCount: number },
) {
  const args = [MAIN, 'serve'];
  progress(`serve on ${env.DATABASE_URL ? 'postgres' : 'pglite'}: first start`);
  const first = await startAndWait(args, env);
  const afterFirstStart = await memoryOf(first.child.pid!);
  await sleep(opts.idleMs);
  const firstIdle = await memoryOf(first.child.pid!);
  await stop(first.child);

  const warm: number[] = [];
  let last: Started | null = null;
  try {
    for (let i = 0; i < opts.starts; i++) {
      last = await startAndWait(args, env);
      warm.push(last.ms);
      if (i < opts.starts - 1) await stop(last.child);
    }
    progress(`serve: ${opts.starts} warm starts done; idle, then ${opts.openJobCount} open jobs`);
    await sleep(opts.idleMs);
    const idle = await memoryOf(last!.child.pid!);
    let withJobs: Record<string, unknown> | null = null;
    if (opts.openJobCount > 0) {
      const created = await openJobs(last!.port, env.ADMIN_TOKEN!, opts.openJobCount);
      await sleep(Math.min(opts.idleMs, 2_000));
      withJobs = { ...created, ...(await memoryOf(last!.child.pid!)) };
    }
    return {
      first_start: {
        to_healthz_ms: Math.round(first.ms),
        right_after: afterFirstStart,
        after_idle: firstIdle,
      },
      warm_start_to_healthz: { ...percentiles(warm), min_ms: Number(Math.min(...warm).toFixed(2)) },
      rss_idle: { ...idle, after_idle_ms: opts.idleMs },
      rss_with_open_jobs: withJobs,
    };
  } finally {
    if (last) await stop(last.child);
  }
}

/** A bare `node -e` HTTP server, started and measured the same way: the floor for start-up and memory. */
async function benchBareNode(starts: number, idleMs: number) {
  const script =
    "require('node:http').createServer((q,s)=>s.end('{\"ok\":true}')).listen(+process.env.PORT,process.env.HOST)";
  const times: number[] = [];
  let mem = { vm_rss_mb: 0, vm_hwm_mb: 0 };
  for (let i = 0; i < starts; i++) {
    const s = await startAndWait(['-e', script], {});
    times.push(s.ms);
    if (i === starts - 1) {
      await sleep(Math.min(idleMs, 1_000));
      mem = await memoryOf(s.child.pid!);
    }
    await stop(s.child);
  }
  return {
    warm_start_to_healthz: { ...percentiles(times), min_ms: Number(Math.min(...times).toFixed(2)) },
    rss_idle: mem,
  };
}

/**
 * The real server process (`node dist/src/main.js serve`, API only: no MATTERMOST_URL) on PGlite
 * in a temp DATA_DIR, and on PostgreSQL in a scratch database when `databaseUrl` is given.
 */
export async function benchServe(opts: {
  databaseUrl: string | null;
  starts: number;
  idleMs: number;
  openJobCount: number;
}) {
  const build = ensureBuild();
  await fs.access(MAIN);
  const adminToken = randomBytes(32).toString('base64url');
  const base = { LOG_LEVEL: 'warn', POLICIES_DIR: path.join(ROOT, 'policies'), ADMIN_TOKEN: adminToken };
  const out: Record<string, unknown> = {
    what:
      'node dist/src/main.js serve as its own process, API only (no MATTERMOST_URL). Start: spawn to the first 200 ' +
      'from GET /healthz (polled every 5 ms); "warm": the data dir or database already migrated and the key made ' +
      'by a first start. Memory: VmRSS and VmHWM (peak) from /proc/<pid>/status, in MiB, after the idle time; ' +
      'open jobs: submitted through POST /v1/jobs by agents registered with POST /v1/admin/agents, left open',
    build: build.note,
  };
  progress('serve: bare node -e server');
  out.raw_bare_node_http = await benchBareNode(opts.starts, opts.idleMs);
  if (opts.databaseUrl) {
    const scratch = await createScratchDatabase(opts.databaseUrl);
    const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'claw-bench-serve-'));
    try {
      out.postgres = await benchOneServe({ ...base, DATA_DIR: dataDir, DATABASE_URL: scratch.url }, opts);
    } finally {
      await scratch.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    }
  }
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'claw-bench-serve-'));
  try {
    out.pglite = await benchOneServe({ ...base, DATA_DIR: dataDir }, opts);
  } finally {
    await fs.rm(dataDir, { recursive: true, force: true });
  }
  return out;
}
