import { boundedJson } from './bounded-json.js';
import type { BrowserTrust } from './browser-verify.js';
import {
  type ApproverView,
  type BundleView,
  bundleView,
  type ReceiptView,
  type StepView,
} from './bundle-view.js';
import { html, jsonInScript, SafeHtml } from './html.js';
import { bundlePageScript } from './page-script.js';
import { BUNDLE_PAGE_STYLES, BUNDLE_PAGE_STYLES_HASH } from './styles.js';

/** The server's verdict as the page shows it (from `verifyBundle`). */
export interface ServerVerdictView {
  ok: boolean;
  /** Our reason and Claw Bureau's, on a failure. */
  reason: string | null;
  cbReason: string | null;
  message: string;
  checks: { id: string; ok: boolean; reason?: string; message: string }[];
}

/** The policy version the bundle pins, as this server's registry holds it. */
export type PinnedPolicyView =
  | { found: true; signerDid: string; issuedAt: string }
  /** Not in the registry, or no longer verifying there: why, in the registry's words. */
  | { found: false; why: string };

export interface BundlePageInput {
  bundleId: string;
  /** The envelope exactly as stored: embedded (base64) for the browser to verify and download. */
  stored: string;
  /** `stored` parsed, or undefined when it is not JSON. */
  envelope: unknown;
  server: ServerVerdictView;
  /** Whether the server's verdict had the signed policy to recompute each step's rule from (unsaid when absent). */
  policy?: PinnedPolicyView;
  /** The server's JWKS and gateway allowlist, embedded so that a saved page still checks itself. */
  trust: BrowserTrust;
  /** `config.mattermost.url`, for permalinks to the plan and approval posts. */
  mattermostUrl: string | null;
  /** `PUBLIC_URL`: absolute links (policy, verify command) that still work from a saved file. */
  publicUrl: string | null;
}

/**
 * The Content-Security-Policy of the page: nothing but its own hashed script and stylesheet.
 * The trust and the bundle are embedded, so the page fetches nothing (no connect-src).
 * `frame-ancestors` only works as a header; the `<meta>` copy keeps a saved file just as strict.
 */
export function bundlePageCsp(where: 'header' | 'meta'): string {
  const directives = [
    "default-src 'none'",
    `script-src ${bundlePageScript().cspHash}`,
    `style-src ${BUNDLE_PAGE_STYLES_HASH}`,
    "base-uri 'none'",
    "form-action 'none'",
    ...(where === 'header' ? ["frame-ancestors 'none'"] : []),
  ];
  return directives.join('; ');
}

const MATTERMOST_ID = /^[A-Za-z0-9]{1,64}$/;
const B64U = /^[A-Za-z0-9_-]{1,128}$/;

/** An http(s) base URL without its trailing slash, or null for anything else. */
function baseUrl(url: string | null): string | null {
  if (!url) return null;
  try {
    const u = new URL(url);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') return null;
    return u.href.replace(/\/+$/, '');
  } catch {
    return null;
  }
}

/** `2026-11-21T10:00:00.000Z` → `2026-11-21 10:00:00 UTC`; anything else as it is. */
function when(iso: string | null): string {
  if (!iso) return '—';
  const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(\.\d+)?Z$/.exec(iso);
  return m ? `${m[1]} ${m[2]} UTC` : iso;
}

interface Links {
  post(postId: string | null, label: string): SafeHtml;
  policy(hash: string | null): SafeHtml;
  absolute(path: string): string | null;
}

function linksFor(input: BundlePageInput): Links {
  const mattermost = baseUrl(input.mattermostUrl);
  const origin = baseUrl(input.publicUrl);
  return {
    post: (postId, label) =>
      postId && mattermost && MATTERMOST_ID.test(postId)
        ? html`<a href="${mattermost}/_redirect/pl/${postId}" rel="noreferrer noopener">${label}</a>`
        : html`<span class="muted">${label}${postId ? html` <code>${postId}</code>` : ''}</span>`,
    policy: (hash) =>
      hash && B64U.test(hash)
        ? html`<a href="${origin ?? ''}/v1/wpc/${hash}" rel="noreferrer"><code>${hash}</code></a>`
        : html`<code>${hash ?? '—'}</code>`,
    absolute: (path) => (origin ? `${origin}${path}` : null),
  };
}

