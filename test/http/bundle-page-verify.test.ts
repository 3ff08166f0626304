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
import { testGateway } from '../helpers/receipts.js';
import { newKey } from '../helpers/state.js';
import { forge, type Obj } from '../proofs/adversarial-forge.js';

const GATED = 'post-summary';

// Views into a payload being edited.
const bodyOf = (p: Obj, e: Obj): Obj =>
  (p.metadata.event_payloads as Obj[]).find((x) => x.event_id === e.event_id)!.payload;
/** The one event of `type` whose payload satisfies `where`: its header and payload. */
function eventIn(p: Obj, type: string, where: (body: Obj) => boolean) {
  const found = (p.event_chain as Obj[]).filter((e) => e.event_type === type && where(bodyOf(p, e)));
  expect(found).toHaveLength(1);
  return { header: found[0]!, body: bodyOf(p, found[0]!) };
}
const mintIn = (p: Obj, step: string) => eventIn(p, 'token_minted', (b) => b.step === step);
const createdIn = (p: Obj) => eventIn(p, 'job_created', () => true).body;
const stepIn = (p: Obj, id: string): Obj =>
  (p.metadata.claw_approvals.steps as Obj[]).find((s) => s.step === id)!;

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

  /**
   * The stored bundle with `mutate` applied to its payload, signed again by `signer` (the trusted
   * key) but not re-chained: what the chain and hash checks must catch.
   */
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
      ['approval_receipts', true],
      ['event_payloads', true],
      ['issued_at', true],
      ['plan', true],
      ['policy', null],
      ['tokens', true],
      ['token_lifecycle', true],
      ['approval_events', true],
      ['steps', true],
      ['two_person', true],
      ['counted_approvals', true],
    ]);
    // The bundle names its policy by hash: the browser says it does not recompute the rules.
    expect(v.checks.find((c) => c.id === 'policy')!.message).toContain('not in the bundle');
    expect(v.checks.find((c) => c.id === 'two_person')!.message).toBe(
      `two-person rule recomputed from the sealed snapshot for "${GATED}"`,
    );
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
      () => resigned((p) => void (stepIn(p, 'search-kb').cst.jti = stepIn(p, 'read-runbook').cst.jti)),
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
   * The snapshot edited alone: `checkTwoPerson` fails it, in the browser and on the server alike,
   * before the snapshot is compared with the chain.
   */
  it.each<[string, () => string, string]>([
    [
      'one of two approvers removed from the snapshot',
      () => resigned((p) => void stepIn(p, GATED).approval.approvers.pop()),
      'APPROVAL_QUORUM_NOT_MET',
    ],
    [
      'the requester recorded as an approver',
      () => resigned((p) => void (stepIn(p, GATED).approval.requester_id = U.alice)),
      'APPROVAL_BY_REQUESTER',
    ],
    [
      'both approvers found only in one group',
      () =>
        resigned((p) => {
          const chioma = (stepIn(p, GATED).approval.approvers as Obj[]).find((a) => a.user_id === U.chioma)!;
          chioma.found_in = [{ group: 'ops-oncall', via: 'user_id', ref: U.chioma }];
          chioma.counted_for = 'ops-oncall';
        }),
      'APPROVAL_GROUPS_NOT_DISTINCT',
    ],
  ])('%s: FAIL with the two-person reason, as the server', async (_what, make, reason) => {
    const text = make();
    expect(await inBrowser(text)).toMatchObject({ status: 'failed', reason });
    expect(verifyBundle(JSON.parse(text), serverTrust)).toMatchObject({ ok: false, reason });
  });

  describe('the two-person check against the chain, as the server makes it', () => {
    /** Forged with the trusted keys and the chain made whole: only the steps and snapshot checks can tell. */
    const forged = (edit: (p: Obj) => void) => forge(s.stored, { key, gateway: testGateway }, edit);
    /** The same edit to the sealed snapshot and to the record its token_minted event chained. */
    const bothRecords = (p: Obj, edit: (record: Obj) => void) => {
      edit(stepIn(p, GATED).approval);
      edit(mintIn(p, GATED).body.approval);
    };
    const approverOf = (record: Obj, user: string): Obj =>
      (record.approvers as Obj[]).find((a) => a.user_id === user)!;
    const counted = (p: Obj) => mintIn(p, GATED).body.counted as Obj[];

    it('a re-chained bundle that edits nothing still verifies in both', async () => {
      const text = forged(() => {});
      expect(JSON.parse(text).payload.event_chain).toEqual(JSON.parse(s.stored).payload.event_chain);
      expect(await inBrowser(text)).toMatchObject({ status: 'verified' });
      expect(verifyBundle(JSON.parse(text), serverTrust)).toMatchObject({ ok: true });
    });

    it('a step minted before snapshots existed (its mint event has no approval key): said in both, not failed', async () => {
      const text = forged((p) => {
        delete mintIn(p, GATED).body.approval;
        Object.assign(stepIn(p, GATED), { approval: null, approval_unrecorded: 'MINTED_BEFORE_SNAPSHOTS' });
      });
      const v = await inBrowser(text);
      expect(v).toMatchObject({ status: 'verified' });
      expect(v.checks.find((c) => c.id === 'two_person_unrecorded')).toMatchObject({ ok: null });
      expect(v.checks.find((c) => c.id === 'two_person')).toBeUndefined();
      // What the chain itself records of the approvals is still checked.
      expect(v.checks.find((c) => c.id === 'counted_approvals')).toMatchObject({ ok: true });
      expect(verifyBundle(JSON.parse(text), serverTrust)).toMatchObject({ ok: true });
    });

    /** [what, reason, words both messages carry, the server check that catches it, edit]. */
    const forgeries: [string, string, string, string, (p: Obj) => void][] = [
      // 1. Only a mint whose event chained no `approval` key may go without its snapshot.
      [
        'the snapshot stripped and said unrecorded while its mint event holds it',
        'APPROVAL_SNAPSHOT_INVALID',
        'chained an approval snapshot that the bundle does not carry',
        'ours.two_person',
        (p) =>
          Object.assign(stepIn(p, GATED), { approval: null, approval_unrecorded: 'MINTED_BEFORE_SNAPSHOTS' }),
      ],
      [
        'the snapshot key removed while its mint event holds it',
        'APPROVAL_SNAPSHOT_INVALID',
        'chained an approval snapshot that the bundle does not carry',
        'ours.two_person',
        (p) => void delete stepIn(p, GATED).approval,
      ],
      [
        'a gated mint sealed with approval null and no reason',
        'APPROVAL_SNAPSHOT_INVALID',
        'chained an approval snapshot',
        'ours.two_person',
        (p) => void (stepIn(p, GATED).approval = null),
      ],
      [
        'a gated mint of before snapshots sealed with approval null and no reason',
        'APPROVAL_SNAPSHOT_INVALID',
        'a gated step minted without an approval snapshot',
        'ours.two_person',
        (p) => {
          delete mintIn(p, GATED).body.approval;
          stepIn(p, GATED).approval = null;
        },
      ],
      // 2. The snapshot is the record its mint chained, dated at the mint, counted as the mint counted.
      [
        'a snapshot that is not the record its mint event chained',
        'APPROVAL_SNAPSHOT_INVALID',
        'is not the record its token_minted event chained',
        'ours.two_person',
        (p) => void (approverOf(stepIn(p, GATED).approval, U.alice).username = 'mallory'),
      ],
      [
        'a rule other than job_created pinned, in both records',
        'APPROVAL_SNAPSHOT_INVALID',
        'the rule is not the one job_created pinned',
        'ours.two_person',
        (p) => bothRecords(p, (r) => void (r.rule.required_approvals = 1)),
      ],
      [
        'a snapshot evaluated at another time than its mint, in both records',
        'APPROVAL_SNAPSHOT_INVALID',
        'evaluated_at is not the time of its token_minted event',
        'ours.two_person',
        (p) => bothRecords(p, (r) => void (r.evaluated_at = '2026-11-21T09:00:00.000Z')),
      ],
      [
        "an approver's post dropped from both records",
        'APPROVAL_SNAPSHOT_INVALID',
        `approver "${U.chioma}" has no approval_recorded event for this step before its mint`,
        'ours.two_person',
        (p) => bothRecords(p, (r) => void (approverOf(r, U.chioma).post_id = null)),
      ],
      [
        'a mint that counted an approver for another group than the snapshot says',
        'APPROVAL_SNAPSHOT_INVALID',
        `did not count approver "${U.chioma}" for "sec-reviewers"`,
        'ours.two_person',
        (p) => void (counted(p).find((c) => c.user_id === U.chioma)!.group = 'ops-oncall'),
      ],
      [
        'a mint that counted one approver more than the snapshot',
        'APPROVAL_SNAPSHOT_INVALID',
        'its token_minted event counted more approvers than the snapshot',
        'ours.two_person',
        (p) => void counted(p).push({ user_id: U.dmitri, group: 'sec-reviewers', decision_id: null }),
      ],
      // 3. Which steps needed approval is job_created's word, and mints are the chain's.
      [
        'the metadata calling the gated step auto',
        'PLAN_BINDING_MISMATCH',
        `is not step "${GATED}" as job_created planned it`,
        'ours.steps',
        (p) => void (stepIn(p, GATED).gate = 'auto'),
      ],
      [
        "the metadata's steps in another order",
        'PLAN_BINDING_MISMATCH',
        'as job_created planned it',
        'ours.steps',
        (p) => void (p.metadata.claw_approvals.steps as Obj[]).reverse(),
      ],
      [
        'the gated step re-planned as auto in job_created and the metadata, its mint still gated',
        'APPROVAL_SNAPSHOT_INVALID',
        'its token_minted event says gate "gated", job_created planned auto',
        'ours.two_person',
        (p) => {
          const planned = (createdIn(p).steps as Obj[]).find((x) => x.id === GATED)!;
          planned.gate = 'auto';
          delete planned.rule;
          stepIn(p, GATED).gate = 'auto';
        },
      ],
      [
        "an auto step's mint event recording an approval snapshot",
        'APPROVAL_SNAPSHOT_INVALID',
        'its token_minted event records an approval snapshot for an auto step',
        'ours.two_person',
        // Without approvers: an earlier event cannot name by hash the approvals chained after it.
        (p) =>
          void (mintIn(p, 'search-kb').body.approval = { ...mintIn(p, GATED).body.approval, approvers: [] }),
      ],
      [
        'an auto step carrying a snapshot',
        'APPROVAL_SNAPSHOT_INVALID',
        'needed no approval but carries an approval snapshot',
        'ours.two_person',
        (p) => void (stepIn(p, 'search-kb').approval = structuredClone(stepIn(p, GATED).approval)),
      ],
    ];
    it.each(forgeries)(
      '%s: FAIL %s in the browser, as on the server',
      async (_what, reason, words, at, edit) => {
        const text = forged(edit);
        const server = verifyBundle(JSON.parse(text), serverTrust);
        expect(server).toMatchObject({ ok: false, reason });
        expect(server.checks.at(-1)).toMatchObject({ id: at, ok: false });
        expect(server.ok || server.message).toContain(words);
        const v = await inBrowser(text);
        expect(v).toMatchObject({ status: 'failed', reason });
        expect(v.status === 'failed' && v.message).toContain(words);
      },
    );

    /** Caught by the approval receipts' check against the chain's decisions (ours.approvals), in both. */
    const caughtByApprovalEvents: [string, string, (p: Obj) => void][] = [
      [
        "chioma's approval receipt dropped",
        'no human approval receipt records an approval counted toward step',
        (p) => {
          const receipts = p.human_approval_receipts as Obj[];
          receipts.splice(
            receipts.findIndex((r) => r.approver_subject === U.chioma),
            1,
          );
        },
      ],
      [
        'the mint counting chioma under another decision than her approval event',
        "was not counted toward its step's token",
        (p) => void (counted(p).find((c) => c.user_id === U.chioma)!.decision_id = 999_999),
      ],
    ];
    it.each(caughtByApprovalEvents)('%s: FAIL in both, with the same reason', async (_what, words, edit) => {
      const text = forged(edit);
      const server = verifyBundle(JSON.parse(text), serverTrust);
      expect(server).toMatchObject({ ok: false, reason: 'APPROVAL_RECEIPT_BINDING_MISMATCH' });
      expect(server.ok || server.message).toContain(words);
      const v = await inBrowser(text);
      expect(v).toMatchObject({ status: 'failed', reason: 'APPROVAL_RECEIPT_BINDING_MISMATCH' });
      expect(v.status === 'failed' && v.message).toContain(words);
    });
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
