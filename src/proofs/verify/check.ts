import type { EnvelopeFailure } from '../../crypto/envelope.js';
import type { TwoPersonReason } from '../two-person.js';

/** Every reason `verifyBundle` may fail with. Claw Bureau's code for the same failure rides alongside. */
export type BundleFailure =
  | `BUNDLE_${EnvelopeFailure}`
  | 'BUNDLE_SIGNER_UNTRUSTED'
  | 'BUNDLE_EXPIRED'
  | 'BUNDLE_TOO_LARGE'
  | 'BUNDLE_ISSUED_AT_MISMATCH'
  | 'BUNDLE_PAYLOAD_INVALID'
  | 'UNSUPPORTED_FEATURE'
  | 'AGENT_DID_MISMATCH'
  | 'EVENT_CHAIN_INVALID'
  | 'EVENT_RUN_ID_MISMATCH'
  | 'EVENT_CHAIN_BROKEN'
  | 'EVENT_HASH_MISMATCH'
  | 'EVENT_PAYLOAD_MISMATCH'
  | `RECEIPT_${EnvelopeFailure}`
  | 'RECEIPT_BINDING_MISMATCH'
  | 'RECEIPT_REPLAYED'
  | 'TOOL_RECEIPT_INVALID'
  | 'TOOL_RECEIPT_BINDING_MISMATCH'
  | 'TOOL_RECEIPT_EXPIRED'
  | 'TOOL_RECEIPT_HASH_MISMATCH'
  | 'TOOL_RECEIPT_SIGNATURE_INVALID'
  | 'CO_SIGNATURE_INVALID'
  | 'SIDE_EFFECT_RECEIPT_INVALID'
  | 'SIDE_EFFECT_RECEIPT_BINDING_MISMATCH'
  | 'APPROVAL_RECEIPT_INVALID'
  | 'APPROVAL_RECEIPT_BINDING_MISMATCH'
  | 'CAUSAL_BINDING_INVALID'
  | 'SIDE_EFFECT_NOT_ANCHORED'
  | 'APPROVAL_NOT_ANCHORED'
  | 'POLICY_BINDING_MISMATCH'
  | 'PLAN_BINDING_MISMATCH'
  | 'TOKEN_BINDING_MISMATCH'
  | TwoPersonReason
  | 'APPROVAL_RULE_MISMATCH';

/**
 * One check `verifyBundle` made. `cbReason` is the reason code Claw Bureau's `clawverify`
 * gives for the same finding: on a failed check, the code it fails with (null where it makes
 * no such check); on a passed check, present only where clawverify would fail the bundle
 * although we do not (the message says why).
 */
export interface VerifyCheck {
  id: string;
  ok: boolean;
  reason?: BundleFailure;
  cbReason?: string | null;
  message: string;
}

/** A check that failed: the verdict's reason. */
export class CheckFailure extends Error {
  constructor(
    readonly reason: BundleFailure,
    readonly cbReason: string | null,
    message: string,
  ) {
    super(message);
  }
}

export function fail(reason: BundleFailure, cbReason: string | null, message: string): never {
  throw new CheckFailure(reason, cbReason, message);
}

/** Whom a verification trusts. */
export interface BundleTrust {
  /** Whether a bundle signed by `did` at `at` is acceptable (the bot's key ring, or an allowlist). */
  trustsSigner: (did: string, at: Date) => boolean;
  /** Gateway receipt signers accepted as evidence. */
  gatewaySigners: ReadonlySet<string>;
}

/** What a passed check reports. */
export interface Passed {
  message: string;
  cbReason?: string;
}

/** Runs checks in order, recording each outcome; the first failure stops verification. */
export class CheckLog {
  readonly checks: VerifyCheck[] = [];

  run<T>(id: string, check: () => { value: T } & Passed): T {
    try {
      const out = check();
      this.checks.push({
        id,
        ok: true,
        message: out.message,
        ...(out.cbReason === undefined ? {} : { cbReason: out.cbReason }),
      });
      return out.value;
    } catch (err) {
      const failure =
        err instanceof CheckFailure
          ? err
          : // A value of a shape nothing above foresaw: fail closed, named.
            new CheckFailure(
              'BUNDLE_PAYLOAD_INVALID',
              null,
              `malformed content: ${quote(err instanceof Error ? err.message : err)}`,
            );
      this.checks.push({
        id,
        ok: false,
        reason: failure.reason,
        cbReason: failure.cbReason,
        message: failure.message,
      });
      throw failure;
    }
  }

  /** A check with nothing to hand on. */
  note(id: string, check: () => Passed): void {
    this.run(id, () => ({ value: undefined, ...check() }));
  }
}

export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** An untrusted value in a message: JSON-quoted (no control characters) and clipped. */
export function quote(value: unknown): string {
  const text = JSON.stringify(typeof value === 'string' ? value : String(value)) ?? '""';
  return text.length > 90 ? `${text.slice(0, 86)}…"` : text;
}