function person(view: BundleView, userId: string | null): SafeHtml {
  if (!userId) return html`<span class="muted">—</span>`;
  const name = view.usernames.get(userId);
  return name
    ? html`<span class="who">${name}</span> <code class="muted">${userId}</code>`
    : html`<code class="who">${userId}</code>`;
}

/** What the bundle records, at a glance: which gated step who approved, for which group. */
function glance(view: BundleView, label: string): SafeHtml {
  const gated = view.steps.filter((s) => s.approval !== null);
  const auto = view.steps.filter((s) => s.approval === null && s.gate === 'auto');
  const name = (a: ApproverView) => view.usernames.get(a.userId) ?? a.userId;
  return html`<p class="source" id="glance-label">${label}</p>
    <ul class="approved" id="verdict-glance">
      <li>
        Job <span class="who">${view.jobId ?? '—'}</span> under policy
        <span class="who">${view.policyName ?? '—'}</span>: ${view.status ?? 'status unknown'}
      </li>
      ${gated.map(
        (s) =>
          html`<li>
            <code>${s.id}</code> approved by
            ${
              s.approval!.approvers.length === 0
                ? 'nobody'
                : s.approval!.approvers.map(
                    (a, i) =>
                      html`${i > 0 ? ', ' : ''}<span class="who">${name(a)}</span
                        >${a.group ? ` (${a.group})` : ''}`,
                  )
            }
          </li>`,
      )}
      ${
        auto.length > 0
          ? html`<li>${auto.length} step${auto.length === 1 ? '' : 's'} auto-approved by the policy</li>`
          : ''
      }
    </ul>`;
}

function verdictBox(server: ServerVerdictView, view: BundleView): SafeHtml {
  const reason = server.cbReason && server.reason ? `${server.cbReason} (${server.reason})` : server.reason;
  return server.ok
    ? html`<section id="verdict" class="verdict" data-server="ok" aria-live="polite">
        <p class="word" id="verdict-word">CHECKING…</p>
        <p class="line" id="verdict-line">
          The server verified this bundle. Your browser is checking it now, from the bytes of this page.
        </p>
        <p class="source" id="verdict-source"></p>
        <noscript
          ><p class="line">
            JavaScript is off, so your browser has not checked this bundle itself: the verdict is the server's
            alone.
          </p></noscript
        >
        ${glance(view, 'What it records:')}
      </section>`
    : html`<section id="verdict" class="verdict fail" data-server="fail" aria-live="polite">
        <p class="word" id="verdict-word">FAIL</p>
        <p class="line" id="verdict-line"><code class="reason">${reason}</code>: ${server.message}</p>
        <p class="source" id="verdict-source">
          Found by the server. Do not rely on anything this bundle says.
        </p>
        ${glance(view, 'What the bundle claims (unverified):')}
      </section>`;
}

function verdictCards(server: ServerVerdictView): SafeHtml {
  const mark = (ok: boolean) => (ok ? '✓' : '✗');
  const passed = server.checks.filter((c) => c.ok).length;
  return html`<div class="verdicts">
    <section class="card" aria-labelledby="browser-h">
      <h2 id="browser-h">Your browser</h2>
      <p class="status" id="browser-status">Checking…</p>
      <p class="muted" id="browser-message"></p>
      <details id="browser-details">
        <summary id="browser-summary">What your browser checks</summary>
        <ol class="checks" id="browser-checks"></ol>
      </details>
      <noscript
        ><p class="muted">
          Needs JavaScript (WebCrypto). Or run the command under “The exact JSON”.
        </p></noscript
      >
    </section>
    <section class="card" aria-labelledby="server-h">
      <h2 id="server-h">This server</h2>
      <p class="status ${server.ok ? 'ok' : 'fail'}">
        ${server.ok ? 'VERIFIED' : `FAIL ${server.reason ?? ''}`}
      </p>
      ${server.ok ? html`<p class="muted">${server.message}</p>` : ''}
      <details ${server.ok ? '' : html`open`}>
        <summary>What the server checked: ${passed} of ${server.checks.length} passed</summary>
        <ol class="checks">
          ${server.checks.map(
            (c) =>
              html`<li class="check ${c.ok ? 'ok' : 'fail'}">
                <span class="mark">${mark(c.ok)}</span>
                <span>${c.reason ? html`<code class="reason">${c.reason}</code> ` : ''}${c.message}</span>
              </li>`,
          )}
        </ol>
      </details>
    </section>
  </div>`;
}

