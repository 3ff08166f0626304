/**
 * The bundle page's own verifier, run in the reader's browser over the exact bytes the page
 * carries, with WebCrypto (SHA-256, Ed25519) against the server's JWKS that the page embeds.
 * It repeats, without trusting the server's answer, what `verifyBundle` checks of a bundle's
 * integrity and approvals (src/proofs/verify-bundle.ts): envelope, payload hash, signature,
 * signer, event chain, gateway receipts, event payloads, plan, token and approval bindings, the
 * steps job_created planned, and each gated step's two-person rule against the chain, with the
 * server's reasons. Not here: the signed policy (bundles name it by hash; the server and
 * `bundle verify` recompute each step's rule from it) and what the page lists as "not checked
 * in the browser".
 *
 * How it ships: the page inlines this module's compiled text (see page-script.ts), so the code a
 * browser runs is the code typechecked and tested here. Hence its one rule: no imports but
 * `import type` (erased), and only globals that browsers and Node share (crypto.subtle,
 * TextEncoder, TextDecoder, atob, btoa). The snapshot's own consistency is not re-written here:
 * the page inlines src/proofs/two-person.ts the same way and passes its `checkTwoPerson` in.
 */

import type { ApprovalSnapshot, TwoPersonFailure } from '../../proofs/two-person.js';

export type TwoPersonCheck = (snapshot: ApprovalSnapshot) => TwoPersonFailure | null;

export interface TrustedJwk {
  kty?: unknown;
  crv?: unknown;
  x?: unknown;
  kid?: unknown;
  /** Rotated-out keys: trusted only for bundles issued no later (as `KeyRing.trusts`). */
  retired_at?: unknown;
}

/** What the page embeds as the server's trust: its JWKS and its allowlisted gateway signers. */
export interface BrowserTrust {
  keys: TrustedJwk[];
  gateway_signers: string[];
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

type Passed = (id: string, message: string, ok?: boolean | null) => void;
type Obj = Record<string, unknown>;
interface Chain {
  runId: string | null;
  list: Obj[];
  byHash: Map<string, Obj>;
}

/** Verifies `bytes` (the stored envelope) and says why not, with the first named reason. */
export async function verifyInBrowser(
  bytes: Uint8Array,
  trust: BrowserTrust,
  twoPerson: TwoPersonCheck,
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
    const message = await checkBundle(bytes, trust, twoPerson, passed);
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

function failWith(reason: string, message: string): never {
  throw Object.assign(new Error(message), { bundleFailure: reason });
}

function unavailable(message: string): never {
  throw Object.assign(new Error(message), { unavailable: true });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function b64u(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Strict: only the canonical unpadded form, as `fromB64u` on the server. */
function fromB64u(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) throw new TypeError('not base64url');
  const bin = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4));
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  if (b64u(bytes) !== text) throw new TypeError('not canonical base64url');
  return bytes;
}

async function sha256B64u(text: string): Promise<string> {
  return b64u(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))));
}

/**
 * RFC 8785 (JCS) for what event payloads hold: strings, finite numbers, booleans, null,
 * arrays and objects. Keys sort by UTF-16 code units (the default sort); numbers and strings
 * print as ECMAScript's JSON.stringify does, as the RFC specifies.
 */
