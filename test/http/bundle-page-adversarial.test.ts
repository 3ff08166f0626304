import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BrowserTrust, verifyInBrowser } from '../../src/http/bundle-page/browser-verify.js';
import { checkTwoPerson } from '../../src/proofs/two-person.js';
import { type BundleTrust, verifyBundle } from '../../src/proofs/verify-bundle.js';
import { type SealedBundleApp, sealedBundleApp } from '../browser/sealed-bundle-app.js';
import { dialectName } from '../helpers/db.js';
import { U } from '../helpers/engine.js';
import { testGateway } from '../helpers/receipts.js';
import { eventOf, forge, type Obj } from '../proofs/adversarial-forge.js';

/** Markup that would run, load or restyle something if any part of the page let it through. */
const MARKUP = `"'><svg/onload=alert(1)><script>alert(2)</script><a href="javascript:alert(3)" style="x">`;

/**
 * Values where JSON texts, JCS and engines are most likely to disagree: negative zero, exponents,
 * the extremes of doubles, an integer past 2^53, astral characters, and keys that sort
 * differently by code unit and by code point, integer-like keys (which JavaScript enumerates
 * first) and `__proto__` (an own key only when JSON.parse makes it).
 */
const EDGE_VALUES = String.raw`{
  "neg_zero": -0, "big": 1e21, "max": 1.7976931348623157e308, "tiny": 5e-324, "small": 1e-7,
  "frac": 0.1, "third": 0.3333333333333333, "past_2_53": 9007199254740993,
  "astral": "\ud83d\ude00", "nul": "\u0000", "separators": "\u2028\u2029",
  "keys": { "é": 1, "e": 2, "\ud83d\ude00": 3, "\uffff": 4, "10": 5, "2": 6, "__proto__": { "x": 1 }, "": 7 }
}`;

/**
 * Lone surrogates: JSON.stringify escapes them (so the bundle hash covers them alike in Node and
 * browsers), while JCS (RFC 8785, the `canonicalize` package) refuses them, so they can only
 * stand where no event payload is.
 */
const LONE_SURROGATES = 'high \ud800, low \udc00, reversed \udc00\ud800';

/** Every string in `value`, each passed through `f` (a deep copy; keys kept). */
function mapStrings(value: unknown, f: (s: string) => string): unknown {
  if (typeof value === 'string') return f(value);
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, f));
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapStrings(v, f)]));
  return value;
}

