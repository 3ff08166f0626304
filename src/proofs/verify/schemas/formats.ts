import { z } from 'zod';

/**
 * The building blocks of our validators, with JSON Schema's meaning (the one Claw Bureau's
 * schemas are written in and ajv applies): string lengths count code points, not UTF-16
 * units; `pattern` is an unanchored regular expression; "date-time" is RFC 3339 with a
 * required offset; "integer" is any whole number, however large.
 */

const FULL_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const FULL_TIME = /^(\d{2}):(\d{2}):(\d{2}(?:\.\d+)?)(z|([+-])(\d{2})(?::?(\d{2}))?)$/i;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isLeapYear(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
}

function isFullDate(text: string): boolean {
  const m = FULL_DATE.exec(text);
  if (!m) return false;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (month < 1 || month > 12 || day < 1) return false;
  const last = month === 2 && isLeapYear(year) ? 29 : DAYS_IN_MONTH[month - 1]!;
  return day <= last;
}

function isFullTime(text: string): boolean {
  const m = FULL_TIME.exec(text);
  if (!m) return false;
  const [hour, minute, second] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const offsetSign = m[5] === '-' ? -1 : 1;
  const offsetHour = Number(m[6] ?? 0);
  const offsetMinute = Number(m[7] ?? 0);
  if (offsetHour > 23 || offsetMinute > 59) return false;
  if (hour <= 23 && minute <= 59 && second < 60) return true;
  // A leap second is only valid at 23:59:60 UTC.
  const utcMinute = minute - offsetMinute * offsetSign;
  const utcHour = hour - offsetHour * offsetSign - (utcMinute < 0 ? 1 : 0);
  return (utcHour === 23 || utcHour === -1) && (utcMinute === 59 || utcMinute === -1) && second < 61;
}

/** RFC 3339 `date-time`: full-date, "T" (or a space, any case), full-time with an offset. */
export function isDateTime(text: string): boolean {
  const parts = text.split(/t|\s/i);
  return parts.length === 2 && isFullDate(parts[0]!) && isFullTime(parts[1]!);
}

/** Length in code points, as JSON Schema's minLength and maxLength count. */
function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

/** A string with JSON Schema's minLength, maxLength and pattern. */
export function text(opts: { min?: number; max?: number; pattern?: RegExp } = {}) {
  let s = z.string();
  if (opts.pattern) s = s.regex(opts.pattern, `must match ${String(opts.pattern)}`);
  const { min, max } = opts;
  if (min !== undefined) s = s.refine((v) => codePoints(v) >= min, `must have at least ${min} characters`);
  if (max !== undefined) s = s.refine((v) => codePoints(v) <= max, `must have at most ${max} characters`);
  return s;
}

export const B64U = /^[A-Za-z0-9_-]+$/;

/** base64url text of at least 8 characters: how Claw Bureau's schemas spell hashes and signatures. */
export const b64u = () => text({ pattern: B64U, min: 8 });

/** A DID as Claw Bureau's schemas accept it (they only require the prefix). */
export const did = () => text({ pattern: /^did:/ });

export const dateTime = () => z.string().refine(isDateTime, 'must be an RFC 3339 date-time');

export const nonNegative = () => z.number().min(0);

/** A whole number (JSON Schema "integer": no safe-integer bound). */
export const integer = () => z.number().refine(Number.isInteger, 'must be an integer');

/** JSON Schema `"type": "object"` with nothing more said: any JSON object. */
export const anyObject = () => z.record(z.string(), z.unknown());

/**
 * JSON Schema `oneOf`: exactly one alternative holds (zod's union accepts the first that
 * does, which differs when several would).
 */
export function oneOf(options: readonly z.ZodType[], what: string) {
  return z.unknown().superRefine((value, ctx) => {
    const matches = options.filter((o) => o.safeParse(value).success).length;
    if (matches !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: matches === 0 ? `matches no form of ${what}` : `matches ${matches} forms of ${what}`,
      });
    }
  });
}
