import type { z } from 'zod';

export type SchemaResult = { ok: true } | { ok: false; path: string; message: string };

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** `a.b[2]["odd key"]`: where in the value the first violation is; odd keys quoted as JSON. */
function pathText(base: string, path: readonly PropertyKey[]): string {
  let out = base;
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (typeof part === 'string' && IDENTIFIER.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(String(part)).slice(0, 80)}]`;
  }
  return out;
}

/** Validates `value`; on failure names the first violation under `base` (e.g. `payload.receipts[0]`). */
export function validate(schema: z.ZodType, value: unknown, base: string): SchemaResult {
  const result = schema.safeParse(value);
  if (result.success) return { ok: true };
  const issue = result.error.issues[0]!;
  const path = pathText(base, issue.path);
  return { ok: false, path, message: `${path}: ${issue.message.slice(0, 200)}` };
}