/** Each tag of `page` outside its script and style elements: its text, name and attribute names. */
function tagsOf(page: string): { tag: string; name: string; attributes: string[] }[] {
  const markup = page
    .replace(/(<script\b[^>]*>)[\s\S]*?(<\/script>)/g, '$1$2')
    .replace(/(<style\b[^>]*>)[\s\S]*?(<\/style>)/g, '$1$2');
  return [...markup.matchAll(/<([a-zA-Z][a-zA-Z0-9-]*)([^>]*)>/g)].map((m) => ({
    tag: m[0],
    name: m[1]!.toLowerCase(),
    attributes: [...m[2]!.matchAll(/([^\s=/]+)(?:="[^"]*")?/g)].map((a) => a[1]!.toLowerCase()),
  }));
}

/**
 * H8's adversarial review of the bundle page (issue 10): what a hostile bundle can make the page
 * and the in-browser verifier do. Forgeries are signed by the trusted key (`forge`), so each case
 * reaches the check it aims at.
 */
describe(`the bundle page against hostile bundles (${dialectName})`, () => {
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

  const forged = (edit: (p: Obj) => void) =>
    forge(s.stored, { key: s.engine.ctx.keyRing.active, gateway: testGateway }, edit);
  const inBrowser = (text: string) =>
    verifyInBrowser(new TextEncoder().encode(text), browserTrust, checkTwoPerson);
  const step = (p: Obj, id: string) => (p.metadata.claw_approvals.steps as Obj[]).find((x) => x.step === id)!;

  /** The page the server answers while the bundles row holds `text` (around its append-only trigger, as someone with database access could). */
  async function pageOf(text: string): Promise<string> {
    const swap = (envelope: string) =>
      s.engine.ctx.db.transaction().execute(async (trx) => {
        await sql`alter table bundles disable trigger bundles_append_only`.execute(trx);
        await sql`update bundles set envelope = ${envelope} where bundle_id = ${s.bundleId}`.execute(trx);
        await sql`alter table bundles enable trigger bundles_append_only`.execute(trx);
      });
    await swap(text);
    try {
      const res = await s.app.inject({ url: `/v1/bundles/${s.bundleId}`, headers: { accept: 'text/html' } });
      expect(res.statusCode).toBe(200);
      return res.body;
    } finally {
      await swap(s.stored);
    }
  }

  it('the sealed bundle itself: the forger changes nothing it was not asked to', async () => {
    const text = forged(() => {});
    expect(JSON.parse(text).payload).toEqual(JSON.parse(s.stored).payload);
    expect(await inBrowser(text)).toMatchObject({ status: 'verified' });
    expect(verifyBundle(JSON.parse(text), serverTrust).ok).toBe(true);
  });

  it('markup in the strings of a bundle reaches the page as text: no tag, attribute or handler of its own', async () => {
    const genuine = tagsOf(await pageOf(s.stored));
    const allowedTags = new Set(genuine.map((t) => t.name));
    // `open`: a failed server verdict shows its checks unfolded.
    const allowedAttributes = new Set([...genuine.flatMap((t) => t.attributes), 'open']);
    const hostile = (v: unknown) => `${String(v)}${MARKUP}`;
    // Signed by the trusted key, every free text changed where the sealer writes it (the event and
    // the metadata alike), so that the server says VERIFIED and the page takes its OK branch...
    const signed = forged((p) => {
      const ours = p.metadata.claw_approvals as Obj;
      const results = new Map<string, string>();
      for (const e of p.event_chain as Obj[])
        if (e.event_type === 'step_result') {
          const body = (p.metadata.event_payloads as Obj[]).find((x) => x.event_id === e.event_id)!.payload;
          body.summary = hostile(body.summary);
          results.set(body.step as string, body.summary as string);
        }
      for (const st of ours.steps as Obj[]) st.result_summary = results.get(st.step as string);
      const ended = eventOf(p, 'job_ended').body;
      ended.reason = hostile(ended.reason);
      ours.end_reason = ended.reason;
      const planned = new Map<string, string>();
      for (const st of eventOf(p, 'job_created').body.steps as Obj[]) {
        st.summary = hostile(st.summary);
        planned.set(st.id as string, st.summary as string);
      }
      for (const r of p.human_approval_receipts as Obj[]) {
        const step = (p.metadata.event_payloads as Obj[]).find(
          (x) =>
            (p.event_chain as Obj[]).find((e) => e.event_hash_b64u === r.binding.event_hash_b64u)!
              .event_id === x.event_id,
        )!.payload.step as string;
        r.scope_summary = planned.get(step)!.slice(0, 1024);
      }
    });
    expect(verifyBundle(JSON.parse(signed), serverTrust).ok).toBe(true);
    // ...and every string of it, so that nothing verifies and the server's FAIL quotes the bundle.
    const everything = JSON.stringify(mapStrings(JSON.parse(s.stored), hostile));
    for (const [text, server, shown] of [
      [signed, 'data-server="ok"', 6],
      [everything, 'data-server="fail"', 100],
    ] as const) {
      const page = await pageOf(text);
      expect(page).toContain(server);
      const tags = tagsOf(page);
      expect(tags.filter((t) => !allowedTags.has(t.name))).toEqual([]);
      expect(
        tags.flatMap((t) => t.attributes).filter((a) => !allowedAttributes.has(a) || a.startsWith('on')),
      ).toEqual([]);
      expect(page.match(/<script\b/g)).toHaveLength(2);
      expect(tags.filter((t) => /javascript:|data:text|style=/i.test(t.tag))).toEqual([]);
      // The markup was shown, escaped, wherever the page shows those strings.
      expect(page.split('&lt;svg/onload=alert(1)&gt;').length - 1).toBeGreaterThanOrEqual(shown);
    }
  });

  it('JCS and JSON.stringify give the same bytes in the browser as on the server for edge values', async () => {
    const username = 'alice \ud83d\ude00 \u2028 é';
    const text = forged((p) => {
      eventOf(p, 'job_ended').body.edge = JSON.parse(EDGE_VALUES);
      // In a snapshot too: both verifiers compare it with its mint event's record by JCS.
      for (const approval of [eventOf(p, 'token_minted', 3).body.approval, step(p, 'post-summary').approval])
        (approval.approvers as Obj[]).find((a) => a.user_id === U.alice)!.username = username;
      step(p, 'post-summary').result_summary = LONE_SURROGATES;
    });
    expect(text).toContain('high \\ud800, low \\udc00, reversed \\udc00\\ud800');
    const envelope = JSON.parse(text) as Obj;
    expect(Object.keys(eventOf(envelope.payload, 'job_ended').body.edge.keys)).toContain('__proto__');
    expect(verifyBundle(envelope, serverTrust).ok).toBe(true);
    expect(await inBrowser(text)).toMatchObject({ status: 'verified' });
    // The same values, one of them changed after signing: both verifiers see it.
    const changed = text.replace('"big":1e+21', '"big":1e+20');
    expect(changed).not.toBe(text);
    expect(verifyBundle(JSON.parse(changed), serverTrust)).toMatchObject({
      ok: false,
      reason: 'BUNDLE_HASH_MISMATCH',
    });
    expect(await inBrowser(changed)).toMatchObject({ status: 'failed', reason: 'BUNDLE_HASH_MISMATCH' });
  });

  it.each([
    ['payload.metadata', (deep: string) => s.stored.replace('"harness":', `"deep":${deep},"harness":`)],
    [
      'an event payload',
      (deep: string) => s.stored.replace('"reason":"all steps succeeded"', `"reason":${deep}`),
    ],
    ['the envelope, outside the payload', (deep: string) => s.stored.replace(/}$/, `,"deep":${deep}}`)],
  ])('JSON nested 100 000 deep in %s: both verifiers answer FAIL, neither throws', async (_where, splice) => {
    const text = splice(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    expect(text).not.toBe(s.stored);
    expect(verifyBundle(JSON.parse(text), serverTrust).ok).toBe(false);
    // The browser ignores fields outside the envelope's nine; its verdict is a verdict either way.
    expect(['failed', 'verified']).toContain((await inBrowser(text)).status);
  });

  /**
   * Forgeries that keep the event chain consistent with the snapshot (the mint event records
   * the same bad approvals): not a snapshot that differs from its record, but a record that
   * breaks the rule it was minted under.
   */
  it.each<[string, (p: Obj) => void, string]>([
    [
      'minted on one of two required approvals',
      (p) => {
        for (const approval of [
          eventOf(p, 'token_minted', 3).body.approval,
          step(p, 'post-summary').approval,
        ])
          (approval.approvers as Obj[]).pop();
        (eventOf(p, 'token_minted', 3).body.counted as Obj[]).pop();
        p.human_approval_receipts = (p.human_approval_receipts as Obj[]).filter(
          (r) => r.approver_subject !== U.chioma,
        );
      },
      'APPROVAL_QUORUM_NOT_MET',
    ],
    [
      'minted on two approvers found only in one group',
      (p) => {
        for (const approval of [
          eventOf(p, 'token_minted', 3).body.approval,
          step(p, 'post-summary').approval,
        ]) {
          const chioma = (approval.approvers as Obj[]).find((a) => a.user_id === U.chioma)!;
          chioma.found_in = [{ group: 'ops-oncall', ref: U.chioma, via: 'user_id' }];
          chioma.counted_for = 'ops-oncall';
        }
        (eventOf(p, 'token_minted', 3).body.counted as Obj[]).find((c) => c.user_id === U.chioma)!.group =
          'ops-oncall';
      },
      'APPROVAL_GROUPS_NOT_DISTINCT',
    ],
    [
      'minted with the requester counted as an approver',
      (p) => {
        eventOf(p, 'job_created').body.requester_id = U.alice;
        p.metadata.claw_approvals.requester_id = U.alice;
        for (const approval of [
          eventOf(p, 'token_minted', 3).body.approval,
          step(p, 'post-summary').approval,
        ])
          approval.requester_id = U.alice;
      },
      'APPROVAL_BY_REQUESTER',
    ],
  ])('a chain that records a token %s: the browser fails it with its reason', async (_what, edit, reason) => {
    expect(await inBrowser(forged(edit))).toMatchObject({ status: 'failed', reason });
  });
});
