import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = new URL('../../', import.meta.url).pathname;

/**
 * `claw-approvals serve` as a real process from the checkout's source (tsx), with only the
 * environment given (PORT 0, info logs unless overridden) and stdout and stderr piped.
 * `imports` are more `--import` modules loaded before the program (e.g. a module recorder).
 */
export function spawnServe(env: Record<string, string>, imports: string[] = []): ChildProcess {
  return spawn(
    process.execPath,
    ['--import', 'tsx', ...imports.flatMap((m) => ['--import', m]), path.join(ROOT, 'src/main.ts'), 'serve'],
    {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        PORT: '0',
        LOG_LEVEL: 'info',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
}