/** What the server did with the signed policy: bundles name it by hash, the registry holds it. */
function pinnedPolicyLine(policy: PinnedPolicyView): SafeHtml {
  return policy.found
    ? html`<span class="muted"
        >Signed by <code>${policy.signerDid}</code> on ${when(policy.issuedAt)}; the server's verdict checks
        each step's gate and approval rule against it.</span
      >`
    : html`<span class="muted"
        >Not available from this server's registry (${policy.why}): the server's verdict could not check the
        steps' rules against the signed policy.</span
      >`;
}

/** The id the bundle's signed payload gives itself, marked when it is not the one the link names. */
function bundleIdLine(view: BundleView, bundleId: string): SafeHtml {
  return view.bundleId === bundleId
    ? html`<code id="payload-bundle-id">${view.bundleId}</code>`
    : html`<code id="payload-bundle-id">${view.bundleId ?? '—'}</code>
        <span class="badge bad">not ${bundleId}, the bundle this link names</span>`;
}

function jobCard(
  view: BundleView,
  policy: PinnedPolicyView | undefined,
  links: Links,
  bundleId: string,
): SafeHtml {
  return html`<section class="card" aria-labelledby="job-h">
    <h2 id="job-h">Job ${view.jobId ?? ''}</h2>
    <dl class="facts">
      <dt>Bundle</dt>
      <dd>${bundleIdLine(view, bundleId)}</dd>
      <dt>Outcome</dt>
      <dd>${statusBadge(view.status)} ${view.endReason ?? ''}</dd>
      <dt>Policy</dt>
      <dd>
        <span class="who">${view.policyName ?? '—'}</span><br />${links.policy(view.policyHash)}
        ${policy ? html`<br />${pinnedPolicyLine(policy)}` : ''}
      </dd>
      <dt>Started from</dt>
      <dd>${view.origin ?? '—'}</dd>
      <dt>Requested by</dt>
      <dd>${person(view, view.requesterId)}</dd>
      ${
        view.submittedBy
          ? html`<dt>Submitted by</dt>
              <dd><code>${view.submittedBy}</code></dd>`
          : ''
      }
      <dt>Executor</dt>
      <dd><code>${view.executor ?? '—'}</code></dd>
      ${
        view.runbook
          ? html`<dt>Runbook</dt>
              <dd><code>${view.runbook}</code></dd>`
          : ''
      }
      <dt>Mattermost thread</dt>
      <dd>
        ${links.post(view.rootPostId, 'plan post')}${view.channelId ? html` <span class="muted">in channel <code>${view.channelId}</code></span>` : ''}
      </dd>
      <dt>Approval posts</dt>
      <dd>
        ${
          view.approvalPostIds.length === 0
            ? html`<span class="muted">none</span>`
            : view.approvalPostIds.map(
                (id, i) => html`${i > 0 ? ' · ' : ''}${links.post(id, `approval ${i + 1}`)}`,
              )
        }
      </dd>
      <dt>Plan hash</dt>
      <dd><code>${view.planHash ?? '—'}</code></dd>
      <dt>Signed by</dt>
      <dd><code>${view.signerDid ?? '—'}</code></dd>
      <dt>Sealed</dt>
      <dd>${when(view.issuedAt)}</dd>
    </dl>
  </section>`;
}

function statusBadge(status: string | null): SafeHtml {
  const good = status === 'completed' || status === 'succeeded';
  const bad = status !== null && /fail|revoked|denied|expired|cancel/.test(status);
  return html`<span class="badge ${good ? 'good' : bad ? 'bad' : ''}">${status ?? 'unknown'}</span>`;
}

function ruleLine(rule: NonNullable<StepView['approval']>['rule']): SafeHtml {
  if (!rule) return html`<p class="rule">The rule is not recorded in this bundle.</p>`;
  const n = rule.required ?? '?';
  const groups = rule.groups.length > 0 ? rule.groups.join(', ') : '?';
  return html`<p class="rule">
    Rule: ${n} approval${n === 1 ? '' : 's'} from
    ${groups}${rule.distinct ? ', each from a different group' : ''};
    ${rule.requesterAllowed ? 'the requester may approve' : 'the requester may not approve'}.
  </p>`;
}

