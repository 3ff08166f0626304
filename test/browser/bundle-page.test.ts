import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { sql } from 'kysely';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dialectName } from '../helpers/db.js';
import { U } from '../helpers/engine.js';
import {
  APPROVAL_POSTS,
  HOSTILE,
  MATTERMOST_URL,
  type SealedBundleApp,
  sealedBundleApp,
  USERNAMES,
} from './sealed-bundle-app.js';

/** Debian's chromium (`.ci/run` installs it and sets CLAW_CHROMIUM); nothing is downloaded. */
const CHROMIUM = process.env.CLAW_CHROMIUM || '/usr/bin/chromium';
const HAS_CHROMIUM = existsSync(CHROMIUM);
if (!HAS_CHROMIUM) {
  console.warn(
    `SKIPPED the bundle page browser test: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CLAW_CHROMIUM)`,
  );
}

const RED = 'rgb(179, 38, 30)';

/** The computed text colour of `selector` (the tests compile without the DOM library). */
function colorOf(page: Page, selector: string): Promise<string> {
  return page.$eval(
    selector,
    (e) =>
      (globalThis as unknown as { getComputedStyle(el: unknown): { color: string } }).getComputedStyle(e)
        .color,
  );
}

interface Opened {
  page: Page;
  /** Console errors, CSP violations among them. */
  errors: string[];
  word: string;
  close(): Promise<void>;
}

