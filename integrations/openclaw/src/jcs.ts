import { createHash } from 'node:crypto';

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * RFC 8785 (JCS) for JSON values: object keys sorted by UTF-16 code units, no whitespace,
 * strings and numbers as ECMAScript's JSON.stringify writes them (which is what RFC 8785
 * specifies). An object property whose value is `undefined` is left out, as JSON leaves it
 * out; anything else JSON cannot carry (NaN, Infinity, BigInt, functions, `undefined` in an
 * array, class instances such as Date) throws instead of being silently changed, so a hash
 * always covers the whole value.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('JSON has no representation for a non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  if (typeof value === 'object' && isPlainObject(value)) {
    const entries = Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`);
    return `{${entries.join(',')}}`;
  }
  throw new TypeError(`JSON has no representation for this ${typeof value}`);
}

/** base64url(SHA-256(UTF-8(JCS(value)))): how the server hashes policies and plans. */
export function jcsSha256B64u(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value), 'utf8').digest('base64url');
}
