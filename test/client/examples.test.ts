import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/bot-world.js';
import { dialectName } from '../helpers/db.js';
import { type ClientWorld, clientWorld, GATED, standInGateway } from './client-world.js';

// The README's two loops, run as a reader would run them, against the real API and the sandbox:
// people approve in Mattermost while the script waits.

const ROOT = path.resolve(import.meta.dirname, '../..');
const PYTHON = path.join(ROOT, 'examples/python/claw_loop.py');
const TYPESCRIPT = path.join(ROOT, 'examples/typescript/loop.ts');

let cw: ClientWorld;
let gateway: Awaited<ReturnType<typeof standInGateway>>;
const children: ChildProcess[] = [];
interface Run {
  /** Resolves with the job id once the script says it waits for approval. */
  waiting: Promise<number>;
  /** Resolves once the script has printed `text`. */
  printed(text: string): Promise<void>;
  done: Promise<{ code: number | null; out: string; err: string }>;
}

function run(command: string, args: string[]): Run {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      CLAW_URL: cw.url,
      CLAW_AGENT_KEY: cw.agentKey,
      CLAW_CHANNEL_ID: cw.w.channel,
      CLAW_REQUESTER_ID: cw.w.ids.grace,
      CLAW_GATEWAY_URL: gateway.url,
    },
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const done = new Promise<{ code: number | null; out: string; err: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
  const waiting = new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('utf8');
      const m = /^job:(\d+): waiting for approval in Mattermost$/m.exec(out);
      if (m) resolve(Number(m[1]));
    });
    done.then((r) => reject(new Error(`${command} exited ${r.code} before waiting: ${r.err}`)), reject);
  });
  const printed = async (text: string) => {
    await eventually(() => out.includes(text) || child.exitCode !== null, `the script to print "${text}"`);
    if (!out.includes(text)) throw new Error(`${command} exited without printing "${text}": ${err}`);
  };
  return { waiting, printed, done };
}

/** The script waits; the requester confirms and two approvers approve in the thread. */
async function approvedThroughChat(r: Run) {
  const jobId = await r.waiting;
  await cw.approveInChat(jobId);
  const result = await r.done;
  expect(result.err).toBe('');
  expect(result.code).toBe(0);
  return { jobId, out: result.out };
}

it('python3 is installed (the Python example needs nothing else)', () => {
  const version = spawnSync('python3', ['--version'], { encoding: 'utf8' });
  expect(version.error, 'python3 must be on PATH for the Python example').toBeUndefined();
  expect(version.stdout).toMatch(/^Python 3\.(\d+)/);
  expect(Number(/^Python 3\.(\d+)/.exec(version.stdout)![1])).toBeGreaterThanOrEqual(8);
});

describe(`the README's loops complete an approval through the sandbox (${dialectName})`, () => {
  beforeEach(async () => {
    cw = await clientWorld();
    gateway = await standInGateway();
  });
  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill();
    await gateway.close();
    await cw.close();
  });

  it('examples/python/claw_loop.py: submit, wait, claim, redeem, report → completed', async () => {
    const { jobId, out } = await approvedThroughChat(run('python3', [PYTHON]));
    expect(out).toContain(`${GATED}: succeeded, job completed`);
    const job = await cw.client.getJob(jobId);
    expect(job).toMatchObject({ status: 'completed', bundle_id: expect.stringMatching(/^pb_/) });
    expect(job.steps.every((s) => s.status === 'succeeded')).toBe(true);
    expect(gateway.calls).toBe(4);
    // The agent key never reaches the gateway, and the script prints no token.
    expect(gateway.authorizations).toEqual([undefined, undefined, undefined, undefined]);
    expect(out).not.toContain(cw.agentKey);
    expect(out).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
  });

  it('examples/python/claw_loop.py stops, non-zero, when the step is denied', async () => {
    const r = run('python3', [PYTHON]);
    const jobId = await r.waiting;
    const root = await cw.planPost(jobId);
    // The auto steps have run; the script waits on the gated one when it is denied.
    await r.printed('fetch-status: succeeded, job open');
    cw.w.post('chioma', `DENY job:${jobId} step:${GATED} not now`, root.id);
    const result = await r.done;
    expect(result.code).toBe(1);
    expect(result.err).toContain(`${GATED}: denied (step ${GATED} denied by ${cw.w.ids.chioma})`);
    expect((await cw.client.getJob(jobId)).status).toBe('denied');
  });

  it('examples/typescript/loop.ts type-checks and completes the same loop', async () => {
    const tsc = spawnSync(
      process.execPath,
      [
        path.join(ROOT, 'node_modules/typescript/bin/tsc'),
        '-p',
        'examples/typescript/tsconfig.json',
        '--noEmit',
      ],
      { cwd: ROOT, encoding: 'utf8' },
    );
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.status).toBe(0);
    const { jobId, out } = await approvedThroughChat(
      run(process.execPath, [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), TYPESCRIPT]),
    );
    expect(out).toContain(`${GATED}: succeeded, job completed`);
    expect((await cw.client.getJob(jobId)).status).toBe('completed');
    expect(gateway.authorizations).toEqual([undefined, undefined, undefined, undefined]);
    expect(out).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./);
  });
});
