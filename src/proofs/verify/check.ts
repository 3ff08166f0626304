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
  | 'APPROVAL_WITHDRAWN_COUNTED'
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

/**
 * C0 and C1 controls (U+009B alone starts a terminal command), line and paragraph separators,
 * and the bidi marks, embeddings, overrides and isolates: characters that could rewrite or
 * reorder what a terminal shows. JSON.stringify escapes only C0.
 */
// eslint-disable-next-line no-control-regex -- control characters are what it finds
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
/** UNPRINTABLE but C0, which JSON.stringify escapes already. */
const UNPRINTABLE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

const escaped = (ch: string) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** `text` with every unprintable character written as a `\uXXXX` escape: safe on a terminal. */
export function escapeControls(text: string): string {
  return text.replace(UNPRINTABLE, escaped);
}

/**
 * JSON text (as JSON.stringify writes it) made safe on a terminal without changing its value:
 * C0 is escaped inside its strings already and its line breaks are layout; the rest of
 * UNPRINTABLE gets a JSON escape.
 */
export function escapeControlsInJson(text: string): string {
  return text.replace(UNPRINTABLE_IN_JSON, escaped);
}

/** Text worded from a bundle's values (e.g. `checkTwoPerson`'s findings): escaped and bounded. */
export function printable(text: string): string {
  const safe = escapeControls(text);
  return safe.length > 300 ? `${safe.slice(0, 299)}…` : safe;
}

/** An untrusted value in a message: JSON-quoted, every unprintable character escaped, clipped. */
export function quote(value: unknown): string {
  const text = escapeControls(JSON.stringify(typeof value === 'string' ? value : String(value)) ?? '""');
  return text.length > 90 ? `${text.slice(0, 86)}…"` : text;
}
