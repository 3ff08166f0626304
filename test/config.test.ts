import { generateKeyPairSync } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_KEYS,
  configSecrets,
  FILE_SECRET_KEYS,
  loadConfig,
  MAX_SECRET_FILE_BYTES,
} from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { tempDir } from './helpers/fs.js';

describe('loadConfig', () => {
  it('runs on embedded defaults with an empty environment', () => {
    const c = loadConfig({}, '/srv/app');
    expect(c).toEqual({
      mattermost: null,
      databaseUrl: null,
      dataDir: '/srv/app/data',
      host: '127.0.0.1',
      port: 8080,
      publicUrl: 'http://localhost:8080',
      policiesDir: '/srv/app/policies',
      logLevel: 'info',
      adminToken: null,
      metricsToken: null,
      signingKey: { kind: 'generated', file: path.join('/srv/app/data', 'keys', 'signing-key.jwk.json') },
      retiredKeysFile: path.join('/srv/app/data', 'keys', 'retired.jwks.json'),
      gatewaySignerDids: [],
    });
  });

  it('reads the gateway signer allowlist and refuses anything but did:key', () => {
    const did = 'did:key:z6MkfF4ykuxdK3Cea9xDqWgLLgMBvxcypy6Tv1K45Eahxy3m';
    expect(loadConfig({ GATEWAY_SIGNER_DIDS: ` ${did} ` }, '/srv').gatewaySignerDids).toEqual([did]);
    expect(() => loadConfig({ GATEWAY_SIGNER_DIDS: 'did:web:example.com' }, '/srv')).toThrow(
      /GATEWAY_SIGNER_DIDS/,
    );
  });

  it('reads every setting', () => {
    const c = loadConfig(
      {
        MATTERMOST_URL: 'https://chat.example.com',
        MATTERMOST_TOKEN: 'tok',
        DATABASE_URL: 'postgresql://u:p@db:5432/claw',
        DATA_DIR: '/var/lib/claw',
        HOST: '0.0.0.0',
        PORT: '9000',
        PUBLIC_URL: 'https://claw.example.com/',
        POLICIES_DIR: '/etc/claw/policies',
        LOG_LEVEL: 'DEBUG',
        ADMIN_TOKEN: 'a'.repeat(32),
        SIGNING_KEY_FILE: '/run/secrets/key.jwk.json',
      },
      '/srv',
    );
    expect(c.mattermost).toEqual({ url: 'https://chat.example.com', token: 'tok' });
    expect(c.databaseUrl).toBe('postgresql://u:p@db:5432/claw');
    expect(c.port).toBe(9000);
    expect(c.publicUrl).toBe('https://claw.example.com');
    expect(c.logLevel).toBe('debug');
    expect(c.signingKey).toEqual({ kind: 'file', file: '/run/secrets/key.jwk.json' });
    expect(c.retiredKeysFile).toBe('/run/secrets/retired.jwks.json');
  });

  it('never echoes a database password, whatever is wrong with DATABASE_URL', () => {
    for (const url of [
      'mysql://u:userinfo-s3cret@db/claw?password=query-s3cret',
      'postgres://u:userinfo-s3cret@db:notaport/claw?sslpassword=query-s3cret',
      'userinfo-s3cret',
    ]) {
      let err: unknown;
      try {
        loadConfig({ DATABASE_URL: url, PORT: 'x' });
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'ERR_CONFIG_INVALID' });
      expect(
        JSON.stringify({ message: (err as Error).message, details: (err as { details: unknown }).details }),
      ).not.toMatch(/s3cret/);
      expect((err as Error).message).toContain('DATABASE_URL');
    }
  });

  it('configSecrets lists the configured secret values for the logger to censor', () => {
    const c = loadConfig({
      DATABASE_URL: 'postgres://u:pw-one@db/claw?sslpassword=pw-two',
      ADMIN_TOKEN: 'admin-token-for-tests-0123456789',
      MATTERMOST_URL: 'https://chat.example',
      MATTERMOST_TOKEN: 'mm-token-value',
    });
    expect(configSecrets(c).sort()).toEqual(
      ['admin-token-for-tests-0123456789', 'mm-token-value', 'pw-one', 'pw-two'].sort(),
    );
    expect(configSecrets(loadConfig({}))).toEqual([]);
  });

  it('names every bad key in one message, without echoing values', () => {
    const secret = 'xoxb-very-secret token';
    let err: unknown;
    try {
      loadConfig({
        MATTERMOST_URL: 'ftp://chat',
        MATTERMOST_TOKEN: secret,
        DATABASE_URL: 'mysql://nope',
        PORT: '70000',
        PUBLIC_URL: 'not a url',
        LOG_LEVEL: 'loud',
        ADMIN_TOKEN: 'short',
        SIGNING_KEY_JWK: '[1]',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'ERR_CONFIG_INVALID' });
    const message = (err as Error).message;
    for (const key of [
      'MATTERMOST_URL',
      'MATTERMOST_TOKEN',
      'DATABASE_URL',
      'PORT',
      'PUBLIC_URL',
      'LOG_LEVEL',
      'ADMIN_TOKEN',
      'SIGNING_KEY_JWK',
    ]) {
      expect(message).toContain(key);
    }
    expect(message).not.toContain('very-secret');
    expect((err as { details: { key: string }[] }).details.map((d) => d.key).sort()).toEqual(
      [
        'ADMIN_TOKEN',
        'DATABASE_URL',
        'LOG_LEVEL',
        'MATTERMOST_TOKEN',
        'MATTERMOST_URL',
        'PORT',
        'PUBLIC_URL',
        'SIGNING_KEY_JWK',
      ].sort(),
    );
  });

  it('requires the Mattermost URL and token together', () => {
    expect(() => loadConfig({ MATTERMOST_URL: 'https://chat' })).toThrow(/MATTERMOST_TOKEN is required/);
    expect(() => loadConfig({ MATTERMOST_TOKEN: 't' })).toThrow(/MATTERMOST_URL is required/);
  });

  it('refuses two sources for the signing key', () => {
    expect(() => loadConfig({ SIGNING_KEY_FILE: '/k', SIGNING_KEY_JWK: '{}' })).toThrow(
      /SIGNING_KEY_JWK conflicts/,
    );
  });

  it('treats empty values as unset and ignores unrelated variables', () => {
    expect(loadConfig({ DATABASE_URL: '', PORT: ' ', PATH: '/bin', HOME: '/root' }).databaseUrl).toBeNull();
  });

  it('documents its keys', () => {
    expect(CONFIG_KEYS).toEqual(
      expect.arrayContaining([
        'MATTERMOST_URL',
        'MATTERMOST_TOKEN',
        'DATABASE_URL',
        'DATA_DIR',
        'HOST',
        'PORT',
        'PUBLIC_URL',
        'POLICIES_DIR',
        'LOG_LEVEL',
        'ADMIN_TOKEN',
      ]),
    );
  });
});

