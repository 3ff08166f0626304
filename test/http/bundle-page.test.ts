import { createHash } from 'node:crypto';
import vm from 'node:vm';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prefersHtml } from '../../src/http/bundle-page/accept.js';
import { escapeHtml, html, jsonInScript } from '../../src/http/bundle-page/html.js';
import { bundlePageScript } from '../../src/http/bundle-page/page-script.js';
import { verifyInBrowser } from '../../src/http/bundle-page/browser-verify.js';
import { checkTwoPerson } from '../../src/proofs/two-person.js';
import {
  HOSTILE,
  MATTERMOST_URL,
  type SealedBundleApp,
  sealedBundleApp,
} from '../browser/sealed-bundle-app.js';
import { dialectName } from '../helpers/db.js';
import { testGateway } from '../helpers/receipts.js';
import { eventOf, forge, type Obj } from '../proofs/adversarial-forge.js';

const BROWSER_ACCEPT =
  'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';

const sha256Source = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** The one element `<tag …>…</tag>` of `page` whose opening tag is exactly `open`. */
function elementText(page: string, open: string, tag: string): string {
  const start = page.indexOf(open);
  expect(start).toBeGreaterThan(-1);
  expect(page.indexOf(open, start + 1)).toBe(-1);
  return page.slice(start + open.length, page.indexOf(`</${tag}>`, start));
}

describe('prefersHtml: the page only for a client that prefers HTML', () => {
  it.each([
    [undefined, false],
    ['', false],
    ['*/*', false],
    ['application/json', false],
    ['application/json, text/html', false],
    ['text/html;q=0.5, application/json', false],
    ['text/html;q=0, */*', false],
    ['text/html;q=0.5, */*', false],
    ['text/html;q=2', false],
    ['image/png', false],
    ['text/html', true],
    ['text/html, */*;q=0.8', true],
    ['text/*', true],
    ['TEXT/HTML', true],
    ['application/json;q=0.9, text/html', true],
    [BROWSER_ACCEPT, true],
  ])('Accept %j → HTML %s', (accept, expected) => {
    expect(prefersHtml(accept)).toBe(expected);
  });
});

describe('escaping', () => {
  it('html escapes every interpolation that is not itself markup', () => {
    const text = `<script>alert("x")</script> & 'q'`;
    expect(escapeHtml(text)).toBe('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;');
    expect(
      html`<p title="${text}">${text}${[text, html`<b>${text}</b>`]}${null}${undefined}${false}</p>`.text,
    ).toBe(
      `<p title="${escapeHtml(text)}">${escapeHtml(text)}${escapeHtml(text)}<b>${escapeHtml(text)}</b></p>`,
    );
  });

  it('JSON in a script element cannot close it and still parses to the same value', () => {
    const value = { a: '</script><!-- & \u2028\u2029', b: [1, 'x>y'] };
    const text = jsonInScript(value).text;
    expect(text).not.toMatch(/[<>&\u2028\u2029]/);
    expect(JSON.parse(text)).toEqual(value);
  });
});

describe('the page script', () => {
  it('is one classic script, with the two-person rule and the verifier inlined, and no module syntax', () => {
    const { text, cspHash } = bundlePageScript();
    expect(cspHash).toBe(sha256Source(text));
    expect(() => new vm.Script(text)).not.toThrow();
    expect(text).not.toMatch(/^\s*(import|export)\b/m);
    expect(text).not.toMatch(/<\/script|<!--/i);
    for (const name of ['function checkTwoPerson(', 'function verifyInBrowser(', 'function runBundlePage(']) {
      expect(text).toContain(name);
    }
  });
});

