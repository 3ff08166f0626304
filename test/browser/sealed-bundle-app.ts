import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { decideStep } from '../../src/approvals/record-decision.js';
import type { ChatFacts } from '../../src/ports/chat.js';
import type { ChatPost } from '../../src/chat/chat-port.js';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import {
  createTestEngine,
  editJson,
  OPS,
  opsJob,
  registerAgent,
  type TestEngine,
  U,
} from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';
import { receiptFor } from '../helpers/receipts.js';

/** User-controlled text that must reach the page as text: tags, a script end, both quotes. */
export const HOSTILE = `</script><script>document.title="owned"</script><img src=x onerror="alert('x')"> "quoted" 'single' & more`;

export const MATTERMOST_URL = 'https://chat.example.test';
export const APPROVAL_POSTS = ['approvalpostalice000000001', 'approvalpostchioma00000002'];
/** The approvers' Mattermost usernames, as the chat server gives them at quorum time. */
export const USERNAMES: Record<string, string> = { [U.alice]: 'alice.nguyen', [U.chioma]: 'chioma.okafor' };

/** Mattermost as the engine re-reads it at quorum: the approval posts stand, the approvers are active. */
function chatFacts(posts: Map<string, ChatPost>): ChatFacts {
  return {
    post: async (id) => posts.get(id) ?? null,
    freshUser: async (id) => ({ id, username: USERNAMES[id] ?? `user-${id}`, is_bot: false, delete_at: 0 }),
  };
}

export interface SealedBundleApp {
  engine: TestEngine;
  app: FastifyInstance;
  bundleId: string;
  /** The envelope exactly as stored. */
  stored: string;
  jobId: number;
  close(): Promise<void>;
}

/**
 * A service-context job run to completion over the real engine and served by the real app:
 * alice and chioma approve post-summary in the job's thread (Mattermost, re-read at quorum,
 * names them alice.nguyen and chioma.okafor), every step is claimed, redeemed
 * and reported with a receipt from the test gateway. The gated step's summary and the
 * search query carry HOSTILE text.
 */
export async function sealedBundleApp(): Promise<SealedBundleApp> {
  const posts = new Map<string, ChatPost>();
  const engine = await createTestEngine({
    facts: chatFacts(posts),
    edit: (dir) =>
      editJson(dir, 'mattermost-agent-prod.json', (p) => {
        const runbooks = p.runbooks as Record<string, { steps: { id: string; summary: string }[] }>;
        const gated = runbooks['service-context']!.steps.find((s) => s.id === 'post-summary')!;
        gated.summary = `Post the summary ${HOSTILE}`;
      }),
  });
  const { ctx } = engine;
  await registerAgent(ctx);
  const job = await opsJob(ctx);
  const row = await ctx.db
    .selectFrom('jobs')
    .selectAll()
    .where('id', '=', job.jobId)
    .executeTakeFirstOrThrow();
  for (const [i, userId] of [U.alice, U.chioma].entries()) {
    posts.set(APPROVAL_POSTS[i]!, {
      id: APPROVAL_POSTS[i]!,
      create_at: 1,
      update_at: 1,
      edit_at: 0,
      delete_at: 0,
      user_id: userId,
      channel_id: OPS.channel,
      root_id: row.root_post_id!,
      original_id: '',
      message: `APPROVE job:${job.jobId} step:post-summary`,
      type: '',
      props: {},
    });
    await decideStep(ctx, {
      kind: 'approve',
      jobId: job.jobId,
      step: 'post-summary',
      userId,
      post: { postId: APPROVAL_POSTS[i]!, channelId: OPS.channel, rootId: row.root_post_id! },
    });
  }
  for (const step of ['search-kb', 'read-runbook', 'fetch-status', 'post-summary']) {
    const claim = await claimToken(ctx, { jobId: job.jobId, step, agentId: OPS.executor });
    await redeemToken(ctx, claim.token);
    await reportResult(ctx, {
      jobId: job.jobId,
      step,
      agentId: OPS.executor,
      status: 'succeeded',
      summary: `${step} done ${HOSTILE}`,
      receipts: [receiptFor(claim)],
    });
  }
  const ended = await ctx.db
    .selectFrom('jobs')
    .select('bundle_id')
    .where('id', '=', job.jobId)
    .executeTakeFirstOrThrow();
  const bundleId = ended.bundle_id!;
  const { envelope } = await ctx.db
    .selectFrom('bundles')
    .select('envelope')
    .where('bundle_id', '=', bundleId)
    .executeTakeFirstOrThrow();
  const app = buildApp({
    db: ctx.db,
    keyRing: ctx.keyRing,
    policies: ctx.policies,
    log: silentLogger(),
    engine: ctx,
    mattermostUrl: MATTERMOST_URL,
  });
  return {
    engine,
    app,
    bundleId,
    stored: envelope,
    jobId: job.jobId,
    close: async () => {
      await app.close();
      await engine.close();
    },
  };
}
