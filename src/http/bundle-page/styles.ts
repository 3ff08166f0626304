import { createHash } from 'node:crypto';

/**
 * The page's one stylesheet, allowed by its hash in the CSP (no style attributes anywhere).
 * Narrow screens first: one column, long hashes wrap, nothing scrolls sideways.
 */
export const BUNDLE_PAGE_STYLES = `
:root { color-scheme: light; --ink: #1b2330; --muted: #5b6576; --line: #d9dee7; --paper: #ffffff;
  --bg: #f3f5f8; --ok: #0b6b3a; --ok-bg: #e7f4ec; --fail: #b3261e; --fail-bg: #fdeceb;
  --warn: #8a5a00; --warn-bg: #fff4d6; --wait: #3b4a63; --wait-bg: #e9edf4; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
  font-size: 0.86em; overflow-wrap: anywhere; word-break: break-word; }
pre { margin: 0.25rem 0 0; padding: 0.6rem 0.75rem; background: #f6f8fa; border: 1px solid var(--line);
  border-radius: 6px; white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-word;
  font: 0.82rem/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
a { color: #1f5fbf; overflow-wrap: anywhere; }
h1 { font-size: 1.05rem; margin: 0; font-weight: 600; color: var(--muted); letter-spacing: 0.01em; }
h2 { font-size: 1.1rem; margin: 0 0 0.75rem; }
h3 { font-size: 1rem; margin: 0; }
.masthead { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; align-items: baseline;
  justify-content: space-between; margin: 0.25rem 0 0.75rem; }
.masthead .id { color: var(--muted); font-size: 0.85rem; }
.verdict { border: 2px solid var(--wait); background: var(--wait-bg); color: var(--wait);
  border-radius: 10px; padding: 1rem 1.1rem; margin-bottom: 1rem; }
.verdict .word { margin: 0; font-size: 2rem; line-height: 1.1; font-weight: 800; letter-spacing: 0.04em; }
.verdict .line { margin: 0.4rem 0 0; font-size: 1.02rem; color: var(--ink); overflow-wrap: anywhere; }
.verdict .line code { font-size: 0.95em; font-weight: 700; }
.verdict .source { margin: 0.5rem 0 0; font-size: 0.85rem; color: var(--muted); }
.verdict .approved { margin: 0.6rem 0 0; padding: 0; list-style: none; color: var(--ink); }
.verdict .approved li { margin: 0.15rem 0; }
.verdict.ok { border-color: var(--ok); background: var(--ok-bg); color: var(--ok); }
.verdict.fail { border-color: var(--fail); background: var(--fail-bg); color: var(--fail); }
.verdict.fail .line { color: var(--fail); }
.verdict.warn { border-color: var(--warn); background: var(--warn-bg); color: var(--warn); }
.card { background: var(--paper); border: 1px solid var(--line); border-radius: 10px; padding: 1rem 1.1rem;
  margin-bottom: 1rem; min-width: 0; }
.verdicts { display: grid; grid-template-columns: minmax(0, 1fr); gap: 1rem; margin-bottom: 1rem; }
.verdicts .card { margin: 0; }
.status { margin: 0 0 0.5rem; font-weight: 700; }
.status.ok { color: var(--ok); } .status.fail { color: var(--fail); } .status.warn { color: var(--warn); }
.checks { list-style: none; margin: 0; padding: 0; }
.check { display: flex; gap: 0.5rem; padding: 0.3rem 0; border-top: 1px solid #eef1f5; font-size: 0.9rem;
  overflow-wrap: anywhere; }
.check:first-child { border-top: 0; }
.check .mark { flex: none; width: 1.1rem; font-weight: 700; text-align: center; }
.check.ok .mark { color: var(--ok); } .check.fail { color: var(--fail); } .check.na .mark { color: var(--muted); }
.check .reason { font-weight: 700; }
dl.facts { display: grid; grid-template-columns: minmax(0, 1fr); gap: 0.1rem 1rem; margin: 0; }
dl.facts dt { color: var(--muted); font-size: 0.85rem; margin-top: 0.45rem; }
dl.facts dd { margin: 0; min-width: 0; overflow-wrap: anywhere; }
.steps { list-style: none; margin: 0; padding: 0; }
.step { border-top: 1px solid var(--line); padding: 0.85rem 0; }
.step:first-child { border-top: 0; padding-top: 0; }
.step-head { display: flex; flex-wrap: wrap; gap: 0.35rem 0.6rem; align-items: baseline; }
.summary { margin: 0.3rem 0; overflow-wrap: anywhere; }
.badge { display: inline-block; border-radius: 999px; padding: 0 0.55rem; font-size: 0.78rem;
  font-weight: 600; border: 1px solid var(--line); color: var(--muted); background: #f6f8fa; }
.badge.gated { color: #6b3fa0; border-color: #d7c6ee; background: #f5effc; }
.badge.good { color: var(--ok); border-color: #b9dfc8; background: var(--ok-bg); }
.badge.bad { color: var(--fail); border-color: #f0bdb9; background: var(--fail-bg); }
.people { list-style: none; margin: 0.4rem 0 0; padding: 0; }
.people li { padding: 0.35rem 0; border-top: 1px dashed #e3e7ee; overflow-wrap: anywhere; }
.people li:first-child { border-top: 0; }
.who { font-weight: 600; }
.muted { color: var(--muted); font-size: 0.85rem; }
.rule { margin: 0.2rem 0 0; color: var(--muted); font-size: 0.88rem; }
details { margin-top: 0.4rem; }
summary { cursor: pointer; color: #1f5fbf; font-size: 0.9rem; }
.timeline { list-style: none; margin: 0; padding: 0 0 0 1rem; border-left: 2px solid var(--line); }
.timeline li { position: relative; padding: 0 0 0.7rem 0.6rem; overflow-wrap: anywhere; }
.timeline li::before { content: ""; position: absolute; left: -1.42rem; top: 0.45rem; width: 0.6rem;
  height: 0.6rem; border-radius: 50%; background: var(--paper); border: 2px solid #8a96a8; }
.timeline .type { font-weight: 600; }
.download { display: inline-block; margin: 0.25rem 0 0.5rem; padding: 0.45rem 0.9rem; border-radius: 6px;
  background: #1f5fbf; color: #fff; text-decoration: none; font-weight: 600; }
footer { color: var(--muted); font-size: 0.8rem; text-align: center; padding: 0.5rem 0 2rem; }
@media (min-width: 48rem) {
  main { padding: 1.5rem; }
  .verdicts { grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); }
  dl.facts { grid-template-columns: 11rem minmax(0, 1fr); }
  dl.facts dt { margin-top: 0.3rem; }
  dl.facts dd { margin-top: 0.3rem; }
}
`;

/** The CSP source that allows exactly this stylesheet. */
export const BUNDLE_PAGE_STYLES_HASH = `'sha256-${createHash('sha256').update(BUNDLE_PAGE_STYLES).digest('base64')}'`;
