import type { ClawClient } from '@claw-approvals/client';
import type { FastifyBaseLogger as Logger } from 'fastify';

/** What every tool works with: the API as the calling agent, and where its jobs go. */
export interface McpToolDeps {
  /** The agent API with the caller's key. */
  client: ClawClient;
  /** Diagnostics only (stderr for stdio); never the key or a token. */
  log: Logger;
  /** Mattermost's base URL, to link a job's thread; null: threads are named by post id only. */
  mattermostUrl: string | null;
  /** `request_approval`'s default channel, and the permission prompt's channel. */
  channelId: string | null;
  /** `request_approval`'s default requester, and the permission prompt's requester. */
  requesterId: string | null;
  teamId: string | null;
  /** How long the permission prompt waits for people before it denies the call. */
  permissionTimeoutSeconds: number;
  /** Aborted when the server stops: waiting tools answer at once instead of holding it open. */
  stopping?: AbortSignal;
}

/** `https://chat.example.com/_redirect/pl/<post>`: Mattermost finds the post's team itself. */
export function threadLink(
  deps: Pick<McpToolDeps, 'mattermostUrl'>,
  rootPostId: string | null,
): string | null {
  if (rootPostId === null || deps.mattermostUrl === null) return null;
  return `${deps.mattermostUrl.replace(/\/+$/, '')}/_redirect/pl/${rootPostId}`;
}
