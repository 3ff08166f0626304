import path from 'node:path';
import type { Logger } from 'pino';
import { type Clock, systemClock } from './clock.js';
import type { Config } from './config.js';
import { type Db, type DatabaseHandle, openDatabase } from './db/database.js';
import { migrateToLatest } from './db/migrate.js';
import { type ChatMembership, groupsDirectory } from './approvals/directory.js';
import { nameLookupFor } from './chat/mattermost-names.js';
import type { ChatFacts } from './ports/chat.js';
import { type EngineContext, JobNotifier } from './jobs/context.js';
import type { EngineMetrics } from './jobs/engine-metrics.js';
import { PolicyService } from './policy/policy-service.js';
import { ACTIONS_PATH, ChatPresenter } from './presenter/chat-presenter.js';
import { tokenVerifier } from './tokens/verify-token.js';
import { type KeyRing, loadKeyRing } from './tokens/key-ring.js';
import { VERSION } from './version.js';

/** The pieces every command that touches state needs, opened in a fixed order. */
export interface Runtime {
  config: Config;
  log: Logger;
  clock: Clock;
  database: DatabaseHandle;
  keyRing: KeyRing;
  keyCreated: boolean;
  close(): Promise<void>;
}

/**
 * The policy service over this runtime's database, keys and POLICIES_DIR. `readOnly`
 * inspects without registering anything (CLI read commands).
 */
export function policyServiceFor(rt: Runtime, opts: { readOnly?: boolean } = {}): PolicyService {
  return new PolicyService({
    db: rt.database.db,
    keyRing: rt.keyRing,
    clock: rt.clock,
    log: rt.log,
    policiesDir: rt.config.policiesDir,
    // Newest verified pin per policy, remembered outside the database.
    pinHeadsFile: path.join(rt.config.dataDir, 'pin-heads.json'),
    readOnly: opts.readOnly === true,
    // Names in policies and groups.json are resolved through Mattermost when it is configured.
    names: nameLookupFor(rt.config.mattermost, rt.log) ?? undefined,
  });
}

/** Members of this group may REVOKE any job (SPEC section 1); it is defined in `policies/groups.json`. */
export const SECURITY_GROUP = 'security';
export { VERSION };

export interface EngineParts {
  db: Db;
  keyRing: KeyRing;
  clock: Clock;
  log: Logger;
  gatewaySignerDids: readonly string[];
  /** Base of bundle links in chat; absent in tools that post nothing. */
  publicUrl?: string | null;
  /** The key of the status post's buttons (`serve` with PUBLIC_URL and Mattermost); absent, no buttons. */
  actionSecret?: Uint8Array;
  /** Counts decisions and mints after they commit (`serve`'s /metrics). */
  metrics?: EngineMetrics;
}

/** The state of a runtime, as the engine needs it. */
export function engineParts(rt: Runtime): EngineParts {
  return {
    db: rt.database.db,
    keyRing: rt.keyRing,
    clock: rt.clock,
    log: rt.log,
    gatewaySignerDids: rt.config.gatewaySignerDids,
    publicUrl: rt.config.publicUrl,
  };
}

/** The core engine over opened state and a loaded policy service. */
export function engineFor(
  parts: EngineParts,
  policies: PolicyService,
  chat?: ChatMembership & ChatFacts,
): EngineContext {
  return {
    db: parts.db,
    keyRing: parts.keyRing,
    verifier: tokenVerifier(parts.keyRing),
    policies,
    directory: groupsDirectory(() => policies.current()?.groups ?? null, chat),
    clock: parts.clock,
    log: parts.log,
    notifier: new JobNotifier(),
    gatewaySigners: new Set(parts.gatewaySignerDids),
    securityGroup: SECURITY_GROUP,
    version: VERSION,
    publicUrl: parts.publicUrl ?? null,
    ...(parts.metrics ? { metrics: parts.metrics } : {}),
    // With a chat server, people hear about jobs through the chat presenter.
    ...(chat
      ? { chat, events: new ChatPresenter({ publicUrl: parts.publicUrl ?? null, buttons: buttonsOf(parts) }) }
      : {}),
  };
}

/** Buttons need both the action secret and a public URL for Mattermost to call back. */
function buttonsOf(parts: EngineParts) {
  if (!parts.actionSecret || !parts.publicUrl) return null;
  return {
    secret: parts.actionSecret,
    callbackUrl: `${parts.publicUrl}${ACTIONS_PATH}`,
    trusts: parts.keyRing.trusts,
  };
}

export function databaseTarget(config: Config) {
  return config.databaseUrl
    ? ({ kind: 'postgres', url: config.databaseUrl } as const)
    : ({ kind: 'pglite', dataDir: config.dataDir } as const);
}

/**
 * Loads the key ring, then opens and migrates the database. Anything that cannot be
 * verified stops here: no half-started process. Only `serve` may create the signing key
 * (`createKey`); a CLI command never mints a key that running servers would not trust.
 */
export async function openRuntime(
  config: Config,
  log: Logger,
  opts: { createKey?: boolean; clock?: Clock } = {},
): Promise<Runtime> {
  const { ring, created } = await loadKeyRing(config.signingKey, config.retiredKeysFile, {
    create: opts.createKey === true,
  });
  const database = await openDatabase(databaseTarget(config));
  try {
    const applied = await migrateToLatest(database.db);
    for (const m of applied) log.info({ migration: m.migrationName, status: m.status }, 'migration applied');
  } catch (err) {
    await database.close();
    throw err;
  }
  return {
    config,
    log,
    clock: opts.clock ?? systemClock,
    database,
    keyRing: ring,
    keyCreated: created,
    close: () => database.close(),
  };
}
