import fs from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../../config.js';
import { type Finding, note, ok, problem } from './findings.js';

type Stat = { mode: number } | null;

async function statOf(file: string): Promise<Stat> {
  try {
    return await fs.stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

const octal = (mode: number) => (mode & 0o777).toString(8).padStart(3, '0');

/**
 * Who else may read or change the files that hold secrets and trust: the signing key, the
 * buttons' action secret, the retired keys, the pin heads, DATA_DIR, and a `.env` (it holds
 * MATTERMOST_TOKEN).
 */
export async function checkFiles(config: Config, cwd: string): Promise<Finding[]> {
  const findings: Finding[] = [];
  const secret = async (file: string, what: string, missing: Finding | null) => {
    const st = await statOf(file);
    if (!st) {
      if (missing) findings.push(missing);
      return;
    }
    if ((st.mode & 0o077) !== 0)
      findings.push(
        problem(
          'files',
          `${what} ${file} is open to group or others (mode ${octal(st.mode)})`,
          `chmod 600 ${file}`,
        ),
      );
    else findings.push(ok('files', `${what} ${file} is private (mode ${octal(st.mode)})`));
  };
  const notWritable = async (file: string, what: string, fix: string) => {
    const st = await statOf(file);
    if (st && (st.mode & 0o022) !== 0)
      findings.push(
        problem('files', `${what} ${file} is writable by group or others (mode ${octal(st.mode)})`, fix),
      );
  };

  const key = config.signingKey;
  if (key.kind === 'jwk') {
    findings.push(
      note(
        'files',
        'the signing key comes from SIGNING_KEY_JWK: keep it in a secret store, out of shell history',
      ),
    );
  } else {
    await secret(
      key.file,
      'the signing key',
      key.kind === 'generated'
        ? note(
            'files',
            `the signing key ${key.file} does not exist yet: serve creates it (mode 0600) on first start`,
          )
        : problem(
            'files',
            `SIGNING_KEY_FILE ${key.file} does not exist`,
            'point SIGNING_KEY_FILE at the key file, or unset it',
          ),
    );
  }
  // The buttons' MAC key (only with an explicit PUBLIC_URL): whoever reads it can forge a click.
  if (config.actionSecretFile) {
    await secret(
      config.actionSecretFile,
      'the action secret (buttons)',
      note(
        'files',
        `the action secret ${config.actionSecretFile} does not exist yet: serve creates it (mode 0600) on first start; replicas must share one file (ACTION_SECRET_FILE)`,
      ),
    );
  }
  await notWritable(config.retiredKeysFile, 'the retired keys file', `chmod 644 ${config.retiredKeysFile}`);
  await notWritable(
    path.join(config.dataDir, 'pin-heads.json'),
    'the pin heads file',
    `chmod 600 ${path.join(config.dataDir, 'pin-heads.json')}`,
  );
  const dataDir = await statOf(config.dataDir);
  if (dataDir && (dataDir.mode & 0o077) !== 0)
    findings.push(
      problem(
        'files',
        `DATA_DIR ${config.dataDir} is open to group or others (mode ${octal(dataDir.mode)})`,
        `chmod 700 ${config.dataDir}`,
      ),
    );
  const env = path.join(cwd, '.env');
  if (await statOf(env)) await secret(env, 'the settings file', null);
  return findings;
}
