import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors.js';
import { b64u, fromB64u } from './hash.js';

/** 256 bits: the HMAC-SHA256 key of Mattermost button contexts and dialog states. */
const SECRET_BYTES = 32;

/**
 * The key that authenticates what the bot puts in its buttons' `context` (and its dialogs'
 * `state`). It is independent of everything else: a random value kept in a file like the
 * signing key (mode 0600 in a 0700 directory), never derived from the bot token, so a leaked
 * token does not let anyone forge a click, and replicas share it by sharing the file.
 * `create` (only `serve`) writes one when the file does not exist yet.
 */
export async function loadActionSecret(file: string, opts: { create?: boolean } = {}): Promise<Uint8Array> {
  try {
    return await readSecretFile(file);
  } catch (err) {
    const missing =
      err instanceof AppError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
    if (!missing || opts.create !== true) throw err;
  }
  await writeSecretFile(file, randomBytes(SECRET_BYTES));
  return readSecretFile(file);
}

async function writeSecretFile(file: string, secret: Uint8Array): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${randomUUID()}.tmp`;
  const handle = await fs.open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(`${b64u(secret)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    // link() fails if the target exists: two first starts racing keep one secret.
    await fs.link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

async function readSecretFile(file: string): Promise<Uint8Array> {
  let stat: Awaited<ReturnType<typeof fs.stat>>;
  try {
    stat = await fs.stat(file);
  } catch (cause) {
    throw new AppError('ERR_KEY_UNREADABLE', `action secret file ${file} cannot be read`, { cause });
  }
  if (!stat.isFile())
    throw new AppError('ERR_KEY_UNREADABLE', `action secret file ${file} is not a regular file`);
  if ((stat.mode & 0o077) !== 0) {
    throw new AppError(
      'ERR_KEY_PERMISSIONS',
      `action secret file ${file} is accessible by group or others (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 on it`,
    );
  }
  const text = (await fs.readFile(file, 'utf8')).trim();
  let secret: Uint8Array;
  try {
    secret = fromB64u(text);
  } catch {
    // The file's content is a secret: never quoted.
    throw new AppError('ERR_KEY_INVALID', `action secret file ${file} is not unpadded base64url`);
  }
  if (secret.length < SECRET_BYTES)
    throw new AppError(
      'ERR_KEY_INVALID',
      `action secret file ${file} holds fewer than ${SECRET_BYTES} bytes`,
    );
  return secret;
}
