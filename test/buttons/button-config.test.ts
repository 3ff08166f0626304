import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS, loadConfig } from '../../src/config.js';

describe('the action secret setting', () => {
  it('names DATA_DIR/keys/action-secret only when PUBLIC_URL is set, or ACTION_SECRET_FILE', () => {
    expect(CONFIG_KEYS).toContain('ACTION_SECRET_FILE');
    expect(loadConfig({ DATA_DIR: '/srv/claw' }, '/').actionSecretFile).toBeUndefined();
    expect(
      loadConfig({ DATA_DIR: '/srv/claw', ACTION_SECRET_FILE: 'x' }, '/').actionSecretFile,
    ).toBeUndefined();
    expect(
      loadConfig({ DATA_DIR: '/srv/claw', PUBLIC_URL: 'https://claw.example.com' }, '/').actionSecretFile,
    ).toBe(path.join('/srv/claw', 'keys', 'action-secret'));
    expect(
      loadConfig({ PUBLIC_URL: 'https://claw.example.com', ACTION_SECRET_FILE: 'shared/secret' }, '/etc')
        .actionSecretFile,
    ).toBe('/etc/shared/secret');
  });
});
