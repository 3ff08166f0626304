/**
 * A deep copy with object keys in JCS order, so that `JSON.stringify` of the result equals
 * its JCS text (SPEC section 5). Only for values we build ourselves: plain JSON data whose
 * object keys are never integer-like (JavaScript would move those to the front).
 */
export function sortKeysDeep<T>(value: T): T {
  if (Array.isArray(value)) return value.map(sortKeysDeep) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      if (/^(0|[1-9][0-9]*)$/.test(key))
        throw new TypeError(`integer-like key "${key}" cannot keep its order`);
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeysDeep(v);
    }
    return out as T;
  }
  return value;
}