function jcs(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('a number that JSON cannot hold');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => jcs(v)).join(',')}]`;
  if (typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${jcs(o[k])}`)
      .join(',')}}`;
  }
  throw new TypeError(`a ${typeof value} has no JSON form`);
}

function base58Decode(text: string): Uint8Array {
  const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
  let n = 0n;
  for (const ch of text) {
    const digit = alphabet.indexOf(ch);
    if (digit < 0) throw new TypeError('not base58');
    n = n * 58n + BigInt(digit);
  }
  const out: number[] = [];
  for (; n > 0n; n /= 256n) out.unshift(Number(n % 256n));
  for (const ch of text) {
    if (ch !== '1') break;
    out.unshift(0);
  }
  return Uint8Array.from(out);
}

/** The raw Ed25519 key of a did:key (multicodec 0xed01, base58btc), as `publicKeyFromDidKey`. */
function publicKeyFromDidKey(did: string): Uint8Array {
  const match = /^did:key:z([1-9A-HJ-NP-Za-km-z]+)$/.exec(did);
  if (!match) throw new TypeError('not a base58btc did:key');
  const bytes = base58Decode(match[1]!);
  if (bytes.length !== 34 || bytes[0] !== 0xed || bytes[1] !== 0x01)
    throw new TypeError('not an Ed25519 did:key');
  return bytes.slice(2);
}

/** Ed25519 over the UTF-8 bytes of `message`; a browser without Ed25519 is "unavailable", not a fail. */
async function verifyEd25519(
  publicKey: Uint8Array,
  message: string,
  signature: Uint8Array,
): Promise<boolean> {
  let key;
  try {
    key = await crypto.subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
  } catch (err) {
    if ((err as { name?: string }).name === 'NotSupportedError') {
      unavailable('this browser has no Ed25519 in WebCrypto');
    }
    return false;
  }
  try {
    return await crypto.subtle.verify({ name: 'Ed25519' }, key, signature, new TextEncoder().encode(message));
  } catch {
    return false;
  }
}

/**
 * A Claw Bureau envelope: shape, algorithms, payload hash (computed by `hash`), signer did:key
 * and signature, in `verifyEnvelope`'s order and with its reasons behind `prefix`. Answers the
 * signer's raw public key.
 */
async function checkEnvelope(
  envelope: unknown,
  type: string,
  prefix: string,
  where: string,
  hash: (payload: unknown) => Promise<string>,
  allowedSigners: string[] | null,
): Promise<Uint8Array> {
  const fail = (reason: string, message: string) => failWith(`${prefix}_${reason}`, `${where}${message}`);
  if (!isObject(envelope)) fail('ENVELOPE_MALFORMED', 'envelope is not an object');
  const e = envelope as Record<string, unknown>;
  if (e.envelope_version !== '1') fail('ENVELOPE_MALFORMED', 'envelope_version must be "1"');
  if (e.envelope_type !== type) fail('ENVELOPE_TYPE_MISMATCH', `envelope_type must be "${type}"`);
  if (e.hash_algorithm !== 'SHA-256' || e.algorithm !== 'Ed25519') {
    fail('UNSUPPORTED_ALGORITHM', 'only SHA-256 and Ed25519 are accepted');
  }
  for (const field of ['payload_hash_b64u', 'signature_b64u']) {
    const v = e[field];
    if (typeof v !== 'string' || !/^[A-Za-z0-9_-]+$/.test(v))
      fail('ENVELOPE_MALFORMED', `${field} must be base64url`);
  }
  if (typeof e.signer_did !== 'string' || typeof e.issued_at !== 'string' || !('payload' in e)) {
    fail('ENVELOPE_MALFORMED', 'signer_did, issued_at and payload are required');
  }
  if (Number.isNaN(Date.parse(String(e.issued_at))))
    fail('ENVELOPE_MALFORMED', 'issued_at is not a date-time');
  let actual = '';
  try {
    actual = await hash(e.payload);
  } catch {
    fail('ENVELOPE_MALFORMED', 'payload cannot be hashed');
  }
  if (actual !== e.payload_hash_b64u) fail('HASH_MISMATCH', 'payload does not match payload_hash_b64u');
  let publicKey: Uint8Array = new Uint8Array();
  try {
    publicKey = publicKeyFromDidKey(String(e.signer_did));
  } catch {
    fail('SIGNER_DID_INVALID', 'signer_did is not an Ed25519 did:key');
  }
  if (allowedSigners && !allowedSigners.includes(String(e.signer_did))) {
    fail('SIGNER_UNTRUSTED', 'signer_did is not a trusted signer');
  }
  let signature: Uint8Array = new Uint8Array();
  try {
    signature = fromB64u(String(e.signature_b64u));
  } catch {
    fail('SIGNATURE_INVALID', 'signature_b64u is not canonical base64url');
  }
  if (!(await verifyEd25519(publicKey, String(e.payload_hash_b64u), signature))) {
    fail('SIGNATURE_INVALID', 'signature does not verify over payload_hash_b64u');
  }
  return publicKey;
}

/** The JWKS key that vouches for `publicKey` at `issuedAt`, as `KeyRing.trusts` decides; else null. */
function trustedKey(trust: BrowserTrust, publicKey: Uint8Array, issuedAt: string): TrustedJwk | null {
  const x = b64u(publicKey);
  for (const k of trust.keys) {
    if (k.kty !== 'OKP' || k.crv !== 'Ed25519' || k.x !== x) continue;
    if (k.retired_at === undefined) return k;
    const until = Date.parse(String(k.retired_at));
    if (!Number.isNaN(until) && Date.parse(issuedAt) <= until) return k;
  }
  return null;
}

/** Claw Bureau's event hash: JSON.stringify of the header in exactly this key order (eventHash). */
async function eventHash(e: Record<string, unknown>): Promise<string> {
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
    runId ??= String(ev.run_id);
    if (ev.run_id !== runId)
      failWith(
        'EVENT_RUN_ID_MISMATCH',
        `event_chain[${i}] belongs to run ${String(ev.run_id)}, not ${runId}`,
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

async function checkGatewayReceipts(receipts: unknown, trust: BrowserTrust, chain: Chain): Promise<number> {
  if (receipts === undefined) return 0;
  if (!Array.isArray(receipts) || receipts.length === 0)
    failWith('BUNDLE_PAYLOAD_INVALID', 'receipts must be a non-empty array');
  for (const [i, r] of (receipts as unknown[]).entries()) {
    await checkEnvelope(
      r,
      'gateway_receipt',
      'RECEIPT',
      `receipts[${i}]: `,
      (payload) => sha256B64u(JSON.stringify(payload)),
      trust.gateway_signers,
    );
    const binding = ((r as Obj).payload as Obj).binding;
    if (binding === undefined) continue;
    if (!isObject(binding))
      failWith('RECEIPT_BINDING_MISMATCH', `receipts[${i}].payload.binding is not an object`);
    const b = binding as Obj;
    if (b.run_id !== undefined && b.run_id !== chain.runId) {
      failWith(
        'RECEIPT_BINDING_MISMATCH',
        `receipts[${i}] is bound to run ${String(b.run_id)}, not ${chain.runId}`,
      );
    }
    if (b.event_hash_b64u !== undefined && !chain.byHash.has(String(b.event_hash_b64u))) {
      failWith('RECEIPT_BINDING_MISMATCH', `receipts[${i}] is bound to an event not in the chain`);
    }
  }
  return (receipts as unknown[]).length;
}

function sortedUnique(values: unknown[]): string[] {
  return [...new Set(values.map(String))].sort();
}

/** token_scope_hash_b64u as `tokenScopeHash` computes it (JCS of the authorization-relevant claims). */
async function tokenScopeHash(cst: Obj, policyHash: string, missionId: string): Promise<string> {
  return sha256B64u(
    jcs({
      token_version: '1',
      sub: cst.sub,
      aud: sortedUnique(Array.isArray(cst.aud) ? cst.aud : [cst.aud]),
      scope: sortedUnique(Array.isArray(cst.scope) ? cst.scope : []),
      policy_hash_b64u: policyHash,
      mission_id: missionId,
    }),
  );
}

/** An untrusted value in a message, as the server words it (`quote`): JSON-quoted and clipped. */
function quote(value: unknown): string {
  const text = JSON.stringify(typeof value === 'string' ? value : String(value)) ?? '""';
  return text.length > 90 ? `${text.slice(0, 86)}…"` : text;
}

