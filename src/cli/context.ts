import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { openRuntime, type Runtime } from '../runtime.js';
import type { Output } from './output.js';

/** What commands get: lazily validated config, a logger, output, and a managed runtime. */
export interface CliContext {
  config(): Config;
  log(): Logger;
  output: Output;
  /** Recorded as the actor of pins when --actor is not given. */
  defaultActor: string;
  withRuntime<T>(fn: (rt: Runtime) => Promise<T>): Promise<T>;
}

export function createCliContext(args: {
  loadConfig: () => Config;
  makeLogger: (c: Config) => Logger;
  output: Output;
  defaultActor: string;
}): CliContext {
  let config: Config | undefined;
  let log: Logger | undefined;
  const ctx: CliContext = {
    config: () => {
      config ??= args.loadConfig();
      return config;
    },
    log: () => {
      log ??= args.makeLogger(ctx.config());
      return log;
    },
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
