/**
 * What every part of the page's verifier shares: failing with a named reason, reading
 * untrusted values, quoting them in messages as the server does (src/proofs/verify/check.ts),
 * base64url, SHA-256 and JCS. Inlined into the page as compiled text (see page-script.ts): no
 * imports, only globals that browsers and Node share (crypto.subtle, TextEncoder, atob, btoa).
 */

export type Obj = Record<string, unknown>;

/** Records a check that held (ok true), or one with nothing to check here (ok null, said, never counted as a pass). */
export type Passed = (id: string, message: string, ok?: boolean | null) => void;

export interface Chain {
  runId: string | null;
  list: Obj[];
  byHash: Map<string, Obj>;
}

/** A `token_minted` event: its chained header and its payload. */
export interface Mint {
  header: Obj;
  body: Obj;
}

/** Stops verification: the bundle fails with `reason`, the server's name for the same finding. */
export function failWith(reason: string, message: string): never {
  throw Object.assign(new Error(message), { bundleFailure: reason });
}

/** Stops verification without a verdict: this browser cannot check (no WebCrypto, no Ed25519). */
export function unavailable(message: string): never {
  throw Object.assign(new Error(message), { unavailable: true });
}

export function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * C0 and C1 controls, the Arabic letter mark, line and paragraph separators, and the bidi
 * marks, embeddings, overrides and isolates: what could rewrite or reorder the line a reader
 * sees (the server's UNPRINTABLE).
 */
// eslint-disable-next-line no-control-regex -- control characters are what it finds
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

function escapeControls(text: string): string {
  return text.replace(UNPRINTABLE, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** An untrusted value in a message, as the server words it (`quote`): JSON-quoted, escaped, clipped. */
export function quote(value: unknown): string {
  const text = escapeControls(JSON.stringify(typeof value === 'string' ? value : String(value)) ?? '""');
  return text.length > 90 ? `${text.slice(0, 86)}…"` : text;
}

/** Text worded from a bundle's values (`checkTwoPerson`'s findings): escaped and bounded, as the server's `printable`. */
export function printable(text: string): string {
  const safe = escapeControls(text);
  return safe.length > 300 ? `${safe.slice(0, 299)}…` : safe;
}

export function b64u(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Strict: only the canonical unpadded form, as `fromB64u` on the server. */
export function fromB64u(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) throw new TypeError('not base64url');
  const bin = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4));
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  if (b64u(bytes) !== text) throw new TypeError('not canonical base64url');
  return bytes;
}

export async function sha256B64u(text: string): Promise<string> {
  return b64u(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))));
}

/** Half a surrogate pair: JSON.stringify escapes it, JCS (and the `canonicalize` package) refuses it. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function jcsString(text: string): string {
  if (LONE_SURROGATE.test(text)) throw new TypeError('a lone surrogate is not text');
  return JSON.stringify(text);
}

/**
 * RFC 8785 (JCS) for what event payloads hold: strings, finite numbers, booleans, null,
 * arrays and objects. Keys sort by UTF-16 code units (the default sort); numbers and strings
 * print as ECMAScript's JSON.stringify does, as the RFC specifies; a string or key with a lone
 * surrogate is refused, as the server's `canonicalJson` refuses it.
 */
export function jcs(value: unknown): string {
  if (value === null || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'string') return jcsString(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('a number that JSON cannot hold');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => jcs(v)).join(',')}]`;
  if (typeof value === 'object') {
    const o = value as Obj;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${jcsString(k)}:${jcs(o[k])}`)
      .join(',')}}`;
  }
  throw new TypeError(`a ${typeof value} has no JSON form`);
}

/** RFC 3339 date-time (what the schemas' "date-time" is), read as a date: the shape, then Date.parse. */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})$/;

export function isDateTime(v: unknown): v is string {
  return typeof v === 'string' && DATE_TIME.test(v) && !Number.isNaN(Date.parse(v));
}