/** A step's `token_minted` event: its chained header and its payload. */
interface Mint {
  header: Obj;
  body: Obj;
}

/** Each step's `token_minted` events, in chain order (as the server's `mintsByStep`). */
function mintsByStep(chain: Chain, decoded: Map<string, Obj>): Map<string, Mint[]> {
  const out = new Map<string, Mint[]>();
  for (const header of chain.list) {
    if (header.event_type !== 'token_minted') continue;
    const body = decoded.get(String(header.event_hash_b64u))!;
    const step = String(body.step);
    out.set(step, [...(out.get(step) ?? []), { header, body }]);
  }
  return out;
}

/**
 * Everything a claw-approvals bundle adds to the Claw Bureau format, as the server's
 * `ours.*` checks: event payloads against their hashes, issued_at, policy and plan, each
 * step's CST, each approval receipt; then the steps job_created planned and each gated step's
 * two-person rule. The signed policy is not in the bundle (it is named by hash: clawverify caps
 * payload.metadata at 16 KiB), so its rules are recomputed by the server and `bundle verify`.
 */
async function checkOurBindings(
  payload: Obj,
  chain: Chain,
  issuedAt: string,
  twoPerson: TwoPersonCheck,
  passed: Passed,
): Promise<void> {
  const metadata = isObject(payload.metadata) ? payload.metadata : {};
  const ours = metadata.claw_approvals as Obj | undefined;
  const payloads = metadata.event_payloads;
  if (ours === undefined && payloads === undefined) {
    passed('bindings', 'not a claw-approvals bundle: no policy, plan or token bindings to check', null);
    return;
  }
  if (!isObject(ours) || !Array.isArray(payloads) || !Array.isArray(ours.steps) || !isObject(ours.policy)) {
    failWith('BUNDLE_PAYLOAD_INVALID', 'metadata.claw_approvals or metadata.event_payloads is malformed');
  }
  const o = ours as Obj;
  const policy = o.policy as Obj;
  const steps = o.steps as Obj[];
  if (o.job_id !== chain.runId)
    failWith('EVENT_RUN_ID_MISMATCH', 'metadata names another job than the event chain');
  if (chain.list.at(-1)?.timestamp !== issuedAt) {
    failWith('BUNDLE_ISSUED_AT_MISMATCH', 'issued_at is not the time of the last event');
  }
  const payloadOf = new Map<unknown, unknown>();
  for (const p of payloads as Obj[]) payloadOf.set(p.event_id, p.payload);
  const decoded = new Map<string, Obj>();
  for (const e of chain.list) {
    if (!payloadOf.has(e.event_id))
      failWith('EVENT_PAYLOAD_MISMATCH', `event ${String(e.event_id)} has no payload in metadata`);
    const body = payloadOf.get(e.event_id);
    if ((await sha256B64u(jcs(body))) !== e.payload_hash_b64u) {
      failWith('EVENT_PAYLOAD_MISMATCH', `event ${String(e.event_id)}'s payload does not match its hash`);
    }
    decoded.set(String(e.event_hash_b64u), body as Obj);
  }
  if (payloadOf.size !== chain.list.length) {
    failWith('EVENT_PAYLOAD_MISMATCH', 'metadata carries payloads of events not in the chain');
  }
  passed('event_payloads', `every event's payload hashes (JCS, SHA-256) to the value chained`);
  passed('issued_at', `issued at the last event, ${issuedAt}`);

  const policyHash = String(policy.policy_hash_b64u);
  const planHash = String(o.plan_hash_b64u);
  const first = chain.list[0];
  const created = first ? decoded.get(String(first.event_hash_b64u)) : undefined;
  if (!first || !created || first.event_type !== 'job_created') {
    failWith('EVENT_CHAIN_INVALID', 'the chain must start with job_created');
  }
  const job = created as Obj;
  if (job.policy_hash_b64u !== policyHash)
    failWith('POLICY_BINDING_MISMATCH', 'job_created names another policy');
  if (job.plan_hash_b64u !== planHash || (await sha256B64u(jcs(job.plan))) !== planHash) {
    failWith('PLAN_BINDING_MISMATCH', 'the plan does not hash to plan_hash_b64u');
  }
  passed('plan', `the plan hashes to ${planHash}, and job_created pins it with policy ${policyHash}`);
  passed(
    'policy',
    `policy ${String(policy.name)} is named by its hash only: the signed policy is not in the bundle, so its rules are recomputed by the server and by \`bundle verify\`, not here`,
    null,
  );

  const mints = mintsByStep(chain, decoded);
  const scopeOfStep = new Map<string, string>();
  let tokens = 0;
  for (const s of steps) {
    if (s.cst === null) continue;
    const cst = s.cst as Obj;
    const m = mints.get(String(s.step))?.find((x) => x.body.jti === cst.jti)?.body;
    const scope = Array.isArray(cst.scope) ? cst.scope : [];
    const recomputed = await tokenScopeHash(cst, policyHash, String(o.job_id));
    const bound =
      m !== undefined &&
      recomputed === cst.token_scope_hash_b64u &&
      m.token_scope_hash_b64u === recomputed &&
      m.token_hash === cst.token_hash &&
      m.policy_hash_b64u === policyHash &&
      scope.includes(`plan:${planHash}`) &&
      scope.includes(`step:${String(s.step)}`) &&
      scope.includes(`tool:${String(s.tool)}`);
    if (!bound) failWith('TOKEN_BINDING_MISMATCH', `step ${String(s.step)}'s CST binding does not recompute`);
    scopeOfStep.set(String(s.step), recomputed);
    tokens += 1;
  }
  passed(
    'tokens',
    `${tokens} step token${tokens === 1 ? '' : 's'}: each scope hash recomputes and matches its mint event`,
  );

  const approvals = payload.human_approval_receipts;
  if (approvals !== undefined) {
    if (!Array.isArray(approvals))
      failWith('APPROVAL_RECEIPT_INVALID', 'human_approval_receipts must be an array');
    for (const [i, r] of (approvals as unknown[]).entries()) {
      if (!isObject(r) || r.agent_did !== payload.agent_did || r.receipt_version !== '1') {
        failWith(
          'APPROVAL_RECEIPT_INVALID',
          `human_approval_receipts[${i}] is malformed or names another agent`,
        );
      }
      const rr = r as Obj;
      const binding = isObject(rr.binding) ? rr.binding : {};
      const event =
        typeof binding.event_hash_b64u === 'string' ? decoded.get(binding.event_hash_b64u) : undefined;
      if (binding.run_id !== chain.runId || !event) {
        failWith(
          'APPROVAL_RECEIPT_BINDING_MISMATCH',
          `human_approval_receipts[${i}] does not point at an event of this job`,
        );
      }
      const ev = event as Obj;
      if (rr.approval_type !== 'auto_approve' && ev.user_id !== rr.approver_subject) {
        failWith(
          'APPROVAL_RECEIPT_BINDING_MISMATCH',
          `human_approval_receipts[${i}]'s approver is not the one in its event`,
        );
      }
      if (rr.policy_hash_b64u !== policyHash || binding.policy_hash !== policyHash) {
        failWith('POLICY_BINDING_MISMATCH', `human_approval_receipts[${i}] names another policy`);
      }
      if (rr.plan_hash_b64u !== planHash)
        failWith('PLAN_BINDING_MISMATCH', `human_approval_receipts[${i}] names another plan`);
      const scope = scopeOfStep.get(String(ev.step));
      if (
        rr.approval_type !== 'explicit_deny' &&
        (scope === undefined || rr.scope_hash_b64u !== scope || binding.token_scope_hash_b64u !== scope)
      ) {
        failWith(
          'TOKEN_BINDING_MISMATCH',
          `human_approval_receipts[${i}]'s scope hash is not its step's CST`,
        );
      }
    }
    const n = (approvals as unknown[]).length;
    passed(
      'approval_receipts',
      `${n} approval receipt${n === 1 ? '' : 's'}, each bound to its event, policy, plan and token scope`,
    );
  }

  const planned = plannedSteps(job, steps);
  const gated = planned.filter((p) => p.gate === 'gated').length;
  passed(
    'steps',
    `the metadata's ${planned.length} steps are job_created's, ${gated} gated with a pinned rule`,
  );
  checkApprovalSnapshots(planned, {
    steps,
    chain,
    decoded,
    mints,
    requesterId: o.requester_id,
    approvals: Array.isArray(approvals) ? (approvals as Obj[]) : [],
    twoPerson,
    passed,
  });
}

