import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { McpToolDeps } from './deps.js';
import { jobRef, stepId } from './schemas.js';
import { answering } from './tool-result.js';

export function registerClaimToken(server: McpServer, deps: McpToolDeps): void {
  server.registerTool(
    'claim_token',
    {
      title: 'Claim a step token',
      description:
        "Claim an approved step's CST, once: the token, its jti and expiry, and the run_id and " +
        'event_hash_b64u a gateway binds its receipts to. The token is a credential: hand it only to the gateway ' +
        'that runs the step; it is redeemed once.',
      inputSchema: { job: jobRef, step: stepId },
      annotations: {
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: false,
        openWorldHint: false,
      },
    },
    (args, extra) =>
      answering(deps, extra, async (signal) => {
        const claimed = await deps.client.claimToken(args.job, args.step, { signal });
        return { ...claimed };
      }),
  );
}
