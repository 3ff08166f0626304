import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { registerClaimToken } from './claim-token.js';
import { registerCloseJob } from './close-job.js';
import type { McpToolDeps } from './deps.js';
import { registerJobStatus } from './job-status.js';
import { registerPermissionPrompt } from './permission-prompt.js';
import { registerReportResult } from './report-result.js';
import { registerRequestApproval } from './request-approval.js';
import { registerWaitForDecision } from './wait-for-decision.js';

/** The name MCP clients see; Claude Code prefixes tools with the name it was added under. */
export const MCP_SERVER_NAME = 'claw-approvals';

/** The MCP server of one agent: every tool calls the agent API with that agent's key. */
export function createMcpServer(deps: McpToolDeps, version: string): McpServer {
  const server = new McpServer(
    { name: MCP_SERVER_NAME, version },
    {
      instructions:
        'Work that a channel policy gates needs two people to approve it in Mattermost. request_approval ' +
        'submits it, wait_for_decision waits for people, claim_token hands out the one-time token for an ' +
        'approved step, report_result records what running it did. permission_prompt is for ' +
        "Claude Code's --permission-prompt-tool.",
    },
  );
  registerRequestApproval(server, deps);
  registerWaitForDecision(server, deps);
  registerClaimToken(server, deps);
  registerReportResult(server, deps);
  registerJobStatus(server, deps);
  registerCloseJob(server, deps);
  registerPermissionPrompt(server, deps);
  return server;
}
