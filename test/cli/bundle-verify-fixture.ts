import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildApp } from '../../src/app.js';
import { claimToken, reportResult } from '../../src/jobs/agent-job-ops.js';
import type { EngineContext } from '../../src/jobs/context.js';
import { endJobByCommand } from '../../src/jobs/revoke-job.js';
import type { KeyRing } from '../../src/tokens/key-ring.js';
import { redeemToken } from '../../src/tokens/token-lifecycle.js';
import { createTestEngine, OPS, opsJob, registerAgent, type TestEngine } from '../helpers/engine.js';
import { silentLogger } from '../helpers/log.js';
import { receiptFor } from '../helpers/receipts.js';

/** What `bundle verify` tests start from: a bundle the real engine sealed. */
export interface Sealed {
  engine: TestEngine;
  bundleId: string;
  /** The envelope exactly as stored and served. */
  text: string;
  close(): Promise<void>;
}

/**
 * A service-context job whose first step ran with a receipt from the test gateway, then
 * revoked by an operator: the engine seals its bundle, signed by the engine's key at the
 * engine's clock. The bundle's id and its envelope exactly as stored and served.
 */
export async function runAndRevoke(ctx: EngineContext): Promise<{ bundleId: string; text: string }> {
  await registerAgent(ctx);
  const job = await opsJob(ctx);
  const claim = await claimToken(ctx, { jobId: job.jobId, step: 'search-kb', agentId: OPS.executor });
  await redeemToken(ctx, claim.token);
  await reportResult(ctx, {
    jobId: job.jobId,
    step: 'search-kb',
    agentId: OPS.executor,
    status: 'succeeded',
    summary: 'found it',
    receipts: [receiptFor(claim)],
  });
  await endJobByCommand(ctx, {
    kind: 'revoke',
    jobId: job.jobId,
    actor: { kind: 'admin', name: 'tester' },
    reason: 'done testing',
  });
  const row = await ctx.db
    .selectFrom('bundles')
    .select(['bundle_id', 'envelope'])
    .where('job_id', '=', job.jobId)
    .executeTakeFirstOrThrow();
  return { bundleId: row.bundle_id, text: row.envelope };
}

/** `runAndRevoke` on a fresh test engine (clock 2026-11-21T10:00:00Z). */
export async function sealedJob(): Promise<Sealed> {
  const engine = await createTestEngine();
  return { engine, ...(await runAndRevoke(engine.ctx)), close: () => engine.close() };
}

export interface Listening {
  url: string;
  close(): Promise<void>;
}

/** The real app over the engine's database, listening on a loopback port; `keyRing` replaces the engine's. */
export async function serveApp(
  engine: TestEngine,
  keyRing: KeyRing = engine.ctx.keyRing,
): Promise<Listening> {
  const app = buildApp({
    db: engine.ctx.db,
    keyRing,
    policies: engine.ctx.policies,
    log: silentLogger(),
    engine: engine.ctx,
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url, close: () => app.close() };
}

/** A plain node:http server answering as `handle` says, for the answers no real server gives. */
export async function serveRaw(handle: http.RequestListener): Promise<Listening> {
  const server = http.createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