// The two-person rule, as the server checks it (src/proofs/verify/planned-steps.ts and
// two-person-check.ts): the same rule with the same reasons, written for the page.

/** A step as job_created planned it: the chain, not the metadata beside it, says which steps needed approval and under which rule. */
interface PlannedStep {
  id: string;
  tool: string;
  gate: 'auto' | 'gated';
  rule?: Obj;
}

const isPlannedStep = (v: unknown): v is PlannedStep =>
  isObject(v) &&
  typeof v.id === 'string' &&
  typeof v.tool === 'string' &&
  (v.gate === 'auto' || v.gate === 'gated') &&
  (v.rule === undefined || isObject(v.rule));

/**
 * job_created's planned steps, which must be the metadata's steps, in order, with the same tool
 * and gate: a step dropped from or re-gated in the metadata would escape the two-person check.
 */
function plannedSteps(job: Obj, steps: Obj[]): PlannedStep[] {
  const planned = job.steps;
  if (!Array.isArray(planned) || !planned.every(isPlannedStep))
    failWith('BUNDLE_PAYLOAD_INVALID', 'job_created.steps is not a list of {id, tool, gate, rule?}');
  if (steps.length !== planned.length)
    failWith('PLAN_BINDING_MISMATCH', 'metadata lists other steps than job_created planned');
  for (const [i, p] of planned.entries()) {
    const s = steps[i]!;
    if (s.step !== p.id || s.tool !== p.tool || s.gate !== p.gate)
      failWith(
        'PLAN_BINDING_MISMATCH',
        `metadata step ${quote(s.step)} is not step ${quote(p.id)} as job_created planned it (tool, gate)`,
      );
    if (p.gate === 'gated' && p.rule === undefined)
      failWith('BUNDLE_PAYLOAD_INVALID', `job_created pins no rule for gated step ${quote(p.id)}`);
  }
  return planned;
}