/** The error `loadConfig` throws for this environment (the test fails if it throws none). */
function configError(
  env: Record<string, string>,
  cwd?: string,
): {
  code: string;
  message: string;
  details: { key: string; problem: string }[];
} {
  try {
    loadConfig(env, cwd);
  } catch (err) {
    return err as never;
  }
  throw new Error('loadConfig accepted the configuration');
}

const privateJwk = () => {
  const jwk = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  return JSON.stringify({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, d: jwk.d });
};

/** A valid value of each secret setting, plus what else it needs to be accepted. */
const VALID: Record<(typeof FILE_SECRET_KEYS)[number], { value: string; with?: Record<string, string> }> = {
  ADMIN_TOKEN: { value: 'admin-token-from-a-file-0123456789abcdef' },
  METRICS_TOKEN: { value: 'metrics-token-from-a-file-0123456789abcdef' },
  MATTERMOST_TOKEN: { value: 'mm-bot-token-from-a-file', with: { MATTERMOST_URL: 'https://chat.example' } },
  MATTERMOST_COMMAND_TOKEN: { value: 'abcdefghijklmnopqrstuvwxyz' },
  DATABASE_URL: { value: 'postgres://claw:file-db-pw@db:5432/claw' },
  SIGNING_KEY_JWK: { value: privateJwk() },
};

/** An invalid value of each, holding a marker that must never reach a message. */
const INVALID: Record<(typeof FILE_SECRET_KEYS)[number], string> = {
  ADMIN_TOKEN: 'short-S3CRET',
  METRICS_TOKEN: 'short-S3CRET',
  MATTERMOST_TOKEN: 'two words S3CRET',
  MATTERMOST_COMMAND_TOKEN: 'S3CRET',
  DATABASE_URL: 'mysql://u:S3CRET@db/claw',
  SIGNING_KEY_JWK: '["S3CRET"]',
};

