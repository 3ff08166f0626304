import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { openRuntime, type Runtime } from '../runtime.js';
import type { Output } from './output.js';

export type LogStream = 'stdout' | 'stderr';

/** What commands get: lazily validated config, loggers, output, and a managed runtime. */
export interface CliContext {
  config(): Config;
  /** For one-shot commands: logs go to stderr so stdout stays clean for results (e.g. --json). */
  log(): Logger;
  /** For the long-running server: logs are its output, on stdout. */
  serviceLog(): Logger;
  output: Output;
  /** Recorded as the actor of pins when --actor is not given. */
  defaultActor: string;
  withRuntime<T>(fn: (rt: Runtime) => Promise<T>): Promise<T>;
}

export function createCliContext(args: {
  loadConfig: () => Config;
  makeLogger: (c: Config, stream: LogStream) => Logger;
  output: Output;
  defaultActor: string;
}): CliContext {
  let config: Config | undefined;
  const loggers = new Map<LogStream, Logger>();
  const logger = (stream: LogStream) => {
    let log = loggers.get(stream);
    if (!log) {
      log = args.makeLogger(ctx.config(), stream);
      loggers.set(stream, log);
    }
    return log;
  };
  const ctx: CliContext = {
    config: () => {
      config ??= args.loadConfig();
      return config;
    },
    log: () => logger('stderr'),
    serviceLog: () => logger('stdout'),
    output: args.output,
    defaultActor: args.defaultActor,
    async withRuntime(fn) {
      const rt = await openRuntime(ctx.config(), ctx.log());
      try {
        return await fn(rt);
      } finally {
        await rt.close();
      }
    },
  };
  return ctx;
}
