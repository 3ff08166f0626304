import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { McpToolDeps } from './deps.js';
import { jobRef, stepId } from './schemas.js';
import { answering } from './tool-result.js';

export function registerReportResult(server: McpServer, deps: McpToolDeps): void {
  server.registerTool(
    'report_result',
    {
      title: 'Report a step result',
      description:
        'Report what running a claimed step did: succeeded (with the gateway receipts the policy may require) or ' +
        'failed. The last success completes the job, a failure ends it; either seals its proof bundle.',
      inputSchema: {
        job: jobRef,
        step: stepId,
        status: z.enum(['succeeded', 'failed']),
        summary: z.string().max(2000).optional(),
        receipts: z
          .array(z.record(z.string(), z.unknown()))
          .max(16)
          .optional()
          .describe('Gateway receipt envelopes bound to the claim (run_id, event_hash_b64u)'),
      },
      annotations: {
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: false,
        openWorldHint: false,
      },
    },
    (args, extra) =>
      answering(deps, extra, async (signal) => {
        const reported = await deps.client.reportResult(
          args.job,
          args.step,
          {
            status: args.status,
            ...(args.summary === undefined ? {} : { summary: args.summary }),
            ...(args.receipts === undefined ? {} : { receipts: args.receipts }),
          },
          { signal },
        );
        return { ...reported };
      }),
  );
}