function approverItem(view: BundleView, a: ApproverView, links: Links): SafeHtml {
  return html`<li>
    <span class="mark">✓</span> ${person(view, a.userId)}
    ${a.group ? html`counted for <span class="who">${a.group}</span>` : ''}
    ${a.foundVia.length > 0 ? html`<span class="muted">(found in ${a.foundVia.join('; ')})</span>` : ''}
    <br /><span class="muted">${when(a.at)}</span> · ${links.post(a.postId, 'approval post')}
  </li>`;
}

function approvalsCard(view: BundleView, links: Links): SafeHtml {
  const gated = view.steps.filter((s) => s.approval !== null);
  const auto = view.steps.filter((s) => s.approval === null && s.gate === 'auto');
  return html`<section class="card" aria-labelledby="approvals-h">
    <h2 id="approvals-h">Who approved what</h2>
    <ul class="steps">
      ${gated.map((s) => {
        const a = s.approval!;
        return html`<li class="step">
          <div class="step-head">
            <h3>${s.id}</h3>
            <code>${s.tool ?? ''}</code> <span class="badge gated">gated</span>
          </div>
          ${ruleLine(a.rule)}
          ${a.evaluatedAt ? html`<p class="muted">Quorum evaluated ${when(a.evaluatedAt)}${a.fromSnapshot ? '' : ' (rebuilt from the event chain: this bundle has no approval snapshot)'}</p>` : ''}
          <ul class="people">
            ${a.approvers.length === 0 ? html`<li class="muted">No approval counted.</li>` : a.approvers.map((p) => approverItem(view, p, links))}
            ${a.denials.map((d) => html`<li><span class="badge bad">denied</span> ${person(view, d.userId)} <span class="muted">${when(d.at)}</span> · ${links.post(d.postId, 'deny post')}</li>`)}
            ${a.withdrawals.map((w) => html`<li><span class="badge">withdrawn</span> ${person(view, w.userId)} <span class="muted">${when(w.at)} ${w.why ?? ''}</span></li>`)}
          </ul>
        </li>`;
      })}
      ${
        auto.length > 0
          ? html`<li class="step">
              <div class="step-head"><h3>Auto-approved by the policy</h3></div>
              <p class="summary">${auto.map((s, i) => html`${i > 0 ? ', ' : ''}<code>${s.id}</code>`)}</p>
            </li>`
          : ''
      }
    </ul>
  </section>`;
}

function receiptItem(r: ReceiptView): SafeHtml {
  return html`<li>
    ${r.failure ? html`<span class="badge bad">not counted: ${r.failure}</span> ` : html`<span class="badge good">gateway receipt</span> `}
    <code>${r.receiptId ?? '—'}</code>
    <span class="muted"
      >${[r.gatewayId, r.provider, r.model, r.tokens].filter(Boolean).join(' · ')} · ${when(r.at)}</span
    >
    <br /><span class="muted">signed by</span> <code>${r.signerDid ?? '—'}</code>
  </li>`;
}

function stepItem(s: StepView): SafeHtml {
  const t = s.token;
  return html`<li class="step">
    <div class="step-head">
      <h3>${s.id}</h3>
      <code>${s.tool ?? ''}</code>
      <span class="badge ${s.gate === 'gated' ? 'gated' : ''}">${s.gate ?? '—'}</span>
      ${statusBadge(s.status)}
    </div>
    <p class="summary">${s.summary ?? ''}</p>
    <pre>${boundedJson(s.args)}</pre>
    ${s.result ? html`<p class="summary"><span class="muted">Result:</span> ${s.result}</p>` : ''}
    <dl class="facts">
      <dt>Token id (jti)</dt>
      <dd>
        ${t ? html`<code>${t.jti ?? '—'}</code> <span class="badge">${t.state}</span>` : html`<span class="muted">no token minted</span>`}
      </dd>
      ${
        t
          ? html`<dt>Scope hash</dt>
              <dd>
                <code>${t.scopeHash ?? '—'}</code>
                <details>
                  <summary>scope</summary>
                  <pre>${t.scope.join('\n')}</pre>
                </details>
              </dd>
              <dt>Valid</dt>
              <dd>${when(t.issuedAt)} → ${when(t.expiresAt)}</dd>`
          : ''
      }
    </dl>
    ${
      s.receipts.length + s.unverifiedReceipts.length > 0
        ? html`<ul class="people">
            ${[...s.receipts, ...s.unverifiedReceipts].map(receiptItem)}
          </ul>`
        : ''
    }
  </li>`;
}