describe(`GET /v1/bundles/:id, JSON or page (${dialectName})`, () => {
  let s: SealedBundleApp;
  beforeAll(async () => {
    s = await sealedBundleApp();
  });
  afterAll(async () => {
    await s?.close();
  });

  const get = (accept?: string, id = s.bundleId) =>
    s.app.inject({ url: `/v1/bundles/${id}`, headers: accept === undefined ? {} : { accept } });

  it.each([undefined, '*/*', 'application/json', 'application/json, text/html', 'text/html;q=0.1, */*'])(
    'Accept %j: the stored envelope byte for byte, as JSON, varying on Accept',
    async (accept) => {
      const res = await get(accept);
      expect(res.statusCode).toBe(200);
      expect(res.rawPayload.equals(Buffer.from(s.stored, 'utf8'))).toBe(true);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(res.headers.vary).toBe('Accept');
      expect(res.headers['cache-control']).toBe('private, max-age=31536000, immutable');
      expect(res.headers['content-security-policy']).toBeUndefined();
    },
  );

  it('a browser gets the page: strict CSP allowing only its own hashed script and style, never cached', async () => {
    const res = await get(BROWSER_ACCEPT);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers.vary).toBe('Accept');
    expect(res.headers['cache-control']).toBe('private, no-store');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
    expect(res.headers['x-frame-options']).toBe('DENY');
    const page = res.body;
    const script = elementText(page, '<script>', 'script');
    const style = elementText(page, '<style>', 'style');
    expect(res.headers['content-security-policy']).toBe(
      `default-src 'none'; script-src ${sha256Source(script)}; style-src ${sha256Source(style)}; ` +
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    // A saved copy keeps the same policy (less frame-ancestors, which a meta element cannot set).
    const meta = `default-src 'none'; script-src ${sha256Source(script)}; style-src ${sha256Source(style)}; base-uri 'none'; form-action 'none'`;
    expect(page).toContain(`<meta http-equiv="Content-Security-Policy" content="${escapeHtml(meta)}" />`);
    // Nothing loaded from anywhere, nothing run but the one script: no handler or style attributes.
    const tags = [
      ...page
        .replace(script, '')
        .replace(style, '')
        .matchAll(/<[a-z][^>]*>/gi),
    ].map((m) => m[0]);
    expect(tags.length).toBeGreaterThan(100);
    expect(tags.filter((t) => /^<(img|iframe|object|embed|link|base|form)\b/i.test(t))).toEqual([]);
    expect(tags.filter((t) => /\s(on[a-z]+|style|src)\s*=/i.test(t))).toEqual([]);
    expect(page.match(/<script\b/g)).toHaveLength(2);
    expect(page).toContain('<script type="application/json" id="bundle-trust">');
  });

  it('text from the bundle is escaped wherever it appears: summaries, results, quotes', async () => {
    const page = (await get('text/html')).body;
    expect(page).not.toContain('<script>document.title');
    expect(page).not.toContain('onerror="alert');
    expect(page).toContain(`Post the summary ${escapeHtml(HOSTILE)}`);
    expect(page).toContain(`post-summary done ${escapeHtml(HOSTILE)}`);
    // Outside the two scripts, no `<` that HTML would read as markup comes from the bundle.
    expect(page.split('</script>')).toHaveLength(3);
  });

  it('embeds the exact stored bytes (the download) and the server trust the browser checks against', async () => {
    const page = (await get('text/html')).body;
    const href = /id="bundle-json"[^>]*href="data:application\/json;base64,([A-Za-z0-9+/=]+)"/.exec(page);
    expect(href).not.toBeNull();
    expect(Buffer.from(href![1]!, 'base64').equals(Buffer.from(s.stored, 'utf8'))).toBe(true);
    const trust = JSON.parse(
      elementText(page, '<script type="application/json" id="bundle-trust">', 'script'),
    );
    expect(trust).toEqual({
      keys: s.engine.ctx.keyRing.jwks.keys,
      gateway_signers: [...s.engine.ctx.gatewaySigners],
    });
    expect(JSON.stringify(trust)).not.toMatch(/"d"/);
  });

  it('links the plan post and every approval post to Mattermost, and the policy to /v1/wpc', async () => {
    const page = (await get('text/html')).body;
    const p = JSON.parse(s.stored).payload.metadata.claw_approvals;
    expect(page).toContain(`href="${MATTERMOST_URL}/_redirect/pl/${p.mattermost.root_post_id}"`);
    expect(p.mattermost.approval_post_ids).toHaveLength(2);
    for (const id of p.mattermost.approval_post_ids) {
      expect(page).toContain(`href="${MATTERMOST_URL}/_redirect/pl/${id}"`);
    }
    expect(page).toContain(`href="/v1/wpc/${p.policy.policy_hash_b64u}"`);
    for (const step of p.steps) {
      expect(page).toContain(step.cst.jti);
      expect(page).toContain(step.cst.token_scope_hash_b64u);
    }
  });

  it('the server verdict is in the page as served: VERIFIED now, the page itself does the rest', async () => {
    const page = (await get('text/html')).body;
    expect(page).toContain('data-server="ok"');
    expect(page).toMatch(/<p class="status ok">\s*VERIFIED\s*<\/p>/);
  });

  /** Runs `check` with `envelope` stored as this bundle's row (around its append-only trigger), then puts the sealed one back. */
  async function whileStored(envelope: string, check: () => Promise<void>): Promise<void> {
    const store = (text: string) =>
      s.engine.ctx.db.transaction().execute(async (trx) => {
        await sql`alter table bundles disable trigger bundles_append_only`.execute(trx);
        await sql`update bundles set envelope = ${text} where bundle_id = ${s.bundleId}`.execute(trx);
        await sql`alter table bundles enable trigger bundles_append_only`.execute(trx);
      });
    await store(envelope);
    try {
      await check();
    } finally {
      await store(s.stored);
    }
  }

  const policyHash = () =>
    JSON.parse(s.stored).payload.metadata.claw_approvals.policy.policy_hash_b64u as string;

  it("the server's verdict is made against the signed policy from this server's registry, and the page says so", async () => {
    const page = (await get('text/html')).body;
    expect(page).toContain(
      `the signed policy &quot;${policyHash()}&quot; (trusted signer) gives every planned step the gate and two-person rule job_created pinned`,
    );
    const signer = s.engine.ctx.keyRing.active.did;
    expect(page).toMatch(
      new RegExp(`Signed by <code>${signer}</code> on [^;]+; the server's verdict checks`),
    );
  });

  it('a rule weakened consistently in job_created and both records: only the signed policy catches it, and the page puts FAIL on top', async () => {
    const weakened = forge(s.stored, { key: s.engine.ctx.keyRing.active, gateway: testGateway }, (p) => {
      const gated = (x: Obj) => x.id === 'post-summary' || x.step === 'post-summary';
      const planned = (eventOf(p, 'job_created').body.steps as Obj[]).find(gated)!;
      const sealed = (p.metadata.claw_approvals.steps as Obj[]).find(gated)!;
      const minted = (p.metadata.event_payloads as Obj[]).find(
        (x) => gated(x.payload) && x.payload.approval,
      )!;
      for (const rule of [planned.rule, sealed.approval.rule, minted.payload.approval.rule])
        rule.required_approvals = 1;
    });
    // Nothing inside the bundle contradicts it: the browser, which has no signed policy, passes it.
    const ctx = s.engine.ctx;
    const trust = { keys: ctx.keyRing.jwks.keys, gateway_signers: [...ctx.gatewaySigners] };
    expect(await verifyInBrowser(new TextEncoder().encode(weakened), trust, checkTwoPerson)).toMatchObject({
      status: 'verified',
    });
    await whileStored(weakened, async () => {
      const page = (await get('text/html')).body;
      expect(page).toContain('<section id="verdict" class="verdict fail" data-server="fail"');
      expect(page).toContain(
        '<code class="reason">APPROVAL_RULE_MISMATCH</code>: step &quot;post-summary&quot;: job_created pinned another approval rule than the signed policy',
      );
    });
  });

  it('a policy the registry cannot give (its row no longer verifies): the page still answers, saying the rule check was not made and why', async () => {
    const hash = policyHash();
    const { canonical_payload: original } = await s.engine.ctx.db
      .selectFrom('wpc_registry')
      .select('canonical_payload')
      .where('policy_hash_b64u', '=', hash)
      .executeTakeFirstOrThrow();
    const setPayload = (text: string) =>
      s.engine.ctx.db.transaction().execute(async (trx) => {
        await sql`alter table wpc_registry disable trigger wpc_registry_immutable`.execute(trx);
        await sql`update wpc_registry set canonical_payload = ${text} where policy_hash_b64u = ${hash}`.execute(
          trx,
        );
        await sql`alter table wpc_registry enable trigger wpc_registry_immutable`.execute(trx);
      });
    await setPayload(`${original} `);
    try {
      const res = await get('text/html');
      expect(res.statusCode).toBe(200);
      expect(res.body).toContain('data-server="ok"');
      expect(res.body).toContain(
        `not made: the signed policy &quot;${hash}&quot; was not supplied, so the rules job_created pinned were not recomputed from it`,
      );
      expect(res.body).toMatch(
        new RegExp(
          `Not available from this server's registry \\(stored policy ${hash} failed verification: [^)]*\\)`,
        ),
      );
    } finally {
      await setPayload(original);
    }
  });

  it('unknown ids answer the JSON error for either kind of client, varying on Accept', async () => {
    for (const accept of [undefined, 'text/html']) {
      const res = await get(accept, `pb_${'A'.repeat(22)}`);
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ error: { code: 'ERR_BUNDLE_NOT_FOUND' } });
      expect(res.headers.vary).toBe('Accept');
    }
  });

  it('a stored row that is no longer JSON: the page says FAIL at the top, the JSON answer is the stored bytes', async () => {
    const broken = `${s.stored.slice(0, -1)}`;
    await s.engine.ctx.db.transaction().execute(async (trx) => {
      await sql`alter table bundles disable trigger bundles_append_only`.execute(trx);
      await sql`update bundles set envelope = ${broken} where bundle_id = ${s.bundleId}`.execute(trx);
      await sql`alter table bundles enable trigger bundles_append_only`.execute(trx);
    });
    const page = (await get('text/html')).body;
    expect(page).toContain('<section id="verdict" class="verdict fail" data-server="fail"');
    expect(page).toContain(
      '<code class="reason">BUNDLE_ENVELOPE_MALFORMED</code>: the stored bundle is not JSON',
    );
    expect(page.indexOf('id="verdict"')).toBeLessThan(page.indexOf('class="card"'));
    expect((await get()).rawPayload.equals(Buffer.from(broken, 'utf8'))).toBe(true);
  });
});
