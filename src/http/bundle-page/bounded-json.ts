/** How much of a value the page prints: nesting beyond `depth` shows as `[…]` or `{…}`, text beyond `chars` is cut. */
export interface JsonBounds {
  depth: number;
  chars: number;
}

/** Deep enough for any plan's arguments, shallow enough that printing never nears the stack's limit. */
const PAGE_BOUNDS: JsonBounds = { depth: 16, chars: 32 * 1024 };

/**
 * `JSON.stringify(value, null, 2)` for a value read from a stored bundle, bounded: a bundle
 * whose arguments nest 100 000 deep (which only a tampered row can hold) would make
 * JSON.stringify overflow the stack and the page answer 500 instead of its FAIL. Within the
 * bounds the text is JSON.stringify's, byte for byte; beyond them it says what it left out.
 */
export function boundedJson(value: unknown, bounds: JsonBounds = PAGE_BOUNDS): string {
  let out = '';
  let cut = false;
  const put = (text: string) => {
    if (out.length + text.length > bounds.chars) {
      out += text.slice(0, Math.max(0, bounds.chars - out.length));
      cut = true;
    } else out += text;
  };
  const write = (v: unknown, indent: string, depth: number): void => {
    if (cut) return;
    if (v === null || typeof v !== 'object') {
      put(JSON.stringify(v) ?? 'null');
      return;
    }
    const entries: [string | null, unknown][] = Array.isArray(v)
      ? v.map((x) => [null, x])
      : Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    const [open, close] = Array.isArray(v) ? ['[', ']'] : ['{', '}'];
    if (entries.length === 0) return put(`${open}${close}`);
    if (depth >= bounds.depth) return put(`${open}…${close}`);
    put(`${open}\n`);
    for (const [i, [key, x]] of entries.entries()) {
      if (cut) return;
      put(`${indent}  ${key === null ? '' : `${JSON.stringify(key)}: `}`);
      write(x, `${indent}  `, depth + 1);
      put(i < entries.length - 1 ? ',\n' : '\n');
    }
    put(`${indent}${close}`);
  };
  write(value, '', 0);
  return cut ? `${out}\n… (cut at ${bounds.chars} characters)` : out;
}