/** A rule's two-person fields as comparable text (a missing field reads as null), as `twoPersonRuleText`. */
function ruleText(rule: unknown): string {
  const r = isObject(rule) ? rule : {};
  const fields = [
    'required_approvals',
    'allowed_approver_groups',
    'distinct_groups',
    'allow_requester_approval',
  ];
  return jcs(Object.fromEntries(fields.map((k) => [k, r[k] ?? null])));
}

/** C0 and C1 controls, line separators and bidi controls: what could rewrite the line a reader sees. */
const unprintable = (c: number) =>
  c < 0x20 ||
  (c >= 0x7f && c <= 0x9f) ||
  c === 0x200e ||
  c === 0x200f ||
  (c >= 0x2028 && c <= 0x202e) ||
  (c >= 0x2066 && c <= 0x2069);

/** `checkTwoPerson` words its findings with values from the bundle: escaped and bounded, as the server does. */
function printable(text: string): string {
  const safe = Array.from(text, (ch) => {
    const c = ch.codePointAt(0)!;
    return unprintable(c) ? `\\u${c.toString(16).padStart(4, '0')}` : ch;
  }).join('');
  return safe.length > 300 ? `${safe.slice(0, 299)}…` : safe;
}

interface SnapshotContext {
  /** The metadata's steps, one per planned step (checked by `plannedSteps`). */
  steps: Obj[];
  chain: Chain;
  decoded: Map<string, Obj>;
  mints: Map<string, Mint[]>;
  /** metadata.claw_approvals.requester_id */
  requesterId: unknown;
  approvals: Obj[];
  twoPerson: TwoPersonCheck;
  passed: Passed;
}

