/**
 * The bundle page's own verifier, run in the reader's browser over the exact bytes the page
 * carries, with WebCrypto (SHA-256, Ed25519) against the server's JWKS that the page embeds.
 * It repeats, without trusting the server's answer, what `verifyBundle` checks of a bundle's
 * integrity and approvals (src/proofs/verify-bundle.ts), in its order and with its reasons:
 * envelope, payload, signature, signer, what this verifier cannot evaluate (UNSUPPORTED_FEATURE),
 * event chain, gateway and approval receipts, then a claw-approvals bundle's bindings, token
 * lifecycle and two-person rule (browser-bindings.ts); last, that the bundle is the one the page
 * is for. Not here: the signed policy (bundles name it by hash; the server and `bundle verify`
 * recompute each step's rule from it) and what the page lists as "not checked in the browser".
 *
 * How it ships: the page inlines the compiled text of this module and of the modules it imports
 * (see page-script.ts), so the code a browser runs is the code typechecked and tested here.
 * Hence the one rule of all of them: no imports but of each other and `import type` (erased),
 * and only globals that browsers and Node share (crypto.subtle, TextEncoder, TextDecoder, atob,
 * btoa). The snapshot's own consistency is not re-written here: the page inlines
 * src/proofs/two-person.ts the same way and passes its `checkTwoPerson` in.
 */
import { firstDuplicateKey } from '../../proofs/verify/duplicate-keys.js';
import { UNEVALUATED_COMPONENTS, UNEVALUATED_METADATA } from '../../proofs/verify/unevaluated.js';
import { checkOurBindings } from './browser-bindings.js';
import {
  type Chain,
  failWith,
  isObject,
  type Obj,
  type Passed,
  quote,
  sha256B64u,
  unavailable,
} from './browser-common.js';
import {
  checkEnvelopeFormat,
  checkEnvelopeSignature,
  type TrustedJwk,
  trustedKey,
} from './browser-envelope.js';
import { checkApprovalReceipts, checkGatewayReceipts } from './browser-receipts.js';
import type { TwoPersonCheck } from './browser-two-person.js';

export type { TrustedJwk, TwoPersonCheck };

/** What the page embeds as the server's trust: its JWKS and its allowlisted gateway signers. */
export interface BrowserTrust {
  keys: TrustedJwk[];
  gateway_signers: string[];
}

/** What the page knows beside the bytes: the bundle id its link names, and the time to judge expiry at. */
export interface BrowserExpectations {
  bundleId?: string;
  now?: Date;
}

export interface BrowserCheck {
  id: string;
  /** null: nothing to check in this bundle (said, never counted as a pass). */
  ok: boolean | null;
  reason?: string;
  message: string;
}

export type BrowserVerdict =
  | { status: 'verified'; message: string; checks: BrowserCheck[] }
  | { status: 'failed'; reason: string; message: string; checks: BrowserCheck[] }
  /** This browser cannot check (no WebCrypto, or no Ed25519 in it): neither a pass nor a fail. */
  | { status: 'unavailable'; message: string; checks: BrowserCheck[] };

/** Verifies `bytes` (the stored envelope) and says why not, with the first named reason. */
export async function verifyInBrowser(
  bytes: Uint8Array,
  trust: BrowserTrust,
  twoPerson: TwoPersonCheck,
  expect: BrowserExpectations = {},
): Promise<BrowserVerdict> {
  const checks: BrowserCheck[] = [];
  const passed: Passed = (id, message, ok = true) => {
    checks.push({ id, ok, message });
  };
  try {
    if (typeof crypto === 'undefined' || !crypto.subtle) {
      unavailable(
        'WebCrypto is off on this page (browsers offer it over HTTPS, on localhost and in a saved file)',
      );
    }
    const message = await checkBundle(bytes, trust, twoPerson, expect, passed);
    return { status: 'verified', message, checks };
  } catch (err) {
    const e = (typeof err === 'object' && err !== null ? err : {}) as {
      bundleFailure?: string;
      unavailable?: boolean;
      message?: string;
    };
    const message = String(e.message ?? err);
    if (e.unavailable) return { status: 'unavailable', message, checks };
    const reason = e.bundleFailure ?? 'BUNDLE_PAYLOAD_INVALID';
    const said = e.bundleFailure ? message : `payload is malformed: ${message}`;
    checks.push({ id: 'failure', ok: false, reason, message: said });
    return { status: 'failed', reason, message: said, checks };
  }
}

/** `proof_bundle.v1`'s parts that both verifiers evaluate. */
const EVALUATED = [
  'bundle_version',
  'bundle_id',
  'agent_did',
  'event_chain',
  'receipts',
  'human_approval_receipts',
  'metadata',
];

/** Parts the server evaluates and this page does not: listed as "not checked in the browser". */
const SERVER_ONLY = ['eip8004_agent_id', 'eip8004_registry', 'tool_receipts', 'side_effect_receipts'];

