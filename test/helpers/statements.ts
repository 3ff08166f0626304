import type { KyselyPlugin } from 'kysely';
import type { Db } from '../../src/db/database.js';
import type { EngineContext } from '../../src/jobs/context.js';

/**
 * Counts the statements sent to the database: a query counts when it was both built (so not a
 * commit-hook marker, which is never sent) and executed (so not a builder nested in a CTE).
 */
export function counted(ctx: EngineContext): { ctx: EngineContext; statements: () => number; reset(): void } {
  const built = new Set<unknown>();
  let n = 0;
  const plugin: KyselyPlugin = {
    transformQuery(args) {
      built.add(args.queryId);
      return args.node;
    },
    async transformResult(args) {
      if (built.delete(args.queryId)) n += 1;
      return args.result;
    },
  };
  return {
    ctx: { ...ctx, db: ctx.db.withPlugin(plugin) as Db },
    statements: () => n,
    reset: () => {
      n = 0;
    },
  };
}
