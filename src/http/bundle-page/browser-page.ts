/**
 * The bundle page's script, run in the reader's browser: it reads the page's embedded bytes,
 * trust and the bundle id its link names, verifies them, and writes the verdict in. Inlined as
 * compiled text like browser-verify.ts (see page-script.ts): no imports but `import type`.
 */
import type { BrowserVerdict, TwoPersonCheck, verifyInBrowser } from './browser-verify.js';

/** The few DOM members the page script uses (the project compiles without the DOM library). */
interface PageElement {
  textContent: string | null;
  className: string;
  open: boolean;
  getAttribute(name: string): string | null;
  append(...nodes: (PageElement | string)[]): void;
  replaceChildren(...nodes: (PageElement | string)[]): void;
}
interface PageDocument {
  getElementById(id: string): PageElement | null;
  createElement(tag: string): PageElement;
}

/**
 * Runs in the page: reads the exact bundle bytes from the download link, the server's trust
 * from its JSON block and the link's bundle id from the page's `main`, verifies them with
 * `verify`, and writes both verdicts into the page as text only (textContent, never markup).
 * Running it again (a page saved after it ran) redraws the same.
 */
export async function runBundlePage(
  verify: typeof verifyInBrowser,
  twoPerson: TwoPersonCheck,
): Promise<void> {
  const doc = (globalThis as unknown as { document: PageDocument }).document;
  const el = (id: string) => doc.getElementById(id)!;
  const make = (tag: string, className: string, text: string) => {
    const e = doc.createElement(tag);
    e.className = className;
    e.textContent = text;
    return e;
  };
  const box = el('verdict');
  const serverOk = box.getAttribute('data-server') === 'ok';
  let verdict: BrowserVerdict;
  try {
    const href = el('bundle-json').getAttribute('href') ?? '';
    const b64 = href.slice(href.indexOf(',') + 1);
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const trust = JSON.parse(el('bundle-trust').textContent ?? '');
    verdict = await verify(bytes, trust, twoPerson, {
      bundleId: el('page').getAttribute('data-bundle-id') ?? '',
    });
  } catch (err) {
    verdict = { status: 'unavailable', message: `the page could not be read: ${String(err)}`, checks: [] };
  }
  const marks = { ok: '\u2713', fail: '\u2717', na: '\u2013' };
  el('browser-checks').replaceChildren(
    ...verdict.checks.map((c) => {
      const kind = c.ok === true ? 'ok' : c.ok === false ? 'fail' : 'na';
      const li = make('li', `check ${kind}`, '');
      const said = make('span', '', '');
      if (c.reason) said.append(make('code', 'reason', c.reason), ' ');
      said.append(c.message);
      li.append(make('span', 'mark', marks[kind]), said);
      return li;
    }),
  );
  const counted = verdict.checks.filter((c) => c.ok !== null);
  const passed = counted.filter((c) => c.ok).length;
  el('browser-summary').textContent = `What your browser checked: ${passed} of ${counted.length} passed`;
  el('browser-details').open = verdict.status !== 'verified';
  el('browser-message').textContent = verdict.status === 'verified' ? verdict.message : '';
  const status = el('browser-status');
  const word = el('verdict-word');
  const line = el('verdict-line');
  const source = el('verdict-source');
  if (verdict.status === 'failed') {
    status.className = 'status fail';
    status.textContent = `FAIL ${verdict.reason}`;
    if (serverOk) {
      // The server passed what the browser fails: the browser's finding goes on top.
      box.className = 'verdict fail';
      word.textContent = 'FAIL';
      line.replaceChildren(make('code', 'reason', verdict.reason), `: ${verdict.message}`);
      source.textContent =
        'Found by your browser, from the bytes of this page; the server passed it. Do not rely on anything this bundle says.';
      el('glance-label').textContent = 'What the bundle claims (unverified):';
    } else {
      source.textContent = `Found by the server, and by your browser from the bytes of this page (${verdict.reason}). Do not rely on anything this bundle says.`;
    }
  } else if (verdict.status === 'verified') {
    status.className = 'status ok';
    status.textContent = 'VERIFIED';
    if (serverOk) {
      box.className = 'verdict ok';
      word.textContent = 'VERIFIED';
      line.textContent = `Signature, hashes, event chain, bindings and approvals check out: ${verdict.message}.`;
      source.textContent =
        "Computed in your browser (WebCrypto Ed25519, SHA-256) from the exact bytes of this page against the server's published keys, and by the server.";
    } else {
      source.textContent =
        'Found by the server; your browser found no fault in what it checks. Do not rely on anything this bundle says.';
    }
  } else {
    status.className = 'status warn';
    status.textContent = 'NOT CHECKED';
    if (serverOk) {
      box.className = 'verdict warn';
      word.textContent = 'NOT VERIFIED HERE';
      line.textContent = `Your browser could not check this bundle: ${verdict.message}.`;
      source.textContent =
        'The server says VERIFIED. Check it yourself: save this page and open the file, or run the verify command below.';
    }
  }
}
