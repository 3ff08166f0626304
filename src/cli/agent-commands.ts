import type { Command } from 'commander';
import { createAgent, listAgents, revokeAgent } from '../agents/agent-keys.js';
import {
  type AgentRevokedView,
  type AgentView,
  agentRevokedView,
  agentView,
  checkActor,
  checkAgentId,
  checkText,
  MAX_ADMIN_REASON,
  MAX_DESCRIPTION,
} from '../http/routes/admin-shapes.js';
import { engineFor, engineParts, policyServiceFor } from '../runtime.js';
import type { CliContext } from './context.js';
import { json } from './output.js';
import { onDatabaseOrServer } from './server-admin.js';

const shownAgent = (a: AgentView) => ({
  id: a.id,
  key_hint: `${a.key_hint}…`,
  description: a.description,
  created_at: a.created_at,
  revoked_at: a.revoked_at,
});

const shownRevocation = (r: AgentRevokedView) => ({
  id: r.id,
  revoked_at: r.revoked_at,
  tokens_revoked: r.tokens.length,
  tokens: r.tokens.map((t) => ({ jti: t.jti, job_id: `job:${t.job_id}` })),
  jobs_ended: r.jobs_ended.map((j) => `job:${j}`),
});

export function agentCommands(program: Command, ctx: CliContext): void {
  const agents = program.command('agents').description('agents that call the HTTP API: create, list, revoke');

  agents
    .command('create')
    .description('create an agent and print its bearer key once (only its SHA-256 is stored)')
    .argument('<id>', 'agent id, the CST subject, e.g. agent:ops-mattermost-1')
    .option('--description <text>', 'what this agent is', '')
    .action(async (id: string, opts: { description: string }) => {
      checkAgentId(id);
      checkText('the description', opts.description, { max: MAX_DESCRIPTION });
      const created = await onDatabaseOrServer(ctx, 'agents create', {
        database: async (rt) => {
          const { agent, key } = await createAgent(rt.database.db, {
            id,
            description: opts.description,
            at: rt.clock(),
          });
          return { id: agent.id, key };
        },
        server: (api) =>
          api.post<{ id: string; key: string }>('/v1/admin/agents', { id, description: opts.description }),
      });
      ctx.output.out(
        json({
          id: created.id,
          key: created.key,
          note: 'store this key now (e.g. in the agent’s secret store); it is not shown again',
        }),
      );
    });

  agents
    .command('list')
    .description('list agents (never their keys)')
    .action(async () => {
      const rows = await onDatabaseOrServer(ctx, 'agents list', {
        database: async (rt) => (await listAgents(rt.database.db)).map(agentView),
        server: async (api) => (await api.get<{ agents: AgentView[] }>('/v1/admin/agents')).agents,
      });
      ctx.output.out(json(rows.map(shownAgent)));
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
      checkAgentId(id);
      checkActor(opts.actor);
      if (opts.reason !== undefined) checkText('the reason', opts.reason, { max: MAX_ADMIN_REASON });
      const reason = opts.reason ? { reason: opts.reason } : {};
      const revoked = await onDatabaseOrServer(ctx, 'agents revoke', {
        database: async (rt) => {
          const engine = engineFor(engineParts(rt), policyServiceFor(rt, { readOnly: true }));
          return agentRevokedView(await revokeAgent(engine, { id, actor: opts.actor, ...reason }));
        },
        server: (api) =>
          api.post<AgentRevokedView>('/v1/admin/agents/revoke', { id, actor: opts.actor, ...reason }),
      });
      ctx.output.out(json(shownRevocation(revoked)));
    });
}
