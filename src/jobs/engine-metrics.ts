import { afterCommit } from '../db/commit-hooks.js';
import type { Db } from '../db/database.js';
import type { DecisionKind } from '../db/schema.js';
import type { EngineContext } from './context.js';

/**
 * Where a decision came from: a phrase posted in the job's thread (`chat`), a status-post button
 * or its deny dialog (`button`), the `/claw` slash command (`command`), or an HTTP caller that is
 * neither (`api`: an operator with ADMIN_TOKEN, an agent).
 */
export type DecisionSource = 'chat' | 'button' | 'command' | 'api';

/** A committed decision row, as the metrics count it. */
export interface DecisionFact {
  kind: DecisionKind;
  outcome: 'accepted' | 'rejected';
  /** Its reason code, as `decisions.reason_code` has it. */
  code: string;
  source: DecisionSource;
}

/** A committed CST. */
export interface MintFact {
  gate: 'auto' | 'gated';
  /** Seconds from the approval that completed the quorum to the commit; null for an auto step. */
  sinceDecidingApproval: number | null;
}

/**
 * What the engine tells the metrics. Each call comes after the transaction that wrote the row
 * committed (`afterCommit`), so a rolled-back decision or mint is never counted.
 */
export interface EngineMetrics {
  decisionRecorded(fact: DecisionFact): void;
  tokenMinted(fact: MintFact): void;
}

/** Counts `fact` once `trx` commits. */
export async function noteDecision(ctx: EngineContext, trx: Db, fact: DecisionFact): Promise<void> {
  const metrics = ctx.metrics;
  if (!metrics) return;
  await afterCommit(trx, () => metrics.decisionRecorded(fact));
}

/**
 * Counts a mint once `trx` commits. `decidedAt` is when the approval that completed its quorum
 * was recorded; the time to the token is measured at the commit, by the engine's clock.
 */
export async function noteMint(
  ctx: EngineContext,
  trx: Db,
  mint: { gate: 'auto' | 'gated'; decidedAt: Date | null },
): Promise<void> {
  const metrics = ctx.metrics;
  if (!metrics) return;
  await afterCommit(trx, () =>
    metrics.tokenMinted({
      gate: mint.gate,
      sinceDecidingApproval:
        mint.decidedAt === null
          ? null
          : Math.max(0, (ctx.clock().getTime() - mint.decidedAt.getTime()) / 1000),
    }),
  );
}