describe.skipIf(!HAS_CHROMIUM)(`the bundle page in a real browser (${dialectName})`, () => {
  let s: SealedBundleApp;
  let browser: Browser;
  let base: string;
  let shots: string;

  beforeAll(async () => {
    s = await sealedBundleApp();
    await s.app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(s.app.server.address() as AddressInfo).port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
      ],
    });
    shots = await fs.mkdtemp(path.join(os.tmpdir(), 'claw-bundle-page-'));
    console.info(`bundle page screenshots in ${shots}`);
  });

  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  /** Opens `url` in a fresh context and waits for the browser's own verdict. */
  async function open(url: string, phone = false): Promise<Opened> {
    const context = await browser.newContext(
      phone
        ? { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }
        : { viewport: { width: 1280, height: 900 } },
    );
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    // A locator wait runs in Playwright's own world: the page's CSP (no eval) stays as served.
    await page.locator('#browser-status', { hasNotText: 'Checking' }).waitFor();
    const word = (await page.textContent('#verdict-word'))!.trim();
    return { page, errors, word, close: () => context.close() };
  }

  const bundleUrl = () => `${base}/v1/bundles/${s.bundleId}`;

  async function fetchJson(): Promise<{ body: Buffer; type: string | null; vary: string | null }> {
    const res = await fetch(bundleUrl(), { headers: { accept: 'application/json' } });
    expect(res.status).toBe(200);
    return {
      body: Buffer.from(await res.arrayBuffer()),
      type: res.headers.get('content-type'),
      vary: res.headers.get('vary'),
    };
  }

  /** Who the bundle's approval snapshot says approved post-summary, by username. */
  function approverNames(): (string | null)[] {
    const steps = JSON.parse(s.stored).payload.metadata.claw_approvals.steps as {
      step: string;
      approval: { approvers: { username: string | null }[] } | null;
    }[];
    return steps.find((x) => x.step === 'post-summary')!.approval!.approvers.map((a) => a.username);
  }

  it('says VERIFIED, computed in the browser, with the approvers and their posts; user text stays text', async () => {
    const o = await open(bundleUrl());
    try {
      await o.page.screenshot({ path: path.join(shots, 'verified.png'), fullPage: true });
      await o.page.screenshot({ path: path.join(shots, 'verified-top.png') });
      expect(o.word).toBe('VERIFIED');
      expect(await o.page.getAttribute('#verdict', 'class')).toBe('verdict ok');
      expect((await o.page.textContent('#browser-status'))!.trim()).toBe('VERIFIED');
      const checks = await o.page.$$eval('#browser-checks li', (lis) =>
        lis.map((li) => ({ kind: li.className, text: li.textContent ?? '' })),
      );
      expect(checks.filter((c) => c.kind.includes('fail'))).toEqual([]);
      const checked = checks.filter((c) => c.kind === 'check ok').map((c) => c.text);
      for (const what of [
        'Ed25519 signature',
        "server's JWKS",
        'events, each hashed',
        'scope hash',
        'approval receipts',
        "steps are job_created's",
        'two-person rule recomputed from the sealed snapshot for "post-summary"',
        'recorded for the step before the mint and not withdrawn: "post-summary"',
        "minted for planned steps before the job's end",
        `the bundle is ${s.bundleId}, as this page's link names it`,
      ]) {
        expect(checked.some((t) => t.includes(what))).toBe(true);
      }
      // Said, not counted: the signed policy is not in the bundle; the server checks the rules against it.
      const notChecked = checks.filter((c) => c.kind === 'check na').map((c) => c.text);
      expect(notChecked.some((t) => t.includes('the signed policy is not in the bundle'))).toBe(true);
      const job = (await o.page.textContent('#job-h + dl'))!.replace(/\s+/g, ' ');
      expect(job).toContain("the server's verdict checks each step's gate and approval rule against it");
      // Every approver by name, under the verdict and in the approvals, with a permalink to their post.
      const names = [USERNAMES[U.alice]!, USERNAMES[U.chioma]!];
      expect(approverNames()).toEqual(names);
      const glance = (await o.page.textContent('#verdict'))!;
      const approvals = (await o.page.textContent('section[aria-labelledby="approvals-h"]'))!;
      for (const name of names) {
        expect(glance).toContain(name);
        expect(approvals).toContain(name);
      }
      for (const post of APPROVAL_POSTS) {
        expect(
          await o.page.locator(`a[href="${MATTERMOST_URL}/_redirect/pl/${post}"]`).count(),
        ).toBeGreaterThan(0);
      }
      // The hostile summary is shown as the text it is: no element, no script, no title change.
      expect(await o.page.textContent('body')).toContain(`Post the summary ${HOSTILE}`);
      expect(await o.page.title()).toBe(`Proof bundle ${s.bundleId}`);
      expect(await o.page.locator('img').count()).toBe(0);
      expect(await o.page.locator('script:not([type])').count()).toBe(1);
      // The CSP let the page's own script and style run, and nothing complained.
      expect(o.errors).toEqual([]);
      // The download is the stored bytes.
      const href = (await o.page.getAttribute('#bundle-json', 'href'))!;
      expect(href.startsWith('data:application/json;base64,')).toBe(true);
      expect(Buffer.from(href.slice(href.indexOf(',') + 1), 'base64').toString('utf8')).toBe(s.stored);
    } finally {
      await o.close();
    }
    const json = await fetchJson();
    expect(json.body.equals(Buffer.from(s.stored, 'utf8'))).toBe(true);
    expect(json.type).toBe('application/json; charset=utf-8');
    expect(json.vary).toBe('Accept');
  });

  it('reads on a phone: the verdict first, nothing scrolls sideways', async () => {
    const o = await open(bundleUrl(), true);
    try {
      await o.page.screenshot({ path: path.join(shots, 'phone.png'), fullPage: true });
      await o.page.screenshot({ path: path.join(shots, 'phone-top.png') });
      expect(o.word).toBe('VERIFIED');
      const { scroll, client } = await o.page.$eval('html', (e) => ({
        scroll: e.scrollWidth,
        client: e.clientWidth,
      }));
      expect(scroll).toBeLessThanOrEqual(client);
    } finally {
      await o.close();
    }
  });

  it('still verifies itself when saved as a file and opened without the server', async () => {
    const res = await fetch(bundleUrl(), { headers: { accept: 'text/html' } });
    const file = path.join(shots, `${s.bundleId}.html`);
    await fs.writeFile(file, await res.text());
    const o = await open(pathToFileURL(file).href);
    try {
      expect(o.word).toBe('VERIFIED');
      expect(o.errors).toEqual([]);
    } finally {
      await o.close();
    }
  });

  it('a saved page whose bundle bytes were edited: the browser alone finds it, FAIL on top in red', async () => {
    const res = await fetch(bundleUrl(), { headers: { accept: 'text/html' } });
    const page = await res.text();
    const at = s.stored.indexOf('"status":"completed"') + '"status":"'.length;
    const edited = `${s.stored.slice(0, at)}C${s.stored.slice(at + 1)}`;
    const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');
    expect(page).toContain(b64(s.stored));
    const file = path.join(shots, 'edited.html');
    await fs.writeFile(file, page.replace(b64(s.stored), b64(edited)));
    const o = await open(pathToFileURL(file).href);
    try {
      await o.page.screenshot({ path: path.join(shots, 'edited-top.png') });
      expect(await o.page.getAttribute('#verdict', 'data-server')).toBe('ok');
      expect(o.word).toBe('FAIL');
      expect(await o.page.getAttribute('#verdict', 'class')).toBe('verdict fail');
      expect(await o.page.textContent('#verdict-line')).toBe(
        'BUNDLE_HASH_MISMATCH: payload does not match payload_hash_b64u',
      );
      expect(await colorOf(o.page, '#verdict-word')).toBe(RED);
      expect(o.errors).toEqual([]);
    } finally {
      await o.close();
    }
  });

  it("a saved page whose link id was edited: the browser alone finds the bundle is not the page's", async () => {
    const res = await fetch(bundleUrl(), { headers: { accept: 'text/html' } });
    const page = await res.text();
    const other = 'pb_SomeoneElsesBundleId0000';
    const own = `data-bundle-id="${s.bundleId}"`;
    expect(page).toContain(own);
    const file = path.join(shots, 'other-id.html');
    await fs.writeFile(file, page.replace(own, `data-bundle-id="${other}"`));
    const o = await open(pathToFileURL(file).href);
    try {
      expect(await o.page.getAttribute('#verdict', 'data-server')).toBe('ok');
      expect(o.word).toBe('FAIL');
      expect(await o.page.textContent('#verdict-line')).toBe(
        `BUNDLE_ID_MISMATCH: this page is for "${other}" but the bundle is "${s.bundleId}"`,
      );
      expect(o.errors).toEqual([]);
    } finally {
      await o.close();
    }
  });

  it("another genuine bundle under this link's id: FAIL in both verdicts, the bundle's own id shown", async () => {
    const other = 'pb_SomeoneElsesBundleId0000';
    const move = (from: string, to: string) =>
      s.engine.ctx.db.transaction().execute(async (trx) => {
        await sql`alter table bundles disable trigger bundles_append_only`.execute(trx);
        await sql`update bundles set bundle_id = ${to} where bundle_id = ${from}`.execute(trx);
        await sql`alter table bundles enable trigger bundles_append_only`.execute(trx);
      });
    await move(s.bundleId, other);
    try {
      const o = await open(`${base}/v1/bundles/${other}`);
      try {
        await o.page.screenshot({ path: path.join(shots, 'other-id-top.png') });
        expect(o.word).toBe('FAIL');
        expect(await o.page.textContent('#verdict-line')).toContain('BUNDLE_ID_MISMATCH');
        expect((await o.page.textContent('#browser-status'))!.trim()).toBe('FAIL BUNDLE_ID_MISMATCH');
        expect((await o.page.textContent('#payload-bundle-id'))!.trim()).toBe(s.bundleId);
        expect(o.errors).toEqual([]);
      } finally {
        await o.close();
      }
    } finally {
      await move(other, s.bundleId);
    }
  });

  it('a byte flipped in the stored bundle: FAIL with the reason, in red, above everything; the JSON is what is stored', async () => {
    const at = s.stored.indexOf('Post the summary') + 'Post the summar'.length;
    expect(s.stored[at]).toBe('y');
    const tampered = `${s.stored.slice(0, at)}z${s.stored.slice(at + 1)}`;
    // The table is append-only: around its trigger, as someone with database access could.
    await s.engine.ctx.db.transaction().execute(async (trx) => {
      await sql`alter table bundles disable trigger bundles_append_only`.execute(trx);
      await sql`update bundles set envelope = ${tampered} where bundle_id = ${s.bundleId}`.execute(trx);
      await sql`alter table bundles enable trigger bundles_append_only`.execute(trx);
    });

    const o = await open(bundleUrl());
    try {
      await o.page.screenshot({ path: path.join(shots, 'tampered.png'), fullPage: true });
      await o.page.screenshot({ path: path.join(shots, 'tampered-top.png') });
      expect(o.word).toBe('FAIL');
      expect(await o.page.getAttribute('#verdict', 'class')).toBe('verdict fail');
      expect(await o.page.textContent('#verdict-line')).toContain('HASH_MISMATCH');
      expect((await o.page.textContent('#browser-status'))!.trim()).toBe('FAIL BUNDLE_HASH_MISMATCH');
      expect(await colorOf(o.page, '#verdict-word')).toBe(RED);
      // Above everything else: the first thing after the masthead, and higher on the page than any card.
      const order = await o.page.$$eval('main > *', (els) => els.map((e) => e.id || e.className));
      expect(order.slice(0, 2)).toEqual(['masthead', 'verdict']);
      const top = (await o.page.locator('#verdict').boundingBox())!.y;
      for (const card of await o.page.locator('.card').all()) {
        expect((await card.boundingBox())!.y).toBeGreaterThan(top);
      }
      expect(o.errors).toEqual([]);
    } finally {
      await o.close();
    }
    const json = await fetchJson();
    expect(json.body.equals(Buffer.from(tampered, 'utf8'))).toBe(true);
  });
});
