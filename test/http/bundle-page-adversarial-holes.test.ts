import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { didKeyFromPublicKey } from '../../src/crypto/did-key.js';
import { sealEnvelope } from '../../src/crypto/envelope.js';
import { boundedJson } from '../../src/http/bundle-page/bounded-json.js';
import { type BrowserTrust, verifyInBrowser } from '../../src/http/bundle-page/browser-verify.js';
import { bundlePayloadHash } from '../../src/proofs/seal-bundle.js';
import { checkTwoPerson } from '../../src/proofs/two-person.js';
import { type BundleTrust, verifyBundle } from '../../src/proofs/verify-bundle.js';
import { type SealedBundleApp, sealedBundleApp } from '../browser/sealed-bundle-app.js';
import { dialectName } from '../helpers/db.js';
import { U } from '../helpers/engine.js';
import { testGateway } from '../helpers/receipts.js';
import { eventOf, forge, insertEvent, type Obj } from '../proofs/adversarial-forge.js';

const GATED = 'post-summary';

/**
 * The holes H8's review found in the bundle page (issue 10), each closed: a chain whose gated
 * mint counted too few, withdrawn or misplaced approvals; tokens outside the job's lifecycle;
 * receipts, envelopes and payload parts the server refuses; another bundle under a link's id;
 * a stored row that made the page answer 500; a did:key that held the browser for seconds.
 * Forgeries are signed with the trusted keys (`forge`), so each reaches the check it aims at,
 * and where the server makes the same check the browser names the same reason.
 */
