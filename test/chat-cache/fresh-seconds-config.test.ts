import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';

const MM = { MATTERMOST_URL: 'https://chat.example', MATTERMOST_TOKEN: 'tok' };

describe('MATTERMOST_FRESH_SECONDS', () => {
  it('defaults to 30 with Mattermost, is absent without it, and takes 0 to 300', () => {
    expect(loadConfig(MM, '/srv').mattermostFreshSeconds).toBe(30);
    expect(loadConfig({}, '/srv').mattermostFreshSeconds).toBeUndefined();
    expect(loadConfig({ ...MM, MATTERMOST_FRESH_SECONDS: '0' }, '/srv').mattermostFreshSeconds).toBe(0);
    expect(loadConfig({ ...MM, MATTERMOST_FRESH_SECONDS: '300' }, '/srv').mattermostFreshSeconds).toBe(300);
  });

  it('refuses anything else, naming the setting', () => {
    for (const bad of ['301', '-1', '1.5', '30s', '1e3', '9999']) {
      expect(() => loadConfig({ ...MM, MATTERMOST_FRESH_SECONDS: bad }, '/srv')).toThrow(
        /MATTERMOST_FRESH_SECONDS must be a whole number of seconds from 0 to 300/,
      );
    }
  });
});
