import { fail, isRecord, type Passed, quote } from './check.js';
import type { Chain } from './event-chain.js';
import type { EventBody } from './our-bindings.js';

/** Events after which a job mints and uses nothing: its end (and the reason it ended). */
const TERMINAL = new Set(['job_ended', 'job_revoked', 'job_cancelled', 'job_expired']);

/** Events that name a minted token by its jti. */
const TOKEN_USES = new Set(['token_claimed', 'token_redeemed', 'token_revoked']);

interface Minted {
  step: unknown;
  tokenHash: unknown;
}

/**
 * Tokens within the job's lifecycle, as the engine chains them: a token is minted only for a
 * step job_created planned, once per token id and never after the job ended (or was revoked,
 * cancelled or expired); it is claimed, redeemed or revoked only after its mint, for the
 * step it was minted for, and after the job's end only revoked. A token minted outside the
 * plan, or after the end, escapes every check that walks the planned steps.
 */
export function checkTokenLifecycle(chain: Chain, decoded: ReadonlyMap<string, EventBody>): Passed {
  const created = decoded.get(chain.list[0]!.event_hash_b64u)!;
  const planned = new Set(
    (Array.isArray(created.steps) ? (created.steps as unknown[]) : []).map((s) =>
      isRecord(s) ? s.id : undefined,
    ),
  );
  const minted = new Map<unknown, Minted>();
  let ended: string | null = null;
  for (const [i, header] of chain.list.entries()) {
    const type = header.event_type;
    const body = decoded.get(header.event_hash_b64u)!;
    const at = `event_chain[${i}] (${quote(type)})`;
    if (TERMINAL.has(type)) {
      ended ??= type;
    } else if (type === 'token_minted') {
      if (!planned.has(body.step))
        fail(
          'PLAN_BINDING_MISMATCH',
          null,
          `${at} mints a token for step ${quote(body.step)}, which job_created did not plan`,
        );
      if (ended !== null) fail('EVENT_CHAIN_INVALID', null, `${at} mints a token after ${ended}`);
      if (typeof body.jti !== 'string' || minted.has(body.jti))
        fail(
          'EVENT_CHAIN_INVALID',
          null,
          `${at} mints token ${quote(body.jti)}, which is not a new token id`,
        );
      minted.set(body.jti, { step: body.step, tokenHash: body.token_hash });
    } else if (TOKEN_USES.has(type)) {
      const token = minted.get(body.jti);
      if (token === undefined)
        fail(
          'EVENT_CHAIN_INVALID',
          null,
          `${at} names token ${quote(body.jti)} before any token_minted event of it`,
        );
      if (body.step !== undefined && body.step !== token.step)
        fail(
          'EVENT_CHAIN_INVALID',
          null,
          `${at} names token ${quote(body.jti)} for another step than it was minted for`,
        );
      if (body.token_hash !== undefined && body.token_hash !== token.tokenHash)
        fail(
          'EVENT_CHAIN_INVALID',
          null,
          `${at} names token ${quote(body.jti)} with another token_hash than its mint`,
        );
      if (ended !== null && type !== 'token_revoked')
        fail('EVENT_CHAIN_INVALID', null, `${at} uses token ${quote(body.jti)} after ${ended}`);
    }
  }
  return {
    message: `${minted.size} tokens minted for planned steps before the job's end, each used only after its mint`,
  };
}
