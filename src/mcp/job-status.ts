import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { type McpToolDeps, threadLink } from './deps.js';
import { jobRef } from './schemas.js';
import { answering } from './tool-result.js';

export function registerJobStatus(server: McpServer, deps: McpToolDeps): void {
  server.registerTool(
    'job_status',
    {
      title: 'Job status',
      description:
        "One of your jobs as the API shows it: status, policy, plan hash, and each step's arguments, gate, status, " +
        'approvals counted now and whether its token is claimable (never the token).',
      inputSchema: { job: jobRef },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (args, extra) =>
      answering(deps, extra, async (signal) => {
        const job = await deps.client.getJob(args.job, { signal });
        return { ...job, thread: threadLink(deps, job.root_post_id) };
      }),
  );
}
