import type { Command } from 'commander';
import {
  checkActor,
  checkText,
  type PauseChangeView,
  pauseChangeView,
  type PauseStateView,
  pauseStateView,
} from '../http/routes/admin-shapes.js';
import { MAX_REASON, pauseState, setPaused } from '../jobs/kill-switch.js';
import { ChatPresenter } from '../presenter/chat-presenter.js';
import { engineFor, engineParts, policyServiceFor } from '../runtime.js';
import type { CliContext } from './context.js';
import { json } from './output.js';
import { onDatabaseOrServer } from './server-admin.js';

/** The state as the CLI has always printed it (`changedAt`, as `pauseState` names it). */
const shownState = (s: PauseStateView) => ({
  paused: s.paused,
  actor: s.actor,
  reason: s.reason,
  changedAt: s.changed_at,
});

/**
 * The kill switch at the CLI: `pause [reason]`, `resume [reason]`, `pause --status`. It writes
 * the state every replica reads, records the change in each open job's chain and queues the
 * status posts' edits (the running bot delivers them). While `serve` holds the embedded
 * database, the same happens through its admin API.
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
        if (opts.status) {
          const state = await onDatabaseOrServer(ctx, `${kind} --status`, {
            database: async (rt) => pauseStateView(await pauseState(rt.database.db)),
            server: (api) => api.get<PauseStateView>('/v1/admin/pause'),
          });
          ctx.output.out(json(shownState(state)));
          return;
        }
        const reason = words.join(' ');
        // As over HTTP: one line of plain text, never cut short without saying so.
        checkText('the reason', reason, { max: MAX_REASON });
        checkActor(opts.actor);
        const actor = `cli:${opts.actor}`;
        const change = await onDatabaseOrServer(ctx, kind, {
          database: async (rt) => {
            const engine = engineFor(engineParts(rt), policyServiceFor(rt, { readOnly: true }));
            // Jobs in Mattermost threads: their status posts are told, through the outbox.
            if (rt.config.mattermost) engine.events = new ChatPresenter({ publicUrl: rt.config.publicUrl });
            return pauseChangeView(
              await setPaused(engine, {
                paused: kind === 'pause',
                actor: { kind: 'admin', via: actor },
                reason,
              }),
            );
          },
          server: (api) =>
            api.post<PauseChangeView>('/v1/admin/kill-switch', { paused: kind === 'pause', actor, reason }),
        });
        const { changed, open_jobs: openJobs, ...state } = change;
        ctx.output.out(json({ changed, ...shownState(state), open_jobs: openJobs }));
      });
  }
}
