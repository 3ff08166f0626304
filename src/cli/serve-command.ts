import { type Config, configSecrets } from '../config.js';
import { fatalLine } from '../logger.js';
import { startServer } from '../server.js';
import type { CliContext } from './context.js';

/** A failure already reported to the operator: `runCli` exits 1 without printing it again. */
export class StartupFailed extends Error {
  constructor(cause: unknown) {
    super('claw-approvals could not start', { cause });
    this.name = 'StartupFailed';
  }
}

/**
 * `claw-approvals serve`. A failure before the server listens (configuration, key, database,
 * lock, port) is written as one JSON line on stderr (`fatalLine`), so a supervisor or log
 * shipper reads it like the server's other lines, and the process exits 1.
 */
export async function serve(ctx: CliContext): Promise<never> {
  let config: Config | undefined;
  try {
    config = ctx.config();
    await startServer(config, ctx.serviceLog(), { handleSignals: true });
  } catch (err) {
    ctx.output.err(fatalLine(err, { secrets: config ? configSecrets(config) : [] }));
    throw new StartupFailed(err);
  }
  // The server keeps the event loop alive; close-with-grace ends the process on a signal.
  return new Promise<never>(() => {});
}
