import type { Command } from 'commander';
import { createAgent, listAgents, revokeAgent } from '../agents/agent-keys.js';
import { engineFor, engineParts, policyServiceFor } from '../runtime.js';
import type { CliContext } from './context.js';
import { json } from './output.js';

export function agentCommands(program: Command, ctx: CliContext): void {
  const agents = program.command('agents').description('agents that call the HTTP API: create, list, revoke');

  agents
    .command('create')
    .description('create an agent and print its bearer key once (only its SHA-256 is stored)')
    .argument('<id>', 'agent id, the CST subject, e.g. agent:ops-mattermost-1')
    .option('--description <text>', 'what this agent is', '')
    .action(async (id: string, opts: { description: string }) => {
      await ctx.withRuntime(async (rt) => {
        const { agent, key } = await createAgent(rt.database.db, {
          id,
          description: opts.description,
          at: rt.clock(),
        });
        ctx.output.out(
          json({
            id: agent.id,
            key,
            note: 'store this key now (e.g. in the agent’s secret store); it is not shown again',
          }),
        );
      });
    });

  agents
    .command('list')
    .description('list agents (never their keys)')
    .action(async () => {
      await ctx.withRuntime(async (rt) => {
        const rows = await listAgents(rt.database.db);
        ctx.output.out(
          json(
            rows.map((a) => ({
              id: a.id,
              key_hint: `${a.key_hint}…`,
              description: a.description,
              created_at: a.created_at.toISOString(),
              revoked_at: a.revoked_at?.toISOString() ?? null,
            })),
          ),
        );
      });
    });

  agents
    .command('revoke')
    .description(
      'revoke an agent key and every token of the agent not yet redeemed; jobs left unable to finish end as revoked',
    )
    .argument('<id>', 'agent id')
    .option('--reason <text>', 'why (recorded in each affected job’s proof bundle)')
    .option('--actor <name>', 'who is revoking', ctx.defaultActor)
    .action(async (id: string, opts: { reason?: string; actor: string }) => {
      await ctx.withRuntime(async (rt) => {
        const engine = engineFor(engineParts(rt), policyServiceFor(rt, { readOnly: true }));
        const r = await revokeAgent(engine, {
          id,
          actor: opts.actor,
          ...(opts.reason ? { reason: opts.reason } : {}),
        });
        ctx.output.out(
          json({
            id: r.agent.id,
            revoked_at: r.agent.revoked_at?.toISOString() ?? null,
            tokens_revoked: r.tokens.length,
            tokens: r.tokens.map((t) => ({ jti: t.jti, job_id: `job:${t.jobId}` })),
            jobs_ended: r.jobsEnded.map((j) => `job:${j}`),
          }),
        );
      });
    });
}
