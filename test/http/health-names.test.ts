import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { PolicyService } from '../../src/policy/policy-service.js';
import type { GroupsFile } from '../../src/policy/types.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { copyPolicies } from '../helpers/fs.js';
import { silentLogger } from '../helpers/log.js';
import { newKey, ringOf, testClock } from '../helpers/state.js';
import { FakeNames } from '../policy/fake-names.js';

const opened: TestDb[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((d) => d.close()));
});

const ADMIN = 'admin-token-for-tests-0123456789';

/** The shipped policies, with one approver of ops-oncall written as a name nobody has. */
async function setup(names: FakeNames) {
  const dir = await copyPolicies();
  const file = path.join(dir, 'groups.json');
  const groups = JSON.parse(await fs.readFile(file, 'utf8')) as GroupsFile;
  groups.groups['ops-oncall']!.members.push({ user_id: '@departed.engineer' });
  await fs.writeFile(file, JSON.stringify(groups));
  const d = await createTestDb();
  opened.push(d);
  const log = silentLogger();
  const keyRing = ringOf(newKey());
  const policies = new PolicyService({ db: d.db, keyRing, clock: testClock, log, policiesDir: dir, names });
  await policies.reload();
  return buildApp({ db: d.db, keyRing, policies, log, adminToken: ADMIN });
}

describe('GET /readyz and Mattermost names', () => {
  it('tells anyone how many names are unresolved, and ADMIN_TOKEN holders which and why', async () => {
    const app = await setup(new FakeNames());
    const anyone = await app.inject('/readyz');
    expect(anyone.json()).toMatchObject({
      checks: { policies: { ok: true, reason: expect.stringMatching(/; Mattermost names unresolved: 1$/) } },
    });
    expect(anyone.body).not.toContain('departed');

    const admin = await app.inject({ url: '/readyz', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(admin.json().checks.policies.names).toEqual({
      resolved_at: testClock().toISOString(),
      unresolved: [
        {
          kind: 'user',
          name: '@departed.engineer',
          status: 'unknown',
          reason: 'no Mattermost user is named @departed.engineer',
        },
      ],
    });
    // The channels of the policies that rely on the group are closed, and say so.
    expect(admin.json().checks.policies.problems.join('\n')).toMatch(
      /channel .* closed: .*group "ops-oncall".*@departed\.engineer/,
    );
  });

  it('says why a name went unchecked', async () => {
    const names = new FakeNames();
    names.down = new Error('Mattermost rejected the bot token: Invalid or expired session');
    const app = await setup(names);
    const admin = await app.inject({ url: '/readyz', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(admin.json().checks.policies.names.unresolved).toEqual([
      expect.objectContaining({
        name: '@departed.engineer',
        status: 'unchecked',
        reason:
          'Mattermost could not be asked: Mattermost rejected the bot token: Invalid or expired session',
      }),
    ]);
  });
});
