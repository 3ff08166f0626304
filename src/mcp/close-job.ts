import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { McpToolDeps } from './deps.js';
import { jobRef } from './schemas.js';
import { answering } from './tool-result.js';

export function registerCloseJob(server: McpServer, deps: McpToolDeps): void {
  server.registerTool(
    'close_job',
    {
      title: 'Close a job',
      description:
        'End one of your jobs now: completed if every step succeeded, otherwise cancelled. Its proof bundle is sealed.',
      inputSchema: { job: jobRef, reason: z.string().max(500).optional() },
      annotations: {
        readOnlyHint: false,
        destructiveHint: true,
        idempotentHint: false,
        openWorldHint: false,
      },
    },
    (args, extra) =>
      answering(deps, extra, async (signal) => {
        const closed = await deps.client.closeJob(args.job, args.reason, { signal });
        return { ...closed };
      }),
  );
}