describe(`the bundle page's verifier and route against H8's holes (${dialectName})`, () => {
  let s: SealedBundleApp;
  let browserTrust: BrowserTrust;
  let serverTrust: BundleTrust;

  beforeAll(async () => {
    s = await sealedBundleApp();
    const ctx = s.engine.ctx;
    browserTrust = { keys: ctx.keyRing.jwks.keys, gateway_signers: [...ctx.gatewaySigners] };
    serverTrust = { trustsSigner: ctx.keyRing.trusts, gatewaySigners: ctx.gatewaySigners };
  });
  afterAll(async () => {
    await s?.close();
  });
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  const forged = (edit: (p: Obj) => void) =>
    forge(s.stored, { key: s.engine.ctx.keyRing.active, gateway: testGateway }, edit);
  const inBrowser = (text: string, expect?: { bundleId?: string; now?: Date }) =>
    verifyInBrowser(new TextEncoder().encode(text), browserTrust, checkTwoPerson, expect);
  const onServer = (text: string) => verifyBundle(JSON.parse(text), serverTrust);
  const stepIn = (p: Obj, id: string): Obj =>
    (p.metadata.claw_approvals.steps as Obj[]).find((x) => x.step === id)!;
  const mint = (p: Obj) => eventOf(p, 'token_minted', 3);

  /** Both verifiers fail `text` with `reason`, and the browser's message carries `words`. */
  async function bothFail(text: string, reason: string, words: string): Promise<void> {
    expect(onServer(text)).toMatchObject({ ok: false, reason });
    const v = await inBrowser(text);
    expect(v).toMatchObject({ status: 'failed', reason });
    expect(v.status === 'failed' && v.message).toContain(words);
  }

  /** The stored bundle with `mutate` applied to its envelope, its payload hashed and signed again (not re-chained). */
  function resigned(mutate: (env: Obj) => void): string {
    const env = JSON.parse(s.stored) as Obj;
    mutate(env);
    return JSON.stringify(
      sealEnvelope({
        type: 'proof_bundle',
        payload: env.payload,
        payloadHashB64u: bundlePayloadHash(env.payload),
        key: s.engine.ctx.keyRing.active,
        issuedAt: new Date(env.issued_at as string),
      }),
    );
  }

  /** `text` with envelope fields (outside the signed payload) set to `fields`; the payload's JSON text unchanged. */
  const withEnvelope = (text: string, fields: Obj) => JSON.stringify({ ...JSON.parse(text), ...fields });

  /** The page served while the bundles row of `id` holds `text` (around its append-only trigger, as someone with database access could). */
  async function whileStored<T>(text: string, then: () => Promise<T>, id = s.bundleId): Promise<T> {
    const swap = (envelope: string, where: string) =>
      s.engine.ctx.db.transaction().execute(async (trx) => {
        await sql`alter table bundles disable trigger bundles_append_only`.execute(trx);
        await sql`update bundles set envelope = ${envelope}, bundle_id = ${id} where bundle_id = ${where}`.execute(
          trx,
        );
        await sql`alter table bundles enable trigger bundles_append_only`.execute(trx);
      });
    await swap(text, s.bundleId);
    try {
      return await then();
    } finally {
      await s.engine.ctx.db.transaction().execute(async (trx) => {
        await sql`alter table bundles disable trigger bundles_append_only`.execute(trx);
        await sql`update bundles set envelope = ${s.stored}, bundle_id = ${s.bundleId} where bundle_id = ${id}`.execute(
          trx,
        );
        await sql`alter table bundles enable trigger bundles_append_only`.execute(trx);
      });
    }
  }
  const getPage = (id = s.bundleId) =>
    s.app.inject({ url: `/v1/bundles/${id}`, headers: { accept: 'text/html' } });

  describe('1, 2: every gated mint is held to its rule by the chain itself, snapshot or not', () => {
    /** post-summary (two approvals from distinct groups) as minted before snapshots existed: no approval key anywhere. */
    const beforeSnapshots = (p: Obj) => {
      delete mint(p).body.approval;
      Object.assign(stepIn(p, GATED), { approval: null, approval_unrecorded: 'MINTED_BEFORE_SNAPSHOTS' });
    };
    const counted = (p: Obj) => mint(p).body.counted as Obj[];
    const chiomaCounted = (p: Obj) => counted(p).find((c) => c.user_id === U.chioma)!;
    const dropChiomaReceipt = (p: Obj) => {
      p.human_approval_receipts = (p.human_approval_receipts as Obj[]).filter(
        (r) => r.approver_subject !== U.chioma,
      );
    };

    it('control: a mint of before snapshots whose counted approvals satisfy the rule verifies in both', async () => {
      const text = forged(beforeSnapshots);
      expect(onServer(text)).toMatchObject({ ok: true });
      const v = await inBrowser(text);
      expect(v).toMatchObject({ status: 'verified' });
      expect(v.checks.find((c) => c.id === 'counted_approvals')).toMatchObject({ ok: true });
    });

    it.each<[string, (p: Obj) => void, string, string]>([
      [
        'minted on one of two required approvals',
        (p) => {
          counted(p).pop();
          dropChiomaReceipt(p);
        },
        'APPROVAL_QUORUM_NOT_MET',
        'counted 1 of 2 required approvals',
      ],
      [
        'the requester counted',
        (p) => {
          eventOf(p, 'job_created').body.requester_id = U.alice;
          p.metadata.claw_approvals.requester_id = U.alice;
        },
        'APPROVAL_BY_REQUESTER',
        `counted the requester "${U.alice}"`,
      ],
      [
        'two approvers counted for one group under distinct groups',
        (p) => void (chiomaCounted(p).group = 'ops-oncall'),
        'APPROVAL_GROUPS_NOT_DISTINCT',
        'counted two approvers for one group',
      ],
      [
        'an approver counted for a group the rule does not allow',
        (p) => void (chiomaCounted(p).group = 'finance'),
        'APPROVAL_SNAPSHOT_INVALID',
        `counted "${U.chioma}" for "finance", a group the rule does not allow`,
      ],
      [
        'one person counted twice',
        (p) => {
          const alice = counted(p).find((c) => c.user_id === U.alice)!;
          Object.assign(chiomaCounted(p), { user_id: U.alice, decision_id: alice.decision_id });
          dropChiomaReceipt(p);
        },
        'APPROVAL_SNAPSHOT_INVALID',
        `counted "${U.alice}" twice`,
      ],
    ])('before snapshots, %s: FAIL in both', async (_what, edit, reason, words) => {
      await bothFail(
        forged((p) => {
          beforeSnapshots(p);
          edit(p);
        }),
        reason,
        words,
      );
    });

    it('before snapshots, a counted decision the chain never recorded: FAIL APPROVAL_SNAPSHOT_INVALID in both', async () => {
      const text = forged((p) => {
        beforeSnapshots(p);
        chiomaCounted(p).decision_id = 999_999;
        dropChiomaReceipt(p);
      });
      await bothFail(
        text,
        'APPROVAL_SNAPSHOT_INVALID',
        `counted "${U.chioma}" without their approval_recorded event for this step before the mint`,
      );
    });

    it('an approval withdrawn before the mint, still counted: FAIL APPROVAL_WITHDRAWN_COUNTED in both', async () => {
      const text = forged((p) => {
        const alice = eventOf(p, 'approval_recorded', 0).body;
        insertEvent(p, (p.event_chain as Obj[]).indexOf(mint(p).header), 'approval_withdrawn', {
          decision_id: alice.decision_id,
          detected_by: 'recheck',
          post_id: alice.post_id,
          step: alice.step,
          user_id: alice.user_id,
          why: 'deleted',
        });
      });
      await bothFail(
        text,
        'APPROVAL_WITHDRAWN_COUNTED',
        `counted the approval of "${U.alice}", withdrawn before the mint`,
      );
    });

    it('an approval withdrawn after the mint does not undo it: VERIFIED in both', async () => {
      const text = forged((p) => {
        const alice = eventOf(p, 'approval_recorded', 0).body;
        insertEvent(p, (p.event_chain as Obj[]).indexOf(mint(p).header) + 1, 'approval_withdrawn', {
          decision_id: alice.decision_id,
          detected_by: 'recheck',
          post_id: alice.post_id,
          step: alice.step,
          user_id: alice.user_id,
          why: 'deleted',
        });
      });
      expect(onServer(text)).toMatchObject({ ok: true });
      expect(await inBrowser(text)).toMatchObject({ status: 'verified' });
    });
  });

  describe('4: tokens within the job lifecycle', () => {
    it.each<[string, (p: Obj) => void, string, string]>([
      [
        'a token minted for a step the plan does not have',
        (p) => {
          const m = mint(p);
          const ghost = structuredClone(m.body);
          Object.assign(ghost, { step: 'ghost', counted: [], jti: 'ghost-jti' });
          ghost.approval.approvers = [];
          insertEvent(p, (p.event_chain as Obj[]).indexOf(m.header) + 1, 'token_minted', ghost);
        },
        'PLAN_BINDING_MISMATCH',
        'mints a token for step "ghost", which job_created did not plan',
      ],
      [
        'a token minted after the job ended',
        (p) => {
          const chain = p.event_chain as Obj[];
          const again = { ...eventOf(p, 'token_minted', 0).body, jti: 'after-the-end-jti' };
          insertEvent(p, chain.length - 1, 'token_minted', again);
          chain.splice(chain.length - 2, 0, chain.pop()!);
          expect(chain.slice(-2).map((e) => e.event_type)).toEqual(['job_ended', 'token_minted']);
        },
        'EVENT_CHAIN_INVALID',
        'mints a token after job_ended',
      ],
      [
        'a token claimed before it was minted',
        (p) => {
          const chain = p.event_chain as Obj[];
          const claimed = (p.event_chain as Obj[]).filter((e) => e.event_type === 'token_claimed')[0]!;
          chain.splice(chain.indexOf(claimed), 1);
          chain.splice(1, 0, claimed);
        },
        'EVENT_CHAIN_INVALID',
        'before any token_minted event of it',
      ],
      [
        'a token redeemed after the job ended',
        (p) => {
          const chain = p.event_chain as Obj[];
          const redeemed = chain.filter((e) => e.event_type === 'token_redeemed')[3]!;
          chain.splice(chain.indexOf(redeemed), 1);
          chain.push(redeemed);
        },
        'EVENT_CHAIN_INVALID',
        'after job_ended',
      ],
    ])('%s: FAIL in both', async (_what, edit, reason, words) => {
      await bothFail(forged(edit), reason, words);
    });
  });

  describe('5: as strict as the server', () => {
    const alicesReceipt = (p: Obj) =>
      (p.human_approval_receipts as Obj[]).find((r) => r.approver_subject === U.alice)!;

    it.each<[string, (p: Obj) => void, string, string]>([
      [
        'an approval receipt of a type the schema does not know (rubber_stamp)',
        (p) => void (alicesReceipt(p).approval_type = 'rubber_stamp'),
        'APPROVAL_RECEIPT_INVALID',
        'approval_type',
      ],
      [
        'an approval receipt with a field the schema does not name',
        (p) => void (alicesReceipt(p).capability_minted = true),
        'APPROVAL_RECEIPT_INVALID',
        '"capability_minted"',
      ],
      [
        'an approval receipt whose kind is not its event kind (a deny on an approval)',
        (p) => {
          const r = alicesReceipt(p);
          r.approval_type = 'explicit_deny';
          delete r.minted_capability_id;
          delete r.minted_capability_ttl_seconds;
        },
        'APPROVAL_RECEIPT_BINDING_MISMATCH',
        '(explicit_deny) points at a "approval_recorded" event, not step_denied',
      ],
      [
        'an approval receipt of a kind this project never records (timeout_deny)',
        (p) => void (alicesReceipt(p).approval_type = 'timeout_deny'),
        'APPROVAL_RECEIPT_BINDING_MISMATCH',
        'is a timeout_deny, which this project never records',
      ],
      [
        'a payload part neither verifier evaluates (urm)',
        (p) => void (p.urm = { urm_version: '1' }),
        'UNSUPPORTED_FEATURE',
        'URM reference (urm)',
      ],
      [
        'metadata neither verifier evaluates (policy_binding)',
        (p) => void (p.metadata.policy_binding = {}),
        'UNSUPPORTED_FEATURE',
        'policy binding (metadata.policy_binding)',
      ],
      [
        'a payload part proof_bundle.v1 does not name',
        (p) => void (p.approved_by_ceo = true),
        'BUNDLE_PAYLOAD_INVALID',
        '',
      ],
    ])('%s: FAIL in both', async (_what, edit, reason, words) => {
      await bothFail(forged(edit), reason, words);
    });

    it('an envelope field the schema does not name: FAIL BUNDLE_ENVELOPE_MALFORMED in both', async () => {
      const text = s.stored.replace(/}$/, ',"verified_by":"the server"}');
      await bothFail(text, 'BUNDLE_ENVELOPE_MALFORMED', '"verified_by"');
    });

    it('an expired bundle (expires_at, outside the signed payload): FAIL BUNDLE_EXPIRED in both, judged at the given time', async () => {
      const text = s.stored.replace(/}$/, ',"expires_at":"2026-11-21T10:00:00.000Z"}');
      const now = new Date('2026-11-22T00:00:00.000Z');
      expect(verifyBundle(JSON.parse(text), serverTrust, { now })).toMatchObject({
        ok: false,
        reason: 'BUNDLE_EXPIRED',
      });
      expect(await inBrowser(text, { now })).toMatchObject({ status: 'failed', reason: 'BUNDLE_EXPIRED' });
      const before = new Date('2026-11-21T10:00:00.000Z');
      expect(verifyBundle(JSON.parse(text), serverTrust, { now: before })).toMatchObject({ ok: true });
      expect(await inBrowser(text, { now: before })).toMatchObject({ status: 'verified' });
      // By default, now: the bundle's expiry is long past.
      expect(await inBrowser(text)).toMatchObject({ status: 'failed', reason: 'BUNDLE_EXPIRED' });
    });

    it('BLAKE3 payload hashes: FAIL UNSUPPORTED_FEATURE in both', async () => {
      const text = withEnvelope(s.stored, { hash_algorithm: 'BLAKE3' });
      await bothFail(text, 'UNSUPPORTED_FEATURE', 'BLAKE3');
    });

    it('a lone surrogate in an event payload: JCS refuses it in the browser as on the server (not a hash mismatch)', async () => {
      const text = resigned((env) => {
        const ended = eventOf(env.payload, 'job_ended').body;
        ended.reason = 'half a pair \ud800';
      });
      expect(text).toContain('\\ud800');
      await bothFail(text, 'BUNDLE_PAYLOAD_INVALID', 'lone surrogate');
    });

    it('7: a signer did:key of 100 000 digits is refused by its length, before any base58 is decoded', async () => {
      const long = `did:key:z6Mk${'z'.repeat(100_000)}`;
      const text = withEnvelope(
        resigned((env) => void (env.payload.agent_did = long)),
        { signer_did: long },
      );
      // Count the decoder's work: each base58 digit costs one BigInt(); none may be spent on this DID.
      const RealBigInt = BigInt;
      let decoded = 0;
      vi.stubGlobal(
        'BigInt',
        Object.assign((v: string | number | bigint | boolean) => {
          decoded += 1;
          return RealBigInt(v);
        }, RealBigInt),
      );
      const v = await inBrowser(text);
      vi.unstubAllGlobals();
      expect(v).toMatchObject({ status: 'failed', reason: 'BUNDLE_SIGNER_DID_INVALID' });
      expect(decoded).toBe(0);
    });

    it('7: a did:key one digit off the Ed25519 length fails as an invalid DID, and the genuine signer still verifies', async () => {
      const env = JSON.parse(s.stored) as Obj;
      const signer = env.signer_did as string;
      expect(signer).toMatch(/^did:key:z[1-9A-HJ-NP-Za-km-z]{47}$/);
      const longer = withEnvelope(
        resigned((e) => void (e.payload.agent_did = `${signer}1`)),
        { signer_did: `${signer}1` },
      );
      expect(await inBrowser(longer)).toMatchObject({
        status: 'failed',
        reason: 'BUNDLE_SIGNER_DID_INVALID',
      });
      expect(onServer(longer)).toMatchObject({ ok: false, reason: 'BUNDLE_SIGNER_DID_INVALID' });
      expect(await inBrowser(s.stored)).toMatchObject({ status: 'verified' });
    });
  });

  describe('beyond the list, as the server since H10: a text that says two things, a key that signs anything', () => {
    it("an object key repeated in the stored text: FAIL BUNDLE_ENVELOPE_MALFORMED in the browser and in the page's server verdict", async () => {
      const text = s.stored.replace('"agent_did":', '"agent_did":"did:key:z6MkMallory","agent_did":');
      expect(text).not.toBe(s.stored);
      // JSON.parse keeps the last (signed) value: without the scan, both would say VERIFIED.
      expect(onServer(text)).toMatchObject({ ok: true });
      const v = await inBrowser(text);
      expect(v).toMatchObject({ status: 'failed', reason: 'BUNDLE_ENVELOPE_MALFORMED' });
      expect(v.status === 'failed' && v.message).toContain('duplicate key "agent_did" in payload');
      await whileStored(text, async () => {
        const res = await getPage();
        expect(res.statusCode).toBe(200);
        expect(res.body).toContain('data-server="fail"');
        expect(res.body).toContain(
          '<code class="reason">BUNDLE_ENVELOPE_MALFORMED</code>: duplicate key &quot;agent_did&quot; in payload of the stored bundle',
        );
      });
    });

    it('a signer key of small order (the identity point), even one the JWKS lists: FAIL BUNDLE_SIGNATURE_INVALID in both', async () => {
      const identity = new Uint8Array(32);
      identity[0] = 1;
      const did = didKeyFromPublicKey(identity);
      const env = JSON.parse(s.stored) as Obj;
      env.payload.agent_did = did;
      for (const r of env.payload.human_approval_receipts as Obj[]) r.agent_did = did;
      // R = the identity point, S = 0: valid for every message under this key.
      const text = JSON.stringify({
        ...env,
        payload_hash_b64u: bundlePayloadHash(env.payload),
        signature_b64u: Buffer.concat([Buffer.from(identity), Buffer.alloc(32)]).toString('base64url'),
        signer_did: did,
      });
      const x = Buffer.from(identity).toString('base64url');
      const trusting = { ...browserTrust, keys: [{ kty: 'OKP', crv: 'Ed25519', x, kid: 'small-order' }] };
      const v = await verifyInBrowser(new TextEncoder().encode(text), trusting, checkTwoPerson);
      expect(v).toMatchObject({ status: 'failed', reason: 'BUNDLE_SIGNATURE_INVALID' });
      expect(v.status === 'failed' && v.message).toContain('small order');
      expect(
        verifyBundle(JSON.parse(text), { ...serverTrust, trustsSigner: (d) => d === did }),
      ).toMatchObject({
        ok: false,
        reason: 'BUNDLE_SIGNATURE_INVALID',
      });
    });
  });

  describe('3: the bundle must be the one the link names', () => {
    const other = 'pb_SomeoneElsesBundleId0000';

    it("in the browser: bytes of another bundle than the page's id fail BUNDLE_ID_MISMATCH; the right id is a check that passes", async () => {
      const wrong = await inBrowser(s.stored, { bundleId: other });
      expect(wrong).toMatchObject({ status: 'failed', reason: 'BUNDLE_ID_MISMATCH' });
      expect(wrong.status === 'failed' && wrong.message).toBe(
        `this page is for "${other}" but the bundle is "${s.bundleId}"`,
      );
      const right = await inBrowser(s.stored, { bundleId: s.bundleId });
      expect(right).toMatchObject({ status: 'verified' });
      expect(right.checks.at(-1)).toMatchObject({ id: 'bundle_id', ok: true });
    });

    it("a genuine bundle stored under another link's id: the page says FAIL BUNDLE_ID_MISMATCH and shows the bundle's own id; the JSON answer stays the stored bytes", async () => {
      await whileStored(
        s.stored,
        async () => {
          const res = await getPage(other);
          expect(res.statusCode).toBe(200);
          expect(res.body).toContain('data-server="fail"');
          expect(res.body).toContain(
            `<code class="reason">BUNDLE_ID_MISMATCH</code>: asked for ${other} but the stored bundle is &quot;${s.bundleId}&quot;`,
          );
          // The browser is told the link's id and shown the payload's.
          expect(res.body).toContain(`<main id="page" data-bundle-id="${other}">`);
          expect(res.body).toContain(`<code id="payload-bundle-id">${s.bundleId}</code>`);
          expect(res.body).toContain(`not ${other}, the bundle this link names`);
          const json = await s.app.inject({
            url: `/v1/bundles/${other}`,
            headers: { accept: 'application/json' },
          });
          expect(json.rawPayload.equals(Buffer.from(s.stored, 'utf8'))).toBe(true);
        },
        other,
      );
    });

    it('the genuine page: its own id, embedded for the browser and passed by the server', async () => {
      const res = await getPage();
      expect(res.body).toContain('data-server="ok"');
      expect(res.body).toContain(`<main id="page" data-bundle-id="${s.bundleId}">`);
      expect(res.body).toContain(`<code id="payload-bundle-id">${s.bundleId}</code>`);
      expect(res.body).not.toContain('the bundle this link names');
      expect(res.body).toContain(`the bundle is ${s.bundleId}, as the link names`);
    });
  });

  describe('6: a stored row nested 100 000 deep renders its FAIL page', () => {
    it("step args nested 100 000 deep: 200 with the server's FAIL, not a 500", async () => {
      const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
      const tampered = s.stored.replace('"args":{', `"args":{"deep":${deep},`);
      expect(tampered).not.toBe(s.stored);
      await whileStored(tampered, async () => {
        const res = await getPage();
        expect(res.statusCode).toBe(200);
        expect(res.body).toContain('data-server="fail"');
        expect(res.body).toContain('&quot;deep&quot;: [\n');
        expect(res.body).toContain('[…]');
      });
    });

    it('boundedJson prints what JSON.stringify(v, null, 2) prints, within its bounds', () => {
      const plan = JSON.parse(s.stored).payload.metadata.event_payloads[0].payload.plan as unknown;
      const values: unknown[] = [
        plan,
        { a: [1, 'x', null, true, { b: [] }, {}], '': -0, big: 1e21, s: '\u2028"\\</script>' },
        [],
        {},
        'text',
        3.5,
        null,
        [[[[1]]]],
      ];
      for (const v of values) expect(boundedJson(v)).toBe(JSON.stringify(v, null, 2));
    });

    it('boundedJson says what it leaves out: nesting past its depth, text past its length', () => {
      expect(boundedJson([[[1]], { a: {} }], { depth: 2, chars: 1000 })).toBe(
        JSON.stringify([['…'], { a: {} }], null, 2).replace('"…"', '[…]'),
      );
      expect(boundedJson({ a: { b: 1 } }, { depth: 1, chars: 1000 })).toBe('{\n  "a": {…}\n}');
      const cut = boundedJson({ a: 'x'.repeat(100) }, { depth: 5, chars: 20 });
      expect(cut).toBe(`${'{\n  "a": "xxxxxxxxxxxxxxx'.slice(0, 20)}\n… (cut at 20 characters)`);
      const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
      expect(() => JSON.stringify(deep)).toThrow(RangeError);
      expect(boundedJson(deep)).toMatch(/\[…\]/);
    });
  });
});