/**
 * The snapshot against the chain: it is the record its step's `token_minted` event chained
 * (and dated), under the rule job_created pinned and the job's requester, and each approver it
 * counts is a person whose `approval_recorded` event for this step came before the mint, whom
 * the mint counted for the same group, and whose approval receipt the bundle carries.
 */
function checkSnapshotAgainstChain(snap: Obj, p: PlannedStep, mint: Mint, ctx: SnapshotContext): void {
  const bad = (why: string): never => failWith('APPROVAL_SNAPSHOT_INVALID', `step ${quote(p.id)}: ${why}`);
  if (snap.mint_event_hash_b64u !== mint.header.event_hash_b64u)
    bad('mint_event_hash_b64u is not its token_minted event');
  const { mint_event_hash_b64u: _, ...record } = snap;
  if (jcs(mint.body.approval ?? null) !== jcs(record))
    bad('the snapshot is not the record its token_minted event chained');
  if (snap.evaluated_at !== mint.header.timestamp)
    bad('evaluated_at is not the time of its token_minted event');
  const created = ctx.decoded.get(String(ctx.chain.list[0]!.event_hash_b64u))!;
  if (snap.requester_id !== created.requester_id || snap.requester_id !== ctx.requesterId)
    bad("the requester is not the job's");
  if (ruleText(snap.rule) !== ruleText(p.rule)) bad('the rule is not the one job_created pinned');

  const approvers = snap.approvers as Obj[];
  const mintAt = ctx.chain.list.indexOf(mint.header);
  const counted = Array.isArray(mint.body.counted) ? (mint.body.counted as unknown[]) : [];
  for (const [i, a] of approvers.entries()) {
    const header = ctx.chain.byHash.get(String(a.approval_event_hash_b64u));
    const event = ctx.decoded.get(String(a.approval_event_hash_b64u)) ?? {};
    if (
      header?.event_type !== 'approval_recorded' ||
      ctx.chain.list.indexOf(header) > mintAt ||
      event.step !== p.id ||
      event.user_id !== a.user_id ||
      (event.post_id ?? null) !== a.post_id
    )
      bad(`approver ${quote(a.user_id)} has no approval_recorded event for this step before its mint`);
    const c = counted[i];
    if (
      !isObject(c) ||
      c.user_id !== a.user_id ||
      c.group !== a.counted_for ||
      c.decision_id !== event.decision_id
    )
      bad(`its token_minted event did not count approver ${quote(a.user_id)} for ${quote(a.counted_for)}`);
  }
  if (counted.length !== approvers.length)
    bad('its token_minted event counted more approvers than the snapshot');

  const receipted = ctx.approvals
    .filter(
      (r) =>
        r.approval_type === 'explicit_approve' &&
        ctx.decoded.get(String(isObject(r.binding) ? r.binding.event_hash_b64u : undefined))?.step === p.id,
    )
    .map((r) => String(r.approver_subject))
    .sort();
  const named = approvers.map((a) => String(a.user_id)).sort();
  if (jcs(receipted) !== jcs(named)) bad('its approval receipts name other approvers than the snapshot');
}

