import { fixedClock } from '../../src/clock.js';
import { PolicyService } from '../../src/policy/policy-service.js';
import { registerActiveKey } from '../../src/tokens/key-ring.js';
import { generateSigningJwk, type SigningKey, signingKeyFromJwk } from '../../src/tokens/signing-key.js';
import { createTestDb, type TestDb } from './db.js';
import { silentLogger } from './log.js';

export const testClock = fixedClock('2026-11-21T10:00:00Z');

export function newKey(): SigningKey {
  return signingKeyFromJwk(generateSigningJwk(), 'test key');
}

/** A migrated database with a registered bot key and a policy service over `policiesDir`. */
export async function createState(policiesDir: string, log = silentLogger()) {
  const d: TestDb = await createTestDb();
  const key = newKey();
  await registerActiveKey(d.db, key, testClock);
  const policies = new PolicyService({ db: d.db, key, clock: testClock, log, policiesDir });
  return { d, db: d.db, key, policies, log };
}
