/**
 * The bundle page's own verifier, run in the reader's browser over the exact bytes the page
 * carries, with WebCrypto (SHA-256, Ed25519) against the server's JWKS that the page embeds.
 * It repeats what `verifyBundle` checks (src/proofs/verify-bundle.ts) without trusting the
 * server's answer: envelope, payload hash, signature, signer, event chain, gateway receipts,
 * event payloads, every policy, plan, token and approval binding, and the two-person rule.
 *
 * How it ships: the page inlines this module's compiled text (see page-script.ts), so the code a
 * browser runs is the code typechecked and tested here. Hence its one rule: no imports but
 * `import type` (erased), and only globals that browsers and Node share (crypto.subtle,
 * TextEncoder, TextDecoder, atob, btoa). The two-person rule is not re-written here: the page
 * inlines src/proofs/two-person.ts the same way and passes its `checkTwoPerson` in.
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

/**
 * Everything a claw-approvals bundle adds to the Claw Bureau format, as `checkOurBindings`:
 * event payloads against their hashes, issued_at, policy and plan, each step's CST, each
 * approval receipt; then the signed policy and each gated step's two-person rule.
 */
async function checkOurBindings(
  payload: Obj,
  chain: Chain,
  issuedAt: string,
  trust: BrowserTrust,
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

  if (policy.envelope !== undefined) {
    try {
      const key = await checkEnvelope(
        policy.envelope,
        'work_policy_contract',
        'POLICY',
        'policy.envelope: ',
        (p) => sha256B64u(jcs(p)),
        null,
      );
      const env = policy.envelope as Obj;
      if (env.payload_hash_b64u !== policyHash)
        failWith('POLICY_BINDING_MISMATCH', 'policy.envelope is another policy');
      if (!trustedKey(trust, key, String(env.issued_at)))
        failWith('POLICY_BINDING_MISMATCH', "policy.envelope's signer is not in this server's JWKS");
    } catch (err) {
      const failure = (err as { bundleFailure?: string }).bundleFailure;
      if (!failure) throw err;
      failWith('POLICY_BINDING_MISMATCH', (err as Error).message);
    }
    passed('policy', `the signed policy envelope hashes to ${policyHash} and is signed by this server's key`);
  }

  const minted = new Map<string, Obj>();
  for (const body of decoded.values()) {
    if (typeof body.jti === 'string' && 'token_scope_hash_b64u' in body) minted.set(String(body.step), body);
  }
  const scopeOfStep = new Map<string, string>();
  let tokens = 0;
  for (const s of steps) {
    if (s.cst === null) continue;
    const cst = s.cst as Obj;
    const m = minted.get(String(s.step));
    const scope = Array.isArray(cst.scope) ? cst.scope : [];
    const recomputed = await tokenScopeHash(cst, policyHash, String(o.job_id));
    const bound =
      m !== undefined &&
      recomputed === cst.token_scope_hash_b64u &&
      m.token_scope_hash_b64u === recomputed &&
      m.jti === cst.jti &&
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
  await checkApprovalSnapshots(steps, job, decoded, String(o.requester_id), twoPerson, passed);
}

/**
 * Each gated step that minted carries the approval snapshot taken at quorum: `checkTwoPerson`
 * (src/proofs/two-person.ts, inlined as it is) must find its rule satisfied, the rule must be
 * the one job_created pinned, the snapshot (less its own mint hash) the record its token_minted
 * event chained, and each counted approver one with an approval_recorded event for the step.
 */
async function checkApprovalSnapshots(
  steps: Obj[],
  job: Obj,
  decoded: Map<string, Obj>,
  requesterId: string,
  twoPerson: TwoPersonCheck,
  passed: Passed,
): Promise<void> {
  const fail = (step: unknown, why: string) =>
    failWith('APPROVAL_SNAPSHOT_INVALID', `step ${String(step)}: ${why}`);
  const planned = new Map<unknown, Obj>();
  for (const s of Array.isArray(job.steps) ? (job.steps as Obj[]) : []) planned.set(s.id, s);
  const checked: string[] = [];
  const unrecorded: string[] = [];
  for (const s of steps) {
    if (s.gate !== 'gated' || s.cst === null) continue;
    // Sealed before snapshots existed (the seal says so, or the key is absent): said, not failed.
    if (!('approval' in s) || (s.approval === null && s.approval_unrecorded === 'MINTED_BEFORE_SNAPSHOTS')) {
      unrecorded.push(String(s.step));
      continue;
    }
    if (!isObject(s.approval)) fail(s.step, 'a gated step minted without an approval snapshot');
    const snap = s.approval as Obj;
    const failure = twoPerson(snap as unknown as ApprovalSnapshot);
    if (failure) failWith(failure.reason, `step ${String(s.step)}: ${failure.message}`);
    const pinned = planned.get(s.step)?.rule;
    const rule = isObject(snap.rule) ? snap.rule : {};
    const ruleKeys = [
      'required_approvals',
      'allowed_approver_groups',
      'distinct_groups',
      'allow_requester_approval',
    ];
    if (!isObject(pinned) || ruleKeys.some((k) => jcs(rule[k] ?? null) !== jcs(pinned[k] ?? null))) {
      fail(s.step, 'the rule is not the one job_created pinned');
    }
    if (snap.requester_id !== requesterId) fail(s.step, "the requester is not the job's");
    const mint = decoded.get(String(snap.mint_event_hash_b64u));
    if (!mint || mint.step !== s.step || !('token_scope_hash_b64u' in mint)) {
      fail(s.step, 'mint_event_hash_b64u is not its token_minted event');
    }
    const { mint_event_hash_b64u: _mintHash, ...record } = snap;
    if (jcs((mint as Obj).approval ?? null) !== jcs(record)) {
      fail(s.step, 'the snapshot is not the record its token_minted event chained');
    }
    for (const a of Array.isArray(snap.approvers) ? (snap.approvers as Obj[]) : []) {
      const recorded = decoded.get(String(a.approval_event_hash_b64u));
      if (
        !recorded ||
        recorded.step !== s.step ||
        recorded.user_id !== a.user_id ||
        (a.post_id !== null && recorded.post_id !== a.post_id)
      ) {
        fail(s.step, `approver ${String(a.user_id)} has no approval_recorded event for this step`);
      }
    }
    checked.push(String(s.step));
  }
  if (checked.length > 0) {
    passed('two_person', `two-person rule recomputed from the sealed snapshot for ${checked.join(', ')}`);
  }
  if (unrecorded.length > 0) {
    passed(
      'two_person_unrecorded',
      `${unrecorded.join(', ')}: minted before approval snapshots were sealed, so the two-person rule cannot be recomputed here`,
      null,
    );
  }
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
  await checkOurBindings(p, chain, String(env.issued_at), trust, twoPerson, passed);
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
