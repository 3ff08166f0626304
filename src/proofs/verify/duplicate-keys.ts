/**
 * Repeated object keys in a JSON text. JSON.parse keeps the last value of a repeated key,
 * while a person reading the file (or a parser that keeps the first) sees another: a bundle
 * whose text says two things is refused before its parsed value is verified.
 */

interface ObjectFrame {
  kind: 'object';
  keys: Set<string>;
  /** The key whose value is being read (null before the first). */
  key: string | null;
  expectKey: boolean;
}
interface ArrayFrame {
  kind: 'array';
  index: number;
}
type Frame = ObjectFrame | ArrayFrame;

export interface DuplicateKey {
  key: string;
  /** Where the object is, e.g. `payload.metadata.event_payloads[3].payload` (clipped to 200 characters). */
  path: string;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function pathOf(stack: readonly Frame[]): string {
  let out = '';
  for (const frame of stack.slice(0, -1)) {
    if (frame.kind === 'array') out += `[${frame.index}]`;
    else if (frame.key !== null && IDENTIFIER.test(frame.key))
      out += out === '' ? frame.key : `.${frame.key}`;
    else out += `[${JSON.stringify(frame.key)}]`;
  }
  if (out === '') return '(top level)';
  return out.length > 200 ? `${out.slice(0, 199)}…` : out;
}

/**
 * The first key an object of `text` repeats, compared as JSON.parse decodes keys (`"a"` and
 * `"\u0061"` are one key), or null. `text` must be JSON that JSON.parse accepted: this scanner
 * does not validate it. One pass, no recursion: time and memory bounded by the text's length,
 * at any depth.
 */
export function firstDuplicateKey(text: string): DuplicateKey | null {
  const stack: Frame[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    const top = stack.at(-1);
    if (ch === '{') {
      stack.push({ kind: 'object', keys: new Set(), key: null, expectKey: true });
    } else if (ch === '[') {
      stack.push({ kind: 'array', index: 0 });
    } else if (ch === '}' || ch === ']') {
      stack.pop();
    } else if (ch === ',') {
      if (top?.kind === 'object') top.expectKey = true;
      else if (top?.kind === 'array') top.index += 1;
    } else if (ch === '"') {
      let end = i + 1;
      let escaped = false;
      while (end < text.length && text[end] !== '"') {
        if (text[end] === '\\') {
          escaped = true;
          end += 2;
        } else end += 1;
      }
      if (top?.kind === 'object' && top.expectKey) {
        const raw = text.slice(i, end + 1);
        const key = escaped ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        if (top.keys.has(key)) return { key, path: pathOf(stack) };
        top.keys.add(key);
        top.key = key;
        top.expectKey = false;
      }
      i = end + 1;
      continue;
    }
    i += 1;
  }
  return null;
}
