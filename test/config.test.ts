import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS, configSecrets, loadConfig } from '../src/config.js';

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
