import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { sealEnvelope } from '../../src/crypto/envelope.js';
import { type BrowserTrust, verifyInBrowser } from '../../src/http/bundle-page/browser-verify.js';
import { checkTwoPerson } from '../../src/proofs/two-person.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import { type BundleTrust, verifyBundle } from '../../src/proofs/verify-bundle.js';
import type { SigningKey } from '../../src/tokens/signing-key.js';
import { type SealedBundleApp, sealedBundleApp } from '../browser/sealed-bundle-app.js';
import { dialectName } from '../helpers/db.js';
import { U } from '../helpers/engine.js';
import { newKey } from '../helpers/state.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test mutations reach anywhere in a bundle

/**
 * The page's verifier, run here under Node's WebCrypto (the same API the browser has) on real
 * sealed bundles and on deliberately broken ones signed with the trusted key: each fails with
 * its named reason, and where `verifyBundle` makes the same check it names the same reason.
 */
describe(`the bundle page's in-browser verifier (${dialectName})`, () => {
  let s: SealedBundleApp;
  let browserTrust: BrowserTrust;
  let serverTrust: BundleTrust;
  let key: SigningKey;

  beforeAll(async () => {
    s = await sealedBundleApp();
    const ctx = s.engine.ctx;
    key = ctx.keyRing.active;
    browserTrust = { keys: ctx.keyRing.jwks.keys, gateway_signers: [...ctx.gatewaySigners] };
    serverTrust = { trustsSigner: ctx.keyRing.trusts, gatewaySigners: ctx.gatewaySigners };
  });
  afterAll(async () => {
    await s?.close();
  });
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  const bytes = (text: string) => new TextEncoder().encode(text);
  const inBrowser = (text: string, trust = browserTrust) =>
    verifyInBrowser(bytes(text), trust, checkTwoPerson);

  /** The stored bundle with `mutate` applied to its payload, signed again by `signer` (the trusted key). */
  function resigned(mutate: (p: Obj) => void, signer: SigningKey = key): string {
    const env = JSON.parse(s.stored) as Obj;
    mutate(env.payload);
    return JSON.stringify(
      sealEnvelope({
        type: 'proof_bundle',
        payload: env.payload,
        payloadHashB64u: bundlePayloadHash(env.payload),
        key: signer,
        issuedAt: new Date(env.issued_at),
      }),
    );
  }

  const step = (p: Obj, id: string) => (p.metadata.claw_approvals.steps as Obj[]).find((x) => x.step === id)!;

  it('verifies a sealed bundle from its bytes: every check passes, the two-person rule among them', async () => {
    const v = await inBrowser(s.stored);
    expect(v).toMatchObject({
      status: 'verified',
      message: '20 events, 5 approval receipts, 4 gateway receipts',
    });
    expect(v.checks.map((c) => [c.id, c.ok])).toEqual([
      ['json', true],
      ['signature', true],
      ['signer', true],
      ['event_chain', true],
      ['gateway_receipts', true],
      ['event_payloads', true],
      ['issued_at', true],
      ['plan', true],
      ['policy', true],
      ['tokens', true],
      ['approval_receipts', true],
      ['two_person', true],
    ]);
    expect(verifyBundle(JSON.parse(s.stored), serverTrust).ok).toBe(true);
  });

  it.each<[string, () => string, string]>([
    [
      'a flipped byte',
      () => s.stored.replace('"status":"completed"', '"status":"complited"'),
      'BUNDLE_HASH_MISMATCH',
    ],
    [
      'a stranger signs it',
      () => {
        const stranger = newKey();
        return resigned((p) => {
          p.agent_did = stranger.did;
          for (const r of p.human_approval_receipts as Obj[]) r.agent_did = stranger.did;
        }, stranger);
      },
      'BUNDLE_SIGNER_UNTRUSTED',
    ],
    [
      'an event re-dated',
      () => resigned((p) => void (p.event_chain[3].timestamp = '2026-11-21T09:00:00.000Z')),
      'EVENT_HASH_MISMATCH',
    ],
    ['an event dropped', () => resigned((p) => void p.event_chain.splice(4, 1)), 'EVENT_CHAIN_BROKEN'],
    [
      'a planned argument changed',
      () => resigned((p) => void (p.metadata.event_payloads[0].payload.plan[0].args.limit = 21)),
      'EVENT_PAYLOAD_MISMATCH',
    ],
    [
      "a step's token id swapped",
      () => resigned((p) => void (step(p, 'search-kb').cst.jti = step(p, 'read-runbook').cst.jti)),
      'TOKEN_BINDING_MISMATCH',
    ],
    [
      'an approval receipt names another approver',
      () =>
        resigned((p) => {
          const r = (p.human_approval_receipts as Obj[]).find((x) => x.approver_subject === U.alice)!;
          r.approver_subject = U.dmitri;
        }),
      'APPROVAL_RECEIPT_BINDING_MISMATCH',
    ],
  ])('%s: FAIL, the same reason as the server', async (_what, make, reason) => {
    const text = make();
    const v = await inBrowser(text);
    expect(v).toMatchObject({ status: 'failed', reason });
    expect(v.checks.at(-1)).toMatchObject({ id: 'failure', ok: false, reason });
    expect(verifyBundle(JSON.parse(text), serverTrust)).toMatchObject({ ok: false, reason });
  });

  /**
   * The two-person rule from the sealed snapshot, through `checkTwoPerson` itself. (When this was
   * written `verifyBundle` did not yet read steps[].approval: these are the browser's alone.)
   */
  it.each<[string, () => string, string]>([
    [
      'one of two approvers removed from the snapshot',
      () => resigned((p) => void step(p, 'post-summary').approval.approvers.pop()),
      'APPROVAL_QUORUM_NOT_MET',
    ],
    [
      'the requester recorded as an approver',
      () => resigned((p) => void (step(p, 'post-summary').approval.requester_id = U.alice)),
      'APPROVAL_BY_REQUESTER',
    ],
    [
      'both approvers found only in one group',
      () =>
        resigned((p) => {
          const chioma = (step(p, 'post-summary').approval.approvers as Obj[]).find(
            (a) => a.user_id === U.chioma,
          )!;
          chioma.found_in = [{ group: 'ops-oncall', via: 'user_id', ref: U.chioma }];
          chioma.counted_for = 'ops-oncall';
        }),
      'APPROVAL_GROUPS_NOT_DISTINCT',
    ],
  ])('%s: FAIL with the two-person reason', async (_what, make, reason) => {
    expect(await inBrowser(make())).toMatchObject({ status: 'failed', reason });
  });

  it.each<[string, () => string, string]>([
    [
      'a snapshot rule other than the pinned one',
      () => resigned((p) => void (step(p, 'post-summary').approval.rule.required_approvals = 1)),
      'the rule is not the one job_created pinned',
    ],
    [
      'a snapshot that is not the record its mint event chained',
      () => resigned((p) => void (step(p, 'post-summary').approval.approvers[0].username = 'mallory')),
      'not the record its token_minted event chained',
    ],
  ])('%s: APPROVAL_SNAPSHOT_INVALID', async (_what, make, why) => {
    const v = await inBrowser(make());
    expect(v).toMatchObject({ status: 'failed', reason: 'APPROVAL_SNAPSHOT_INVALID' });
    expect(v.status === 'failed' && v.message).toContain(why);
  });

  it('the sealed policy envelope altered: POLICY_BINDING_MISMATCH', async () => {
    const text = resigned(
      (p) => void (p.metadata.claw_approvals.policy.envelope.payload.policy_id = 'other'),
    );
    expect(await inBrowser(text)).toMatchObject({ status: 'failed', reason: 'POLICY_BINDING_MISMATCH' });
  });

  it('trust comes only from the embedded JWKS: an empty one, or a key retired before the seal, trusts nothing', async () => {
    expect(await inBrowser(s.stored, { ...browserTrust, keys: [] })).toMatchObject({
      status: 'failed',
      reason: 'BUNDLE_SIGNER_UNTRUSTED',
    });
    const retired = browserTrust.keys.map((k) => ({ ...k, retired_at: '2026-11-21T09:59:59.999Z' }));
    expect(await inBrowser(s.stored, { ...browserTrust, keys: retired })).toMatchObject({
      status: 'failed',
      reason: 'BUNDLE_SIGNER_UNTRUSTED',
    });
    const stillValid = browserTrust.keys.map((k) => ({ ...k, retired_at: '2026-11-21T10:00:00.000Z' }));
    expect(await inBrowser(s.stored, { ...browserTrust, keys: stillValid })).toMatchObject({
      status: 'verified',
    });
    const unreadable = browserTrust.keys.map((k) => ({ ...k, retired_at: 'soon' }));
    expect(await inBrowser(s.stored, { ...browserTrust, keys: unreadable })).toMatchObject({
      status: 'failed',
    });
    expect(await inBrowser(s.stored, { ...browserTrust, gateway_signers: [] })).toMatchObject({
      status: 'failed',
      reason: 'RECEIPT_SIGNER_UNTRUSTED',
    });
  });

  it('bytes that are not UTF-8 JSON, or an envelope of the wrong type, fail with a named reason', async () => {
    expect(
      await verifyInBrowser(Uint8Array.of(0xff, 0xfe, 0x7b), browserTrust, checkTwoPerson),
    ).toMatchObject({
      status: 'failed',
      reason: 'BUNDLE_ENVELOPE_MALFORMED',
    });
    expect(await inBrowser(s.stored.slice(0, -1))).toMatchObject({ reason: 'BUNDLE_ENVELOPE_MALFORMED' });
    const wrongType = s.stored.replace('"envelope_type":"proof_bundle"', '"envelope_type":"gateway_receipt"');
    expect(await inBrowser(wrongType)).toMatchObject({ reason: 'BUNDLE_ENVELOPE_TYPE_MISMATCH' });
  });

  it('a browser without WebCrypto cannot check: "unavailable", never VERIFIED', async () => {
    vi.stubGlobal('crypto', undefined);
    const v = await inBrowser(s.stored);
    expect(v.status).toBe('unavailable');
    expect(v.checks.filter((c) => c.ok === true)).toEqual([]);
  });
});
