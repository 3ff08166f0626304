import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { spawnServe } from '../helpers/serve-child.js';
import { cli, stateEnv } from '../helpers/cli.js';
import { dialectName } from '../helpers/db.js';
import { copyPolicies, tempDir } from '../helpers/fs.js';

/**
 * `serve` loads what serving needs and nothing else: not the other commands, not the MCP SDK
 * (until the first request to /mcp), not the other database's driver. Checked in a real child
 * process whose module loads are recorded (record-loads.mjs), not by timing anything.
 */

const RECORDER = new URL('./record-loads.mjs', import.meta.url).pathname;
// A real child process from source (tsx) on a machine other runs share: it waits on readiness, not time.
const ADMIN = 'admin-token-for-the-module-graph-tests-0123456789';
const running: ChildProcess[] = [];
afterEach(() => {
  for (const p of running.splice(0)) p.kill('SIGKILL');
});

async function serve(env: Record<string, string>) {
  const proc = spawnServe(env, [RECORDER]);
  running.push(proc);
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    proc.stderr!.on('data', (d) => (output += String(d)));
    proc.stdout!.on('data', (d) => {
      output += String(d);
      const m = /"url":"([^"]+)"[^\n]*"msg":"listening"/.exec(output);
      if (m) resolve(m[1]!);
    });
    proc.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${output}`)));
  });
  return { proc, url };
}

const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'test', version: '1' } },
};

async function mcpInitialize(url: string, key: string): Promise<string | undefined> {
  const res = await fetch(`${url}/mcp`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${key}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify(INITIALIZE),
  });
  expect(res.status).toBe(200);
  const data = (await res.text())
    .split('\n')
    .filter((l) => l.startsWith('data: '))
    .map((l) => JSON.parse(l.slice(6)) as { result?: { serverInfo?: { name: string } } });
  return data[0]?.result?.serverInfo?.name;
}

describe(`serve's module graph (${dialectName})`, () => {
  it('holds neither the MCP SDK, nor other commands, nor the other driver; /mcp loads the SDK once, for concurrent first requests', async () => {
    const loads = path.join(await tempDir('claw-loads-'), 'loads.txt');
    const { env } = await stateEnv({ POLICIES_DIR: await copyPolicies(), ADMIN_TOKEN: ADMIN });
    const { url } = await serve({ ...env, CLAW_RECORD_LOADS: loads });
    expect((await fetch(`${url}/healthz`)).status).toBe(200);

    const loaded = async () => (await fs.readFile(loads, 'utf8')).split('\n').filter(Boolean);
    const atStart = await loaded();
    // The recorder sees the program itself: what follows is not vacuous.
    expect(atStart.some((u) => u.endsWith('/src/server.ts'))).toBe(true);
    expect(atStart.some((u) => u.endsWith('/src/cli/serve-command.ts'))).toBe(true);
    expect(atStart.some((u) => u.includes('/node_modules/fastify/'))).toBe(true);
    const unwanted = [
      '/node_modules/@modelcontextprotocol/sdk/',
      '/src/mcp/mcp-server.ts',
      '/src/cli/mcp-command.ts',
      '/src/cli/doctor-command.ts',
      '/src/cli/bundle-commands.ts',
      '/src/cli/policy-commands.ts',
      '/src/cli/agent-commands.ts',
      '/src/cli/token-commands.ts',
      '/src/cli/keys-commands.ts',
      '/src/cli/pause-commands.ts',
      // API-only (no MATTERMOST_URL): the bot and its WebSocket client stay unloaded.
      '/src/bot/bot.ts',
      '/node_modules/ws/',
      env.DATABASE_URL ? '/node_modules/@electric-sql/pglite/' : '/node_modules/pg/',
    ];
    expect(atStart.filter((u) => unwanted.some((part) => u.includes(part)))).toEqual([]);
    expect(
      atStart.some((u) =>
        u.includes(env.DATABASE_URL ? '/node_modules/pg/' : '/node_modules/@electric-sql/pglite/'),
      ),
    ).toBe(true);

    const created = await cli(['agents', 'create', 'agent:module-graph'], env);
    expect(created.code, created.err).toBe(0);
    const key = (JSON.parse(created.out) as { key: string }).key;
    // Two first requests at once: both wait for the one import and are answered.
    expect(await Promise.all([mcpInitialize(url, key), mcpInitialize(url, key)])).toEqual([
      'claw-approvals',
      'claw-approvals',
    ]);
    const afterMcp = await loaded();
    expect(afterMcp.some((u) => u.includes('/node_modules/@modelcontextprotocol/sdk/'))).toBe(true);
  }, 120_000);
});