const UNRECORDED = 'MINTED_BEFORE_SNAPSHOTS';

/**
 * One step: an auto step, or a gated one that never minted, carries no snapshot; a gated mint
 * carries the one its `token_minted` event chained, which must satisfy its rule. A mint chained
 * before snapshots existed (its payload has no `approval` key) is said, not failed; claiming
 * that for a mint whose event holds a snapshot is stripping it, and fails.
 */
function checkStepApproval(
  s: Obj,
  p: PlannedStep,
  ctx: SnapshotContext,
): 'checked' | 'unrecorded' | 'not_needed' {
  const bad = (why: string): never => failWith('APPROVAL_SNAPSHOT_INVALID', `step ${quote(p.id)}: ${why}`);
  const mints = ctx.mints.get(p.id) ?? [];
  if (mints.length > 1) bad('has more than one token_minted event');
  const mint = mints[0];
  if (mint && mint.body.gate !== p.gate)
    bad(`its token_minted event says gate ${quote(mint.body.gate)}, job_created planned ${p.gate}`);
  const sealed = Object.hasOwn(s, 'approval');
  const unrecorded = s.approval_unrecorded;
  if (unrecorded !== undefined && unrecorded !== UNRECORDED)
    bad(`approval_unrecorded is ${quote(unrecorded)}, not ${UNRECORDED}`);

  if (p.gate === 'auto' || !mint) {
    const why = p.gate === 'auto' ? 'needed no approval' : 'never minted';
    if (sealed && s.approval !== null) bad(`${why} but carries an approval snapshot`);
    if (unrecorded !== undefined) bad(`${why} but says its snapshot went unrecorded`);
    if (mint && (mint.body.approval ?? null) !== null)
      bad('its token_minted event records an approval snapshot for an auto step');
    return 'not_needed';
  }
  if (!sealed || s.approval === null) {
    if (Object.hasOwn(mint.body, 'approval'))
      bad('its token_minted event chained an approval snapshot that the bundle does not carry');
    if (sealed && unrecorded === undefined) bad('a gated step minted without an approval snapshot');
    return 'unrecorded';
  }
  if (unrecorded !== undefined) bad('carries an approval snapshot yet says it went unrecorded');
  const failure = ctx.twoPerson(s.approval as ApprovalSnapshot);
  if (failure) failWith(failure.reason, `step ${quote(p.id)}: ${printable(failure.message)}`);
  checkSnapshotAgainstChain(s.approval as Obj, p, mint, ctx);
  return 'checked';
}

