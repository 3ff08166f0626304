/** Markup that is already safe: built by `html` from escaped parts, never from input. */
export class SafeHtml {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text for an element or a quoted attribute: every character HTML gives a meaning escaped. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

function part(value: unknown): string {
  if (value instanceof SafeHtml) return value.text;
  if (Array.isArray(value)) return value.map(part).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
}

/**
 * The page's only way to make markup: every interpolated value is escaped unless it is itself
 * `SafeHtml` (or an array of them), so text from a bundle cannot become markup by omission.
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0]!;
  values.forEach((v, i) => {
    out += part(v) + strings[i + 1]!;
  });
  return new SafeHtml(out);
}

/**
 * JSON inside a `<script type="application/json">` element: `<`, `>`, `&` and the line
 * separators written as JSON escapes, so no text in it can close the element.
 */
export function jsonInScript(value: unknown): SafeHtml {
  return new SafeHtml(
    JSON.stringify(value).replace(
      /[<>&\u2028\u2029]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    ),
  );
}
