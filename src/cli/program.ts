import { Command, CommanderError } from 'commander';
import { isAppError } from '../errors.js';
import { VERSION } from '../version.js';
import type { CliContext } from './context.js';

type RegisterCommands = (program: Command, ctx: CliContext) => void;

/**
 * Every command group's module, in the order help lists them. A module is imported only when
 * its command runs (or when help needs them all): `serve` never loads the MCP SDK, the bundle
 * verifier or doctor.
 */
const COMMAND_MODULES: readonly { names: readonly string[]; load: () => Promise<RegisterCommands> }[] = [
  { names: ['policy'], load: async () => (await import('./policy-commands.js')).policyCommands },
  { names: ['keys'], load: async () => (await import('./keys-commands.js')).keysCommands },
  { names: ['agents'], load: async () => (await import('./agent-commands.js')).agentCommands },
  { names: ['token'], load: async () => (await import('./token-commands.js')).tokenCommands },
  { names: ['pause', 'resume'], load: async () => (await import('./pause-commands.js')).pauseCommands },
  { names: ['bundle'], load: async () => (await import('./bundle-commands.js')).bundleCommands },
  { names: ['doctor'], load: async () => (await import('./doctor-command.js')).doctorCommand },
  { names: ['mcp'], load: async () => (await import('./mcp-command.js')).mcpCommand },
];

/** `serve` failed and has already said why (one JSON line): nothing more to print. */
class AlreadyReported extends Error {
  constructor(cause: unknown) {
    super('already reported', { cause });
    this.name = 'AlreadyReported';
  }
}

/**
 * The CLI. With `command` (the first argument, when it names one), only that command is
 * registered, so only its module is loaded; otherwise (help, a typo, an option first) all are.
 */
export async function buildProgram(ctx: CliContext, command?: string): Promise<Command> {
  const program = new Command('claw-approvals')
    .description('Mattermost as the control plane for permissioned agent work')
    .version(VERSION, '-V, --version', 'print the version and exit')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.output.out(s.trimEnd()),
      writeErr: (s) => ctx.output.err(s.trimEnd()),
    });

  program
    .command('serve')
    .description('run the server (HTTP API; database, key and policies are verified first)')
    .action(async () => {
      const { serve, StartupFailed } = await import('./serve-command.js');
      try {
        await serve(ctx);
      } catch (err) {
        throw err instanceof StartupFailed ? new AlreadyReported(err) : err;
      }
    });

  program
    .command('migrate')
    .description('apply pending database migrations (also done by serve) and exit')
    .action(async () => {
      const [{ openDatabase }, { migrateToLatest }, { databaseTarget }] = await Promise.all([
        import('../db/database.js'),
        import('../db/migrate.js'),
        import('../runtime.js'),
      ]);
      const database = await openDatabase(databaseTarget(ctx.config()));
      try {
        const results = await migrateToLatest(database.db);
        ctx.output.out(
          results.length
            ? results.map((r) => `${r.status} ${r.migrationName}`).join('\n')
            : `database ${database.description} is up to date`,
        );
      } finally {
        await database.close();
      }
    });

  const own = COMMAND_MODULES.find((m) => command !== undefined && m.names.includes(command));
  const wanted = command === 'serve' || command === 'migrate' ? [] : own ? [own] : COMMAND_MODULES;
  for (const register of await Promise.all(wanted.map((m) => m.load()))) register(program, ctx);
  return program;
}

/** Runs the CLI and returns the exit code; errors are printed by code and message, never as stacks. */
export async function runCli(argv: readonly string[], ctx: CliContext): Promise<number> {
  try {
    // Only the first argument can name the command: the program itself takes no option values.
    const program = await buildProgram(ctx, argv[2]);
    await program.parseAsync(argv as string[]);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof AlreadyReported) return 1;
    if (isAppError(err)) {
      ctx.output.err(`error ${err.code}: ${err.message}`);
      if (err.code === 'ERR_CONFIG_INVALID' && Array.isArray(err.details)) {
        for (const d of err.details as { key: string; problem: string }[])
          ctx.output.err(`  ${d.key}: ${d.problem}`);
      }
      return 1;
    }
    ctx.output.err(`error ERR_INTERNAL: ${(err as Error)?.message ?? String(err)}`);
    return 1;
  }
}