describe('secret settings read from files (*_FILE)', () => {
  it('has a _FILE variant for every secret setting, and only those read files', () => {
    expect([...FILE_SECRET_KEYS].sort()).toEqual(
      [
        'ADMIN_TOKEN',
        'DATABASE_URL',
        'MATTERMOST_COMMAND_TOKEN',
        'MATTERMOST_TOKEN',
        'METRICS_TOKEN',
        'SIGNING_KEY_JWK',
      ].sort(),
    );
    for (const key of FILE_SECRET_KEYS) {
      expect(CONFIG_KEYS).toContain(key);
      expect(CONFIG_KEYS).toContain(`${key}_FILE`);
    }
  });

  for (const key of FILE_SECRET_KEYS) {
    describe(`${key}_FILE`, () => {
      const { value, with: rest = {} } = VALID[key];

      it('gives the same configuration as the value, its final line break trimmed', async () => {
        const dir = await tempDir();
        for (const ending of ['', '\n', '\r\n', '\n\n']) {
          await writeFile(path.join(dir, 'secret'), `${value}${ending}`);
          // Relative to the working directory, like every path setting.
          const fromFile = loadConfig({ ...rest, [`${key}_FILE`]: 'secret' }, dir);
          expect(fromFile).toEqual(loadConfig({ ...rest, [key]: value }, dir));
        }
      });

      it('is censored from log lines like the value', async () => {
        const dir = await tempDir();
        await writeFile(path.join(dir, 'secret'), `${value}\n`);
        const config = loadConfig({ ...rest, [`${key}_FILE`]: path.join(dir, 'secret') });
        const secrets = configSecrets(config);
        expect(secrets.length).toBeGreaterThan(0);
        const out: string[] = [];
        const log = createLogger(
          'info',
          new Writable({
            write(chunk, _enc, cb) {
              out.push(String(chunk));
              cb();
            },
          }),
          secrets,
        );
        // A driver or library error that repeats the secret, in a field no redaction path covers.
        log.error({ detail: `upstream said: ${secrets.join(' / ')}` }, 'request failed');
        await new Promise((r) => setImmediate(r));
        expect(out.join('')).toContain('[redacted]');
        for (const s of secrets) expect(out.join('')).not.toContain(s);
      });

      it('conflicts with the value: both keys named, the file not even read', () => {
        const err = configError({ ...rest, [key]: value, [`${key}_FILE`]: '/nonexistent/secret' });
        expect(err.code).toBe('ERR_CONFIG_INVALID');
        expect(err.message).toContain(`${key}_FILE conflicts with ${key}`);
        expect(err.message).not.toContain('cannot be read');
      });

      it('refuses a missing file, naming the key and the path', async () => {
        const dir = await tempDir();
        const file = path.join(dir, 'missing');
        const err = configError({ ...rest, [`${key}_FILE`]: file });
        expect(err.code).toBe('ERR_CONFIG_INVALID');
        expect(err.details).toEqual([{ key: `${key}_FILE`, problem: `${file} cannot be read (ENOENT)` }]);
      });

      it('refuses an empty file, or one of blanks, rather than treating the secret as unset', async () => {
        const dir = await tempDir();
        const file = path.join(dir, 'secret');
        for (const content of ['', '\n', '   \n', '\t\r\n']) {
          await writeFile(file, content);
          const err = configError({ ...rest, [`${key}_FILE`]: file });
          expect(err.details).toEqual([{ key: `${key}_FILE`, problem: `${file} is empty` }]);
        }
      });

      it('refuses a directory and an oversized file, without reading either as the secret', async () => {
        const dir = await tempDir();
        await mkdir(path.join(dir, 'a-dir'));
        expect(configError({ ...rest, [`${key}_FILE`]: path.join(dir, 'a-dir') }).details).toEqual([
          { key: `${key}_FILE`, problem: `${path.join(dir, 'a-dir')} is not a regular file` },
        ]);
        const big = path.join(dir, 'big');
        await writeFile(big, `${value}${' '.repeat(MAX_SECRET_FILE_BYTES)}`);
        expect(configError({ ...rest, [`${key}_FILE`]: big }).details).toEqual([
          { key: `${key}_FILE`, problem: `${big} is larger than ${MAX_SECRET_FILE_BYTES} bytes` },
        ]);
      });

      it('validates the content exactly as the value, naming key and path but never the content', async () => {
        const dir = await tempDir();
        const file = path.join(dir, 'secret');
        await writeFile(file, `${INVALID[key]}\n`);
        const fromFile = configError({ ...rest, [`${key}_FILE`]: file });
        const fromValue = configError({ ...rest, [key]: INVALID[key] });
        expect(fromFile.details).toHaveLength(1);
        expect(fromValue.details).toHaveLength(1);
        expect(fromFile.details[0]).toEqual({
          key: `${key}_FILE`,
          problem: `${file}: the ${key} it holds ${fromValue.details[0]!.problem}`,
        });
        expect(JSON.stringify({ m: fromFile.message, d: fromFile.details })).not.toContain('S3CRET');
      });
    });
  }

  it('keeps line breaks and blanks inside a value: a token with a line break in it is refused', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'token');
    await writeFile(file, 'first-half\nsecond-half\n');
    expect(
      configError({ MATTERMOST_URL: 'https://chat.example', MATTERMOST_TOKEN_FILE: file }).details,
    ).toEqual([
      {
        key: 'MATTERMOST_TOKEN_FILE',
        problem: `${file}: the MATTERMOST_TOKEN it holds must not contain whitespace`,
      },
    ]);
    // Leading and trailing blanks are part of the value, as they would be in the environment.
    await writeFile(file, ' admin-token-from-a-file-0123456789abcdef \n');
    expect(loadConfig({ ADMIN_TOKEN_FILE: file }).adminToken).toBe(
      ' admin-token-from-a-file-0123456789abcdef ',
    );
  });

  it('reads a file of many line breaks in one pass (a regex anchored at its end would take seconds)', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'token');
    const token = 'admin-token-from-a-file-0123456789abcdef';
    await writeFile(file, `${'\n'.repeat(60_000)}${token}\r\n\n`);
    expect(loadConfig({ ADMIN_TOKEN_FILE: file }).adminToken).toBe(`${'\n'.repeat(60_000)}${token}`);
    await writeFile(file, `${token}${'\r\n'.repeat(30_000)}`);
    expect(loadConfig({ ADMIN_TOKEN_FILE: file }).adminToken).toBe(token);
    // A lone CR is content, not a line break.
    await writeFile(file, `${token}\r`);
    expect(loadConfig({ ADMIN_TOKEN_FILE: file }).adminToken).toBe(`${token}\r`);
  });

  it('reads the bot token from a file for the Mattermost pair, and still wants the URL with it', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'mm');
    await writeFile(file, 'mm-bot-token\n');
    expect(loadConfig({ MATTERMOST_URL: 'https://chat', MATTERMOST_TOKEN_FILE: file }).mattermost).toEqual({
      url: 'https://chat',
      token: 'mm-bot-token',
    });
    expect(configError({ MATTERMOST_TOKEN_FILE: file }).message).toMatch(/MATTERMOST_URL is required/);
    expect(configError({ MATTERMOST_URL: 'https://chat' }).message).toMatch(
      /MATTERMOST_TOKEN is required when MATTERMOST_URL is set \(or MATTERMOST_TOKEN_FILE\)/,
    );
  });

  it('gives the slash command token read from its file as a value, like every secret file', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'command'), 'abcdefghijklmnopqrstuvwxyz\n');
    const config = loadConfig({ MATTERMOST_COMMAND_TOKEN_FILE: 'command' }, dir);
    expect(config.commandToken).toEqual({ kind: 'value', token: 'abcdefghijklmnopqrstuvwxyz' });
    expect(configSecrets(config)).toContain('abcdefghijklmnopqrstuvwxyz');
  });

  it('takes the signing key JWK from a file as SIGNING_KEY_JWK, and refuses it beside SIGNING_KEY_FILE', async () => {
    const dir = await tempDir();
    const jwk = privateJwk();
    await writeFile(path.join(dir, 'jwk'), `${jwk}\n`);
    const config = loadConfig({ SIGNING_KEY_JWK_FILE: path.join(dir, 'jwk') }, '/srv');
    expect(config.signingKey).toEqual({ kind: 'jwk', jwk });
    // Retired keys live where they do for an inline JWK: the file's directory is a secret mount.
    expect(config.retiredKeysFile).toBe(path.join('/srv/data', 'keys', 'retired.jwks.json'));
    // The private part is censored; the public part is not a secret.
    const parsed = JSON.parse(jwk) as { d: string; x: string };
    expect(configSecrets(config)).toContain(parsed.d);
    expect(configSecrets(config)).not.toContain(parsed.x);
    const err = configError({ SIGNING_KEY_FILE: '/k.jwk.json', SIGNING_KEY_JWK_FILE: path.join(dir, 'jwk') });
    expect(err.details).toEqual([
      { key: 'SIGNING_KEY_JWK_FILE', problem: 'conflicts with SIGNING_KEY_FILE: set only one of them' },
    ]);
  });

  it('names every problem of every file in one message, beside the other bad keys', async () => {
    const dir = await tempDir();
    await writeFile(path.join(dir, 'empty'), '');
    await writeFile(path.join(dir, 'short'), 'short-S3CRET\n');
    const err = configError(
      {
        ADMIN_TOKEN_FILE: 'short',
        METRICS_TOKEN_FILE: 'empty',
        DATABASE_URL_FILE: 'missing',
        MATTERMOST_COMMAND_TOKEN: 'abcdefghijklmnopqrstuvwxyz',
        MATTERMOST_COMMAND_TOKEN_FILE: 'missing',
        PORT: 'x',
      },
      dir,
    );
    expect(err.details.map((d) => d.key).sort()).toEqual(
      [
        'ADMIN_TOKEN_FILE',
        'DATABASE_URL_FILE',
        'MATTERMOST_COMMAND_TOKEN_FILE',
        'METRICS_TOKEN_FILE',
        'PORT',
      ].sort(),
    );
    expect(err.message).not.toContain('S3CRET');
  });
});
