import { readFile } from 'node:fs/promises';
import { timingSafeEqual } from 'node:crypto';
import type { Config } from '../../config.js';
import { sha256 } from '../../crypto/hash.js';
import { AppError } from '../../errors.js';

/** Mattermost makes every command token 26 characters long (model.Command.IsValid). */
const TOKEN = /^[\x21-\x7e]{26}$/;

/**
 * The `/claw` command's token, as configured: given, or read once from its file at start (a
 * secret mounted as a file stays out of the environment). Null when none is configured.
 */
export async function readCommandToken(source: Config['commandToken']): Promise<string | null> {
  if (!source) return null;
  if (source.kind === 'value') return source.token;
  let text: string;
  try {
    text = await readFile(source.file, 'utf8');
  } catch (cause) {
    throw new AppError('ERR_CONFIG_INVALID', `MATTERMOST_COMMAND_TOKEN_FILE ${source.file} cannot be read`, {
      cause,
    });
  }
  const token = text.trim();
  if (!TOKEN.test(token)) {
    throw new AppError(
      'ERR_CONFIG_INVALID',
      `MATTERMOST_COMMAND_TOKEN_FILE ${source.file} must hold the 26-character token Mattermost shows for the slash command`,
    );
  }
  return token;
}

/** Constant time: digests are compared, so neither the length nor the content leaks through timing. */
export function isCommandToken(presented: string, token: string): boolean {
  return timingSafeEqual(sha256(presented), sha256(token));
}

/** The token of an `Authorization: Token <token>` header (how Mattermost signs its command requests). */
export function presentedToken(header: string | undefined): string | null {
  const m = typeof header === 'string' ? /^Token ([\x21-\x7e]{1,128})$/.exec(header) : null;
  return m ? m[1]! : null;
}
