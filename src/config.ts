import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { databaseUrlSecrets } from './db/database.js';
import { AppError } from './errors.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const emptyToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const optionalString = z.preprocess(emptyToUndefined, z.string().optional());

/**
 * The secret settings. Each may instead be given as `<KEY>_FILE`, the path of a file holding
 * the value (a Docker or Kubernetes secret, a systemd credential), which `loadConfig` reads
 * once and validates exactly as it would the value itself.
 */
export const FILE_SECRET_KEYS = [
  'ADMIN_TOKEN',
  'METRICS_TOKEN',
  'MATTERMOST_TOKEN',
  'MATTERMOST_COMMAND_TOKEN',
  'DATABASE_URL',
  'SIGNING_KEY_JWK',
] as const;

/** A secret file is a token, a URL or a JWK: anything larger is a wrong path, not a secret. */
export const MAX_SECRET_FILE_BYTES = 64 * 1024;

const httpUrl = z
  .string()
  .refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), 'must be an http(s) URL');

/**
 * Every setting of SPEC section 6, in one place. Keys are the environment variable names;
 * `loadConfig` maps them to the typed `Config` the rest of the program sees.
 */
const envSchema = z
  .object({
    MATTERMOST_URL: z.preprocess(emptyToUndefined, httpUrl.optional()),
    MATTERMOST_TOKEN: z.preprocess(
      emptyToUndefined,
      z.string().regex(/^\S+$/, 'must not contain whitespace').optional(),
    ),
    MATTERMOST_TOKEN_FILE: optionalString,
    DATABASE_URL: z.preprocess(
      emptyToUndefined,
      z
        .string()
        .refine(
          (v) => URL.canParse(v) && /^postgres(ql)?:$/.test(new URL(v).protocol),
          'must be a postgres:// or postgresql:// URL',
        )
        .optional(),
    ),
    DATABASE_URL_FILE: optionalString,
    DATA_DIR: z.preprocess(emptyToUndefined, z.string().default('./data')),
    HOST: z.preprocess(emptyToUndefined, z.string().default('127.0.0.1')),
    PORT: z.preprocess(
      emptyToUndefined,
      z
        .string()
        .regex(/^\d{1,5}$/, 'must be an integer between 0 and 65535')
        .transform(Number)
        .refine((n) => n <= 65535, 'must be an integer between 0 and 65535')
        .default(8080),
    ),
    PUBLIC_URL: z.preprocess(emptyToUndefined, httpUrl.optional()),
    POLICIES_DIR: z.preprocess(emptyToUndefined, z.string().default('./policies')),
    LOG_LEVEL: z.preprocess(
      (v) => (typeof v === 'string' ? emptyToUndefined(v.toLowerCase()) : v),
      z.enum(LOG_LEVELS, { message: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
    ),
    ADMIN_TOKEN: z.preprocess(
      emptyToUndefined,
      z.string().min(32, 'must be at least 32 characters').optional(),
    ),
    ADMIN_TOKEN_FILE: optionalString,
    METRICS_TOKEN: z.preprocess(
      emptyToUndefined,
      z.string().min(32, 'must be at least 32 characters').optional(),
    ),
    METRICS_TOKEN_FILE: optionalString,
    SIGNING_KEY_FILE: optionalString,
    ACTION_SECRET_FILE: optionalString,
    MATTERMOST_COMMAND_TOKEN: z.preprocess(
      emptyToUndefined,
      z
        .string()
        .regex(/^[\x21-\x7e]{26}$/, 'must be the 26-character token Mattermost shows for the slash command')
        .optional(),
    ),
    MATTERMOST_COMMAND_TOKEN_FILE: optionalString,
    MATTERMOST_FRESH_SECONDS: z.preprocess(
      emptyToUndefined,
      z
        .string()
        .regex(/^\d{1,3}$/, 'must be a whole number of seconds from 0 to 300')
        .transform(Number)
        .refine((n) => n <= 300, 'must be a whole number of seconds from 0 to 300')
        .default(30),
    ),
    GATEWAY_SIGNER_DIDS: z.preprocess(
      emptyToUndefined,
      z
        .string()
        .refine(
          (v) => v.split(',').every((d) => /^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$/.test(d.trim())),
          'must be a comma-separated list of did:key identifiers',
        )
        .optional(),
    ),
    SIGNING_KEY_JWK: z.preprocess(
      emptyToUndefined,
      z
        .string()
        .refine((v) => {
          try {
            const parsed: unknown = JSON.parse(v);
            return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
          } catch {
            return false;
          }
        }, 'must be a JSON object (an Ed25519 private JWK)')
        .optional(),
    ),
    SIGNING_KEY_JWK_FILE: optionalString,
  })
  .superRefine((env, ctx) => {
    if (env.MATTERMOST_URL && !env.MATTERMOST_TOKEN) {
      ctx.addIssue({
        code: 'custom',
        path: ['MATTERMOST_TOKEN'],
        message: 'is required when MATTERMOST_URL is set (or MATTERMOST_TOKEN_FILE)',
      });
    }
    if (env.MATTERMOST_TOKEN && !env.MATTERMOST_URL) {
      ctx.addIssue({
        code: 'custom',
        path: ['MATTERMOST_URL'],
        message: 'is required when MATTERMOST_TOKEN is set',
      });
    }
    if (env.SIGNING_KEY_FILE && env.SIGNING_KEY_JWK) {
      ctx.addIssue({
        code: 'custom',
        path: ['SIGNING_KEY_JWK'],
        message: 'conflicts with SIGNING_KEY_FILE: give the signing key one way',
      });
    }
  });

export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  mattermost: { url: string; token: string } | null;
  databaseUrl: string | null;
  dataDir: string;
  host: string;
  port: number;
  publicUrl: string;
  policiesDir: string;
  logLevel: LogLevel;
  adminToken: string | null;
  /** Bearer token `/metrics` asks for; null: `/metrics` is open (bind it to a private address). */
  metricsToken: string | null;
  signingKey:
    { kind: 'generated'; file: string } | { kind: 'file'; file: string } | { kind: 'jwk'; jwk: string };
  /** Public keys rotated out, still trusted for verification and published in JWKS; beside the key file. */
  retiredKeysFile: string;
  /** Gateways (clawproxy) whose signed receipts count as verified evidence. */
  gatewaySignerDids: string[];
  /**
   * The token of the `/claw` slash command, given or read from MATTERMOST_COMMAND_TOKEN_FILE by
   * `loadConfig` (so always `value` from it; `file` remains for callers that build a Config by
   * hand). Absent, the command route refuses every request.
   */
  commandToken?: { kind: 'value'; token: string } | { kind: 'file'; file: string };
  /**
   * The key file of the status post's buttons (`ACTION_SECRET_FILE`, default
   * `DATA_DIR/keys/action-secret`). Absent without an explicit PUBLIC_URL, which Mattermost needs
   * to call back: then there are no buttons.
   */
  actionSecretFile?: string;
  /**
   * MATTERMOST_FRESH_SECONDS (with Mattermost only): how long an answer from Mattermost about a
   * membership, an account or an approval post is reused while the event stream says nothing
   * changed it (`chat/chat-cache.ts`); 0 asks every time.
   */
  mattermostFreshSeconds?: number;
}

export interface ConfigProblem {
  key: string;
  problem: string;
}

/** The environment variables `loadConfig` understands; main.ts warns about others set in `.env`. */
export const CONFIG_KEYS = Object.keys(envSchema.shape) as (keyof z.infer<typeof envSchema>)[];

type SecretKey = (typeof FILE_SECRET_KEYS)[number];

/** Settings that give the same thing another way than `<KEY>` and so conflict with `<KEY>_FILE` too. */
const ALSO_CONFLICTS: Partial<Record<SecretKey, string>> = { SIGNING_KEY_JWK: 'SIGNING_KEY_FILE' };

const isSet = (v: string | undefined): v is string => v !== undefined && v.trim() !== '';

/** `text` less the line breaks (LF or CRLF) that end it; linear, unlike a regex anchored at `$`. */
function withoutFinalLineBreaks(text: string): string {
  let end = text.length;
  while (end > 0 && text[end - 1] === '\n') {
    end -= 1;
    if (end > 0 && text[end - 1] === '\r') end -= 1;
  }
  return text.slice(0, end);
}

/**
 * Reads one secret file: its content less the line breaks that end it, or why it cannot be
 * used. The reason names the path and never the content.
 */
function readSecretFile(file: string): { value: string } | { problem: string } {
  try {
    const stat = statSync(file);
    if (!stat.isFile()) return { problem: `${file} is not a regular file` };
    if (stat.size > MAX_SECRET_FILE_BYTES)
      return { problem: `${file} is larger than ${MAX_SECRET_FILE_BYTES} bytes` };
    const text = readFileSync(file, 'utf8');
    if (Buffer.byteLength(text) > MAX_SECRET_FILE_BYTES)
      return { problem: `${file} is larger than ${MAX_SECRET_FILE_BYTES} bytes` };
    const value = withoutFinalLineBreaks(text);
    // A file of blanks would read as unset: an empty secret file is a mistake, never "none".
    if (value.trim() === '') return { problem: `${file} is empty` };
    return { value };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    return { problem: `${file} cannot be read (${code})` };
  }
}

/**
 * Puts the content of every `<KEY>_FILE` in place of `<KEY>`. Returns the problems (a value
 * given both ways, a file that cannot be used) and where each value read came from.
 */
function resolveSecretFiles(
  picked: Record<string, string | undefined>,
  cwd: string,
): {
  problems: ConfigProblem[];
  sources: Map<string, { fileKey: string; file: string }>;
  /** Keys whose file could not be used: "KEY is required" would only repeat that problem. */
  unread: Set<string>;
} {
  const problems: ConfigProblem[] = [];
  const sources = new Map<string, { fileKey: string; file: string }>();
  const unread = new Set<string>();
  for (const key of FILE_SECRET_KEYS) {
    const fileKey = `${key}_FILE`;
    const given = picked[fileKey];
    if (!isSet(given)) continue;
    const rival = [key, ALSO_CONFLICTS[key]].find((k) => k !== undefined && isSet(picked[k]));
    if (rival) {
      problems.push({ key: fileKey, problem: `conflicts with ${rival}: set only one of them` });
      continue;
    }
    const file = path.resolve(cwd, given);
    const read = readSecretFile(file);
    if ('problem' in read) {
      problems.push({ key: fileKey, problem: read.problem });
      unread.add(key);
      continue;
    }
    picked[key] = read.value;
    sources.set(key, { fileKey, file });
  }
  return { problems, sources, unread };
}

/**
 * Validates the whole environment at once, reading the secret files it names. A failure names
 * every bad or missing key (and the file, for a value read from one) in one message; values
 * are never echoed (some are secrets).
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>, cwd = process.cwd()): Config {
  const picked: Record<string, string | undefined> = Object.fromEntries(CONFIG_KEYS.map((k) => [k, env[k]]));
  const files = resolveSecretFiles(picked, cwd);
  const result = envSchema.safeParse(picked);
  const problems: ConfigProblem[] = [
    ...files.problems,
    ...(result.success ? [] : result.error.issues)
      .filter((issue) => !files.unread.has(String(issue.path[0])))
      .map((issue) => {
        const key = String(issue.path[0] ?? '(environment)');
        const source = files.sources.get(key);
        // A value read from a file is judged as the value, and the file is named with it.
        return source
          ? { key: source.fileKey, problem: `${source.file}: the ${key} it holds ${issue.message}` }
          : { key, problem: issue.message };
      }),
  ];
  if (problems.length > 0 || !result.success) {
    const summary = problems.map((p) => `${p.key} ${p.problem}`).join('; ');
    throw new AppError('ERR_CONFIG_INVALID', `invalid configuration: ${summary}`, { details: problems });
  }
  const e = result.data;
  const dataDir = path.resolve(cwd, e.DATA_DIR);
  const publicUrl = (e.PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, '');
  const keyFile = e.SIGNING_KEY_FILE
    ? path.resolve(cwd, e.SIGNING_KEY_FILE)
    : path.join(dataDir, 'keys', 'signing-key.jwk.json');
  return {
    mattermost:
      e.MATTERMOST_URL && e.MATTERMOST_TOKEN ? { url: e.MATTERMOST_URL, token: e.MATTERMOST_TOKEN } : null,
    databaseUrl: e.DATABASE_URL ?? null,
    dataDir,
    host: e.HOST,
    port: e.PORT,
    publicUrl,
    policiesDir: path.resolve(cwd, e.POLICIES_DIR),
    logLevel: e.LOG_LEVEL,
    adminToken: e.ADMIN_TOKEN ?? null,
    metricsToken: e.METRICS_TOKEN ?? null,
    signingKey: e.SIGNING_KEY_JWK
      ? { kind: 'jwk', jwk: e.SIGNING_KEY_JWK }
      : e.SIGNING_KEY_FILE
        ? { kind: 'file', file: keyFile }
        : { kind: 'generated', file: keyFile },
    retiredKeysFile: path.join(
      e.SIGNING_KEY_JWK ? path.join(dataDir, 'keys') : path.dirname(keyFile),
      'retired.jwks.json',
    ),
    gatewaySignerDids: (e.GATEWAY_SIGNER_DIDS ?? '')
      .split(',')
      .map((d) => d.trim())
      .filter(Boolean),
    ...(e.MATTERMOST_COMMAND_TOKEN
      ? { commandToken: { kind: 'value', token: e.MATTERMOST_COMMAND_TOKEN } as const }
      : {}),
    ...(e.MATTERMOST_URL && e.MATTERMOST_TOKEN ? { mattermostFreshSeconds: e.MATTERMOST_FRESH_SECONDS } : {}),
    ...(e.PUBLIC_URL
      ? {
          actionSecretFile: e.ACTION_SECRET_FILE
            ? path.resolve(cwd, e.ACTION_SECRET_FILE)
            : path.join(dataDir, 'keys', 'action-secret'),
        }
      : {}),
  };
}

/** The private part of an inline JWK (`d`), if it has one. */
function jwkSecret(jwk: string): string[] {
  try {
    const d = (JSON.parse(jwk) as Record<string, unknown>).d;
    return typeof d === 'string' && d !== '' ? [d] : [];
  } catch {
    return [];
  }
}

/**
 * The secret values in a configuration, whether given in the environment or read from a
 * `*_FILE`, for the logger to censor wherever they might appear.
 */
export function configSecrets(config: Config): string[] {
  return [
    ...(config.adminToken ? [config.adminToken] : []),
    ...(config.metricsToken ? [config.metricsToken] : []),
    ...(config.mattermost ? [config.mattermost.token] : []),
    ...(config.commandToken?.kind === 'value' ? [config.commandToken.token] : []),
    ...(config.databaseUrl ? databaseUrlSecrets(config.databaseUrl) : []),
    ...(config.signingKey.kind === 'jwk' ? jwkSecret(config.signingKey.jwk) : []),
  ];
}