/** Claw Bureau's bounds on the arrays (CVF-US-025), checked before any entry is. */
const MAX_ENTRIES: Record<string, number> = { event_chain: 1000, receipts: 1000 };

/**
 * The payload's top level as `proof_bundle.v1` has it, before any hash is computed (as the
 * server's schema step): its version, id and agent, no part the schema does not name, the
 * arrays within their bounds.
 */
function checkPayloadShape(p: Obj): void {
  if (p.bundle_version !== '1' || typeof p.bundle_id !== 'string' || p.bundle_id === '')
    failWith('BUNDLE_PAYLOAD_INVALID', 'bundle_version must be "1" and bundle_id a string');
  if (typeof p.agent_did !== 'string' || !p.agent_did.startsWith('did:'))
    failWith('BUNDLE_PAYLOAD_INVALID', 'agent_did is not a DID');
  const known = [...EVALUATED, ...SERVER_ONLY, ...Object.keys(UNEVALUATED_COMPONENTS)];
  const unknown = Object.keys(p).filter((k) => !known.includes(k));
  if (unknown.length > 0)
    failWith(
      'BUNDLE_PAYLOAD_INVALID',
      `payload has parts proof_bundle.v1 does not name: ${unknown.map(quote).join(', ')}`,
    );
  for (const [key, max] of Object.entries(MAX_ENTRIES)) {
    const n = Array.isArray(p[key]) ? (p[key] as unknown[]).length : 0;
    if (n > max) failWith('BUNDLE_TOO_LARGE', `payload.${key} has ${n} entries (at most ${max})`);
  }
}

/**
 * A bundle claiming something this verifier does not check never passes (the server's
 * `checkFeatures`): it fails as UNSUPPORTED_FEATURE, naming what.
 */
function checkFeatures(p: Obj): void {
  const found: string[] = [];
  for (const [key, name] of Object.entries(UNEVALUATED_COMPONENTS))
    if (p[key] !== undefined) found.push(name);
  const metadata = isObject(p.metadata) ? p.metadata : {};
  for (const [key, name] of Object.entries(UNEVALUATED_METADATA))
    if (metadata[key] !== undefined) found.push(name);
  for (const [i, r] of (Array.isArray(p.receipts) ? p.receipts : []).entries())
    if (isObject(r) && r.hash_algorithm === 'BLAKE3') found.push(`BLAKE3 hashes (receipts[${i}])`);
  for (const [i, r] of (Array.isArray(p.tool_receipts) ? p.tool_receipts : []).entries()) {
    if (!isObject(r)) continue;
    if ('envelope_version' in r && r.hash_algorithm === 'BLAKE3')
      found.push(`BLAKE3 hashes (tool_receipts[${i}])`);
    const payload = isObject(r.payload) ? r.payload : r;
    for (const key of ['args_disclosure', 'result_disclosure'])
      if (payload[key] !== undefined) found.push(`selective disclosure (tool_receipts[${i}].${key})`);
  }
  if (found.length > 0)
    failWith('UNSUPPORTED_FEATURE', `not supported by this verifier: ${found.join('; ')}`);
}

/** Claw Bureau's event hash: JSON.stringify of the header in exactly this key order (eventHash). */
async function eventHash(e: Obj): Promise<string> {
  return sha256B64u(
    JSON.stringify({
      event_id: e.event_id,
      run_id: e.run_id,
      event_type: e.event_type,
      timestamp: e.timestamp,
      payload_hash_b64u: e.payload_hash_b64u,
      prev_hash_b64u: e.prev_hash_b64u,
    }),
  );
}

async function checkChain(events: unknown): Promise<Chain> {
  const byHash = new Map<string, Obj>();
  const list: Obj[] = [];
  if (events === undefined) return { runId: null, list, byHash };
  if (!Array.isArray(events) || events.length === 0)
    failWith('EVENT_CHAIN_INVALID', 'event_chain must be a non-empty array');
  let prev: string | null = null;
  let runId: string | null = null;
  const ids = new Set<unknown>();
  for (const [i, e] of (events as unknown[]).entries()) {
    if (!isObject(e)) failWith('EVENT_CHAIN_INVALID', `event_chain[${i}] is not an object`);
    const ev = e as Obj;
    const fields = ['event_id', 'run_id', 'event_type', 'timestamp', 'payload_hash_b64u', 'event_hash_b64u'];
    if (
      fields.some((k) => typeof ev[k] !== 'string' || ev[k] === '') ||
      !(ev.prev_hash_b64u === null || typeof ev.prev_hash_b64u === 'string')
    ) {
      failWith('EVENT_CHAIN_INVALID', `event_chain[${i}] lacks a required field`);
    }
    if (ids.has(ev.event_id))
      failWith('EVENT_CHAIN_INVALID', `event_chain[${i}] repeats an earlier event_id`);
    ids.add(ev.event_id);
    runId ??= String(ev.run_id);
    if (ev.run_id !== runId)
      failWith(
        'EVENT_RUN_ID_MISMATCH',
        `event_chain[${i}] belongs to run ${quote(ev.run_id)}, not ${quote(runId)}`,
      );
    if (ev.prev_hash_b64u !== prev) {
      failWith('EVENT_CHAIN_BROKEN', `event_chain[${i}].prev_hash_b64u does not link to the previous event`);
    }
    if ((await eventHash(ev)) !== ev.event_hash_b64u) {
      failWith('EVENT_HASH_MISMATCH', `event_chain[${i}].event_hash_b64u is wrong`);
    }
    const hash = String(ev.event_hash_b64u);
    if (byHash.has(hash)) failWith('EVENT_CHAIN_BROKEN', `event_chain[${i}] repeats an earlier event`);
    byHash.set(hash, ev);
    list.push(ev);
    prev = hash;
  }
  return { runId, list, byHash };
}

