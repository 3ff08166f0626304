/** The command line of `npm run bench`, parsed strictly: an unknown or malformed option is an error. */

export const SECTIONS = ['crypto', 'http', 'tokens', 'introspect_http', 'bot', 'serve'] as const;
export type Section = (typeof SECTIONS)[number];

export interface BenchArgs {
  budgetMs: number;
  samples: number;
  botRounds: number;
  chatter: number;
  levels: number[];
  only: Set<Section>;
  check: boolean;
  /** Evaluate the goals of a saved bench document instead of running. */
  checkFile: string | null;
  starts: number;
  idleMs: number;
  openJobs: number;
}

export const USAGE = `npm run bench -- [options]
  --only=<section,...>   ${SECTIONS.join(', ')} (default: all)
  --check                exit 1 when a goal of issue 13's table is missed (2 when none was measured)
  --check-file=<path>    evaluate the goals of a saved bench JSON, without running
  --budget-ms=N          time per throughput figure (1500)
  --samples=N            jobs for the engine's deciding approval (100)
  --bot-rounds=N         rounds of the bot path per level (3; 1 job: N×40), after one not kept
  --levels=1,10,50       jobs deciding at once on the bot path
  --chatter=N            posts not for the bot (2000)
  --starts=N             warm starts of the server (5)
  --idle-ms=N            idle time before sampling RSS (5000)
  --open-jobs=N          open jobs before sampling RSS (10000; 0 skips)
PostgreSQL: BENCH_DATABASE_URL or DATABASE_URL (figures go to scratch databases on its server);
PGlite always runs.`;

export class ArgsError extends Error {}

function positiveInt(name: string, text: string, min = 1): number {
  if (!/^\d+$/.test(text)) throw new ArgsError(`--${name} takes a whole number, not "${text}"`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) throw new ArgsError(`--${name} must be at least ${min}`);
  return n;
}

export function parseArgs(argv: string[]): BenchArgs {
  const args: BenchArgs = {
    budgetMs: 1500,
    samples: 100,
    botRounds: 3,
    chatter: 2000,
    levels: [1, 10, 50],
    only: new Set(SECTIONS),
    check: false,
    checkFile: null,
    starts: 5,
    idleMs: 5000,
    openJobs: 10_000,
  };
  for (const arg of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new ArgsError(`unknown argument "${arg}"`);
    const [, name, value] = m as unknown as [string, string, string | undefined];
    const need = () => {
      if (value === undefined || value === '') throw new ArgsError(`--${name} needs a value (--${name}=…)`);
      return value;
    };
    switch (name) {
      case 'budget-ms':
        args.budgetMs = positiveInt(name, need());
        break;
      case 'samples':
        args.samples = positiveInt(name, need());
        break;
      case 'bot-rounds':
        args.botRounds = positiveInt(name, need());
        break;
      case 'chatter':
        args.chatter = positiveInt(name, need());
        break;
      case 'levels': {
        const levels = need()
          .split(',')
          .map((l) => positiveInt(name, l.trim()));
        if (levels.some((l) => l > 500)) throw new ArgsError('--levels: at most 500 jobs at once');
        args.levels = [...new Set(levels)];
        break;
      }
      case 'only': {
        const picked = need()
          .split(',')
          .map((s) => s.trim());
        const unknown = picked.filter((s) => !(SECTIONS as readonly string[]).includes(s));
        if (unknown.length > 0)
          throw new ArgsError(
            `--only: unknown section ${unknown.join(', ')} (sections: ${SECTIONS.join(', ')})`,
          );
        args.only = new Set(picked as Section[]);
        break;
      }
      case 'check':
        if (value !== undefined) throw new ArgsError('--check takes no value (use --check-file=<path>)');
        args.check = true;
        break;
      case 'check-file':
        args.checkFile = need();
        break;
      case 'starts':
        args.starts = positiveInt(name, need());
        break;
      case 'idle-ms':
        args.idleMs = positiveInt(name, need(), 0);
        break;
      case 'open-jobs':
        args.openJobs = positiveInt(name, need(), 0);
        break;
      default:
        throw new ArgsError(`unknown option --${name}`);
    }
  }
  return args;
}
