import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Directory } from '../approvals/directory.js';
import type { ChatFacts } from '../ports/chat.js';
import type { Clock } from '../clock.js';
import type { Db } from '../db/database.js';
import type { PolicyService } from '../policy/policy-service.js';
import type { KeyRing } from '../tokens/key-ring.js';
import type { TokenVerifier } from '../tokens/verify-token.js';
import type { EngineMetrics } from './engine-metrics.js';
import type { JobEvent, JobEventSink } from './job-events.js';

/** Wakes long-polls in this process after a job change commits. */
export class JobNotifier {
  private readonly emitter = new EventEmitter().setMaxListeners(0);

  changed(jobId: number): void {
    this.emitter.emit('job', jobId);
  }

  /** Resolves on the next change (to `jobId` if given) or after `ms`, whichever is first. */
  async next(ms: number, jobId?: number, signal?: AbortSignal): Promise<void> {
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.emitter.off('job', onJob);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const onJob = (id: number) => {
        if (jobId === undefined || id === jobId) done();
      };
      const timer = setTimeout(done, ms);
      this.emitter.on('job', onJob);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}

/** Everything the core engine needs, passed in: no globals, no environment. */
export interface EngineContext {
  db: Db;
  keyRing: KeyRing;
  verifier: TokenVerifier;
  policies: PolicyService;
  directory: Directory;
  clock: Clock;
  log: Logger;
  notifier: JobNotifier;
  /** did:key of every gateway whose receipts are accepted as verified. */
  gatewaySigners: ReadonlySet<string>;
  /** Group whose members may REVOKE any job (SPEC section 1). */
  securityGroup: string;
  /** Reported in bundle metadata (harness version). */
  version: string;
  /** Base of the bundle links posted to job threads (`PUBLIC_URL`). */
  publicUrl?: string | null;
  /**
   * Who hears about decisions, mints and endings (the chat presenter when the bot is
   * configured), in the deciding transaction. Absent: nobody is told (API only, tools).
   */
  events?: JobEventSink;
  /** Mattermost, re-read when quorum is evaluated (approval posts, approver accounts); absent API-only. */
  chat?: ChatFacts;
  /** Told of decisions and mints after they commit (the Prometheus metrics); absent, nothing is counted. */
  metrics?: EngineMetrics;
}

/**
 * Runs `work` in the caller's transaction when one is given (the bot records the chat post and
 * its answers in the same commit), else in a new one. A caller that passes `trx` commits it and
 * then notifies waiters itself.
 */
export function inTransaction<T>(
  ctx: EngineContext,
  trx: Db | undefined,
  work: (trx: Db) => Promise<T>,
): Promise<T> {
  return trx ? work(trx) : ctx.db.transaction().execute(work);
}

/** Tells the context's sink, if any, what the engine just decided (in the same transaction). */
export async function publish(ctx: EngineContext, trx: Db, event: JobEvent, at: Date): Promise<void> {
  await ctx.events?.publish(trx, event, at);
}