async function checkBundle(
  bytes: Uint8Array,
  trust: BrowserTrust,
  twoPerson: TwoPersonCheck,
  expect: BrowserExpectations,
  passed: Passed,
): Promise<string> {
  let text = '';
  let envelope: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    envelope = JSON.parse(text);
  } catch {
    failWith('BUNDLE_ENVELOPE_MALFORMED', 'the bundle is not UTF-8 JSON');
  }
  // JSON.parse keeps a repeated key's last value; whoever reads the text may see the first.
  const duplicate = firstDuplicateKey(text);
  if (duplicate)
    failWith(
      'BUNDLE_ENVELOPE_MALFORMED',
      `duplicate key ${quote(duplicate.key)} in ${duplicate.path} of the bundle: JSON.parse keeps the last value, a reader of the file sees the first`,
    );
  passed('json', `${bytes.length} bytes of JSON, read from this page`);
  const rules = { type: 'proof_bundle', prefix: 'BUNDLE', where: '', now: expect.now ?? new Date() } as const;
  const env = checkEnvelopeFormat(envelope, rules);
  const p = env.payload as Obj;
  checkPayloadShape(p);
  if (p.agent_did !== env.signer_did)
    failWith('AGENT_DID_MISMATCH', 'payload agent_did is not the envelope signer');
  const key = await checkEnvelopeSignature(
    env,
    rules,
    (payload) => sha256B64u(JSON.stringify(payload)),
    null,
  );
  passed('signature', `payload hash (SHA-256) and Ed25519 signature of ${String(env.signer_did)} verify`);
  const signer = trustedKey(trust.keys, key, String(env.issued_at));
  if (!signer) failWith('BUNDLE_SIGNER_UNTRUSTED', `bundle signer ${String(env.signer_did)} is not trusted`);
  passed(
    'signer',
    `the signer is key ${String(signer.kid)} of this server's JWKS${signer.retired_at ? `, retired ${String(signer.retired_at)}` : ''}`,
  );
  checkFeatures(p);
  const chain = await checkChain(p.event_chain);
  passed('event_chain', `${chain.list.length} events, each hashed and linked to the one before`);
  const receipts = await checkGatewayReceipts(p.receipts, trust.gateway_signers, chain);
  passed(
    'gateway_receipts',
    receipts === 0
      ? 'no gateway receipts in this bundle'
      : `${receipts} gateway receipt${receipts === 1 ? '' : 's'}: signed by an allowlisted gateway, bound to this job's events`,
    receipts === 0 ? null : true,
  );
  const approvals = checkApprovalReceipts(p.human_approval_receipts, p.agent_did, chain);
  passed(
    'approval_receipts',
    approvals.length === 0
      ? 'no human approval receipts'
      : `${approvals.length} approval receipt${approvals.length === 1 ? '' : 's'} of this agent: human_approval_receipt.v1, each bound to an event of this job`,
    approvals.length === 0 ? null : true,
  );
  await checkOurBindings(p, chain, String(env.issued_at), approvals, twoPerson, passed);
  const serverOnly = SERVER_ONLY.filter((k) => p[k] !== undefined);
  if (serverOnly.length > 0)
    passed(
      'not_checked',
      `not checked in the browser (only the server checks them): ${serverOnly.join(', ')}`,
      null,
    );
  if (expect.bundleId !== undefined) {
    // Another genuine bundle (say, of a job whose approvals were in order) under this link's id.
    if (p.bundle_id !== expect.bundleId)
      failWith(
        'BUNDLE_ID_MISMATCH',
        `this page is for ${quote(expect.bundleId)} but the bundle is ${quote(p.bundle_id)}`,
      );
    passed('bundle_id', `the bundle is ${String(p.bundle_id)}, as this page's link names it`);
  }
  return `${chain.list.length} events, ${approvals.length} approval receipts, ${receipts} gateway receipts`;
}