function planCard(view: BundleView): SafeHtml {
  return html`<section class="card" aria-labelledby="plan-h">
    <h2 id="plan-h">Plan: steps, arguments, tokens, receipts</h2>
    <ol class="steps">
      ${view.steps.map(stepItem)}
    </ol>
  </section>`;
}

function chainCard(view: BundleView): SafeHtml {
  return html`<section class="card" aria-labelledby="chain-h">
    <h2 id="chain-h">Event chain (${view.events.length} events)</h2>
    <ol class="timeline">
      ${view.events.map(
        (e) =>
          html`<li>
            <span class="type">${e.type}</span> <span class="muted">${when(e.at)}</span>
            ${e.detail ? html`<br />${e.detail}` : ''}
            <br /><code class="muted">${e.hash ?? ''}</code>
          </li>`,
      )}
    </ol>
  </section>`;
}

/**
 * The reviewer's command, as the thread's "Verify" line gives it (src/bot/messages.ts): the
 * link, this server's JWKS and its gateways. Without a public URL only the pb_ id form is left,
 * which works on the server's machine alone.
 */
function verifyCommand(input: BundlePageInput, links: Links): string {
  const bundleUrl = links.absolute(`/v1/bundles/${input.bundleId}`);
  if (!bundleUrl) return `claw-approvals bundle verify ${input.bundleId}`;
  return [
    `claw-approvals bundle verify ${bundleUrl}`,
    `--jwks ${links.absolute('/.well-known/jwks.json')}`,
    ...[...new Set(input.trust.gateway_signers)].sort().map((did) => `--gateway ${did}`),
  ].join(' ');
}

function jsonCard(input: BundlePageInput, view: BundleView, links: Links): SafeHtml {
  const bytes = Buffer.from(input.stored, 'utf8');
  return html`<section class="card" aria-labelledby="json-h">
    <h2 id="json-h">The exact JSON</h2>
    <a
      class="download"
      id="bundle-json"
      download="${input.bundleId}.json"
      href="data:application/json;base64,${bytes.toString('base64')}"
      >Download ${input.bundleId}.json (${bytes.length} bytes)</a
    >
    <dl class="facts">
      <dt>Payload hash</dt>
      <dd><code>${view.payloadHash ?? '—'}</code></dd>
      <dt>Verify on your machine</dt>
      <dd><pre>${verifyCommand(input, links)}</pre></dd>
    </dl>
    <script type="application/json" id="bundle-trust">
      ${jsonInScript(input.trust)}
    </script>
  </section>`;
}

/**
 * A script or style element with exactly `content`: the CSP allows it by the hash of those
 * bytes, so it is built here rather than in a template a formatter may re-indent. Both contents
 * are constants of this program, never input.
 */
function hashedElement(tag: 'script' | 'style', content: string): SafeHtml {
  return new SafeHtml(`<${tag}>${content}</${tag}>`);
}

/** The reviewer's page: the verdicts first, then the job, approvals, plan, chain and the bytes. */
export function renderBundlePage(input: BundlePageInput): string {
  const view = bundleView(input.envelope);
  const links = linksFor(input);
  const title = `${input.server.ok ? '' : 'FAIL · '}Proof bundle ${input.bundleId}`;
  const page = html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta http-equiv="Content-Security-Policy" content="${bundlePageCsp('meta')}" />
        <meta name="referrer" content="no-referrer" />
        <meta name="robots" content="noindex" />
        <title>${title}</title>
        ${hashedElement('style', BUNDLE_PAGE_STYLES)}
      </head>
      <body>
        <main id="page" data-bundle-id="${input.bundleId}">
          <header class="masthead">
            <h1>claw-approvals · proof bundle</h1>
            <span class="id mono">${input.bundleId}</span>
          </header>
          ${verdictBox(input.server, view)} ${verdictCards(input.server)}
          ${jobCard(view, input.policy, links, input.bundleId)} ${approvalsCard(view, links)}
          ${planCard(view)} ${chainCard(view)} ${jsonCard(input, view, links)}
          <footer>
            Everything this page checks, it checks from what it carries: save it, and the saved file still
            verifies itself.
          </footer>
        </main>
        ${hashedElement('script', bundlePageScript().text)}
      </body>
    </html> `;
  return page.text;
}