/**
 * Issue 10 section 3 in the page: every gated step that minted carries the snapshot taken when
 * its quorum was evaluated, `checkTwoPerson` (src/proofs/two-person.ts, inlined as it is) finds
 * the rule satisfied, and the snapshot is the one the chain recorded.
 */
function checkApprovalSnapshots(planned: PlannedStep[], ctx: SnapshotContext): void {
  const seen = { checked: [] as string[], unrecorded: [] as string[], not_needed: [] as string[] };
  for (const [i, p] of planned.entries()) seen[checkStepApproval(ctx.steps[i]!, p, ctx)].push(quote(p.id));
  if (seen.checked.length > 0)
    ctx.passed(
      'two_person',
      `two-person rule recomputed from the sealed snapshot for ${seen.checked.join(', ')}`,
    );
  if (seen.unrecorded.length > 0)
    ctx.passed(
      'two_person_unrecorded',
      `${seen.unrecorded.join(', ')}: minted before approval snapshots were sealed, so the two-person rule cannot be recomputed here`,
      null,
    );
  if (seen.checked.length + seen.unrecorded.length === 0)
    ctx.passed('two_person', 'no gated step minted a token: no approval to recompute', null);
}

async function checkBundle(
  bytes: Uint8Array,
  trust: BrowserTrust,
  twoPerson: TwoPersonCheck,
  passed: Passed,
): Promise<string> {
  let envelope: unknown;
  try {
    envelope = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    failWith('BUNDLE_ENVELOPE_MALFORMED', 'the bundle is not UTF-8 JSON');
  }
  passed('json', `${bytes.length} bytes of JSON, read from this page`);
  const key = await checkEnvelope(
    envelope,
    'proof_bundle',
    'BUNDLE',
    '',
    (payload) => sha256B64u(JSON.stringify(payload)),
    null,
  );
  const env = envelope as Obj;
  passed('signature', `payload hash (SHA-256) and Ed25519 signature of ${String(env.signer_did)} verify`);
  const signer = trustedKey(trust, key, String(env.issued_at));
  if (!signer) failWith('BUNDLE_SIGNER_UNTRUSTED', `bundle signer ${String(env.signer_did)} is not trusted`);
  passed(
    'signer',
    `the signer is key ${String(signer.kid)} of this server's JWKS${signer.retired_at ? `, retired ${String(signer.retired_at)}` : ''}`,
  );
  if (!isObject(env.payload)) failWith('BUNDLE_PAYLOAD_INVALID', 'payload is not an object');
  const p = env.payload as Obj;
  if (p.bundle_version !== '1' || typeof p.bundle_id !== 'string' || p.bundle_id === '') {
    failWith('BUNDLE_PAYLOAD_INVALID', 'bundle_version must be "1" and bundle_id a string');
  }
  if (p.agent_did !== env.signer_did)
    failWith('AGENT_DID_MISMATCH', 'payload agent_did is not the envelope signer');
  const chain = await checkChain(p.event_chain);
  passed('event_chain', `${chain.list.length} events, each hashed and linked to the one before`);
  const receipts = await checkGatewayReceipts(p.receipts, trust, chain);
  passed(
    'gateway_receipts',
    receipts === 0
      ? 'no gateway receipts in this bundle'
      : `${receipts} gateway receipt${receipts === 1 ? '' : 's'}: signed by an allowlisted gateway, bound to this job's events`,
    receipts === 0 ? null : true,
  );
  await checkOurBindings(p, chain, String(env.issued_at), twoPerson, passed);
  const known = [
    'agent_did',
    'bundle_id',
    'bundle_version',
    'event_chain',
    'human_approval_receipts',
    'metadata',
    'receipts',
  ];
  const unknown = Object.keys(p).filter((k) => !known.includes(k));
  if (unknown.length > 0) {
    passed(
      'not_checked',
      `not checked in the browser (only the server checks them): ${unknown.join(', ')}`,
      null,
    );
  }
  const approvals = Array.isArray(p.human_approval_receipts) ? p.human_approval_receipts.length : 0;
  return `${chain.list.length} events, ${approvals} approval receipts, ${receipts} gateway receipts`;
}
