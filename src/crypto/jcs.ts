import canonicalize from 'canonicalize';

/**
 * RFC 8785 JSON Canonicalization Scheme. Throws on values JSON cannot represent
 * (NaN, Infinity, BigInt, a top-level undefined) instead of silently changing them.
 */
export function canonicalJson(value: unknown): string {
  const out = canonicalize(value);
  if (out === undefined) throw new TypeError('value has no JSON representation');
  return out;
}
