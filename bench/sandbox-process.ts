import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { OpsPerson } from '@claw-approvals/mattermost-sandbox';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** What `bench/sandbox-child.ts` prints first: the seeded ops workspace and where to reach it. */
export interface SandboxWorkspace {
  url: string;
  botUserId: string;
  botToken: string;
  botUsername: string;
  ids: Record<OpsPerson, string>;
  tokens: Record<OpsPerson, string>;
  channel: string;
  team: string;
}

export interface SandboxProcess {
  workspace: SandboxWorkspace;
  pid: number;
  /** Sends one command line and resolves with the child's one-line answer. */
  command<T>(cmd: Record<string, unknown>): Promise<T>;
  close(): Promise<void>;
}

/** Starts the sandbox in a child process and waits for its workspace line. */
export async function startSandboxProcess(timeoutMs = 30_000): Promise<SandboxProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'sandbox-child.ts')], {
    cwd: path.join(HERE, '..'),
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: child.stdout });
  const pending: ((line: string) => void)[] = [];
  const early: string[] = [];
  lines.on('line', (line) => {
    const next = pending.shift();
    if (next) next(line);
    else early.push(line);
  });
  const nextLine = () =>
    new Promise<string>((resolve, reject) => {
      const queued = early.shift();
      if (queued !== undefined) return resolve(queued);
      const timer = setTimeout(() => reject(new Error('the sandbox process did not answer')), timeoutMs);
      const onExit = (code: number | null) => {
        clearTimeout(timer);
        reject(new Error(`the sandbox process exited (${code})`));
      };
      child.once('exit', onExit);
      pending.push((line) => {
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve(line);
      });
    });
  const workspace = JSON.parse(await nextLine()) as SandboxWorkspace;
  return {
    workspace,
    pid: child.pid!,
    async command<T>(cmd: Record<string, unknown>) {
      child.stdin.write(`${JSON.stringify(cmd)}\n`);
      const answer = JSON.parse(await nextLine()) as T & { error?: string };
      if (answer.error) throw new Error(`sandbox process: ${answer.error}`);
      return answer;
    },
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
