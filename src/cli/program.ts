import { Command, CommanderError } from 'commander';
import { openDatabase } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import { isAppError } from '../errors.js';
import { databaseTarget } from '../runtime.js';
import { VERSION } from '../version.js';
import type { CliContext } from './context.js';
import { agentCommands } from './agent-commands.js';
import { bundleCommands } from './bundle-commands.js';
import { doctorCommand } from './doctor-command.js';
import { keysCommands } from './keys-commands.js';
import { mcpCommand } from './mcp-command.js';
import { pauseCommands } from './pause-commands.js';
import { policyCommands } from './policy-commands.js';
import { serve, StartupFailed } from './serve-command.js';
import { tokenCommands } from './token-commands.js';

export function buildProgram(ctx: CliContext): Command {
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
    .action(() => serve(ctx));

  program
    .command('migrate')
    .description('apply pending database migrations (also done by serve) and exit')
    .action(async () => {
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

  policyCommands(program, ctx);
  keysCommands(program, ctx);
  agentCommands(program, ctx);
  tokenCommands(program, ctx);
  pauseCommands(program, ctx);
  bundleCommands(program, ctx);
  doctorCommand(program, ctx);
  mcpCommand(program, ctx);
  return program;
}

/** Runs the CLI and returns the exit code; errors are printed by code and message, never as stacks. */
export async function runCli(argv: readonly string[], ctx: CliContext): Promise<number> {
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv as string[]);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof StartupFailed) return 1;
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
