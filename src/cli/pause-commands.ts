import type { Command } from 'commander';
import { AppError } from '../errors.js';
import { MAX_REASON, pauseState, setPaused } from '../jobs/kill-switch.js';
import { hasUnsafeText } from '../jobs/plan.js';
import { ChatPresenter } from '../presenter/chat-presenter.js';
import { engineFor, engineParts, policyServiceFor } from '../runtime.js';
import type { CliContext } from './context.js';
import { json } from './output.js';

/**
 * The kill switch at the CLI: `pause [reason]`, `resume [reason]`, `pause --status`. It writes
 * the state every replica reads, records the change in each open job's chain and queues the
 * status posts' edits (the running bot delivers them).
 */
export function pauseCommands(program: Command, ctx: CliContext): void {
  for (const kind of ['pause', 'resume'] as const) {
    program
      .command(kind)
      .description(
        kind === 'pause'
          ? 'stop all new work everywhere: no job requested, approval counted or token minted, claimed or redeemed'
          : 'let work go on after a pause',
      )
      .argument('[reason...]', 'why (recorded in every open job’s chain)')
      .option('--status', 'only show whether work is paused')
      .option('--actor <name>', 'who is doing it', ctx.defaultActor)
      .action(async (words: string[], opts: { status?: boolean; actor: string }) => {
        await ctx.withRuntime(async (rt) => {
          if (opts.status) {
            ctx.output.out(json(await pauseState(rt.database.db)));
            return;
          }
          const reason = words.join(' ');
          // As over HTTP: one line of plain text, never cut short without saying so.
          if (hasUnsafeText(reason) || reason.length > MAX_REASON)
            throw new AppError(
              'ERR_VALIDATION',
              `the reason must be one line of plain text of at most ${MAX_REASON} characters`,
            );
          const engine = engineFor(engineParts(rt), policyServiceFor(rt, { readOnly: true }));
          // Jobs in Mattermost threads: their status posts are told, through the outbox.
          if (rt.config.mattermost) engine.events = new ChatPresenter({ publicUrl: rt.config.publicUrl });
          const change = await setPaused(engine, {
            paused: kind === 'pause',
            actor: { kind: 'admin', via: `cli:${opts.actor}` },
            reason,
          });
          ctx.output.out(json({ changed: change.changed, ...change.state, open_jobs: change.jobs.length }));
        });
      });
  }
}
