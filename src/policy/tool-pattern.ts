const cache = new Map<string, RegExp>();

/**
 * Tool and agent patterns: '*' matches any run of characters except line breaks (names
 * cannot contain them, so such a value matches nothing); nothing else is special.
 */
export function matchesPattern(pattern: string, value: string): boolean {
  let re = cache.get(pattern);
  if (!re) {
    const body = pattern
      .split('*')
      .map((part) => part.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'))
      .join('.*');
    re = new RegExp(`^${body}$`);
    cache.set(pattern, re);
  }
  return re.test(value);
}

export function matchesAny(patterns: readonly string[], value: string): boolean {
  return patterns.some((p) => matchesPattern(p, value));
}
