import { fixedClock } from '../../src/clock.js';
import { PolicyService } from '../../src/policy/policy-service.js';
import { buildKeyRing, type KeyRing, type RetiredKey } from '../../src/tokens/key-ring.js';
import { generateSigningJwk, type SigningKey, signingKeyFromJwk } from '../../src/tokens/signing-key.js';
import { createTestDb, type TestDb } from './db.js';
import { silentLogger } from './log.js';

export const testClock = fixedClock('2026-11-21T10:00:00Z');

export function newKey(): SigningKey {
  return signingKeyFromJwk(generateSigningJwk(), 'test key');
}

export function ringOf(active: SigningKey, ...retired: SigningKey[]): KeyRing {
  return buildKeyRing(
    active,
    retired.map((k): RetiredKey => ({ ...k.publicJwk, retired_at: testClock().toISOString() })),
  );
}

/** A migrated database, a bot key ring and a policy service over `policiesDir`. */
export async function createState(policiesDir: string, log = silentLogger()) {
  const d: TestDb = await createTestDb();
  const key = newKey();
  const keyRing = ringOf(key);
  const policies = new PolicyService({ db: d.db, keyRing, clock: testClock, log, policiesDir });
  return { d, db: d.db, key, keyRing, policies, log };
}
