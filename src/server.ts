import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import type { PolicyService } from './policy/policy-service.js';
import type { EngineContext } from './jobs/context.js';
import { mintDueSteps } from './jobs/agent-job-ops.js';
import { expireDueJobs } from './jobs/revoke-job.js';
import type { BotOptions, MattermostBot } from './bot/bot.js';
import type { MattermostRest } from './chat/mattermost-rest.js';
import { loadActionSecret } from './crypto/action-secret.js';
import { advertiseServer } from './db/data-dir-lock.js';
import { readCommandToken } from './http/routes/mattermost-command-token.js';
import { AppMetrics } from './metrics/app-metrics.js';
import { engineFor, engineParts, openRuntime, policyServiceFor, type Runtime, VERSION } from './runtime.js';

export interface RunningServer {
  app: FastifyInstance;
  /** The Mattermost bot, when MATTERMOST_URL is set. */
  bot: MattermostBot | null;
  runtime: Runtime;
  policies: PolicyService;
  engine: EngineContext;
  url: string;
  stop(): Promise<void>;
}

const POLICY_REFRESH_MS = 5_000;
const EXPIRY_SWEEP_MS = 10_000;
const MINT_SWEEP_MS = 15_000;

/** `claw-approvals serve`: database, key, policies, HTTP; stops gracefully on SIGINT/SIGTERM. */
export async function startServer(
  config: Config,
  log: Logger,
  opts: { handleSignals?: boolean; bot?: Partial<BotOptions> } = {},
): Promise<RunningServer> {
  if (config.mattermost) {
    log.info(
      { mode: 'mattermost', mattermostUrl: config.mattermost.url },
      'claw-approvals starting with the Mattermost bot',
    );
  } else {
    log.info(
      { mode: 'api-only' },
      'claw-approvals starting in API-only mode: MATTERMOST_URL is not set, so no chat connection',
    );
  }
  // Read before anything is opened: an unreadable token file stops start-up with nothing to undo.
  const commandToken = await readCommandToken(config.commandToken);
  const runtime = await openRuntime(config, log, { createKey: true });
  const { database, keyRing } = runtime;
  log.info(
    {
      database: database.description,
      kid: keyRing.active.kid,
      did: keyRing.active.did,
      retiredKeys: keyRing.retired.length,
      keyCreated: runtime.keyCreated,
    },
    'state opened',
  );

  const policies = policyServiceFor(runtime);
  await policies.reload();
  const metrics = new AppMetrics({
    version: VERSION,
    db: database.db,
    ...(database.pool ? { pool: database.pool } : {}),
    chat: config.mattermost !== null,
    log: log.child({ component: 'metrics' }),
  });

  let bot: MattermostBot | null = null;
  let chat: MattermostRest | undefined;
  let actionSecret: Uint8Array | undefined;
  if (config.mattermost) {
    // Loaded only with a chat server: an API-only server never loads the bot, ws or the Mattermost client.
    const [{ MattermostBot }, { MattermostRest }] = await Promise.all([
      import('./bot/bot.js'),
      import('./chat/mattermost-rest.js'),
    ]);
    let onUnauthorized = () => {};
    let onSuccess = () => {};
    chat = new MattermostRest({
      url: config.mattermost.url,
      token: config.mattermost.token,
      log: log.child({ component: 'mattermost-rest' }),
      freshSeconds: config.mattermostFreshSeconds ?? 0,
      onUnauthorized: () => onUnauthorized(),
      onSuccess: () => onSuccess(),
    });
    // The status post's buttons: Mattermost must be able to call PUBLIC_URL back.
    actionSecret = config.actionSecretFile
      ? await loadActionSecret(config.actionSecretFile, { create: true })
      : undefined;
    const engine = engineFor(
      { ...engineParts(runtime), metrics: metrics.engine, ...(actionSecret ? { actionSecret } : {}) },
      policies,
      chat,
    );
    bot = new MattermostBot({
      url: config.mattermost.url,
      token: config.mattermost.token,
      chat,
      engine,
      log,
      exclusiveDatabase: runtime.database.kind === 'pglite',
      ...(metrics.chat ? { metrics: metrics.chat } : {}),
      ...opts.bot,
    });
    const b = bot;
    onUnauthorized = () => b.reportUnauthorized();
    onSuccess = () => b.reportReachable();
  }
  const engine = bot ? bot.engine : engineFor({ ...engineParts(runtime), metrics: metrics.engine }, policies);
  // The bot's reason (server address, error) is for ADMIN_TOKEN holders; anyone may read the summary.
  const readinessChecks = bot
    ? {
        mattermost: async () => {
          const r = bot ? bot.readiness() : { ok: false, reason: 'no bot' };
          return r.ok ? r : { ...r, summary: 'Mattermost not connected' };
        },
      }
    : undefined;
  const app = buildApp({
    db: database.db,
    keyRing,
    policies,
    log,
    engine,
    adminToken: config.adminToken,
    metrics,
    metricsToken: config.metricsToken,
    // The bundle page links each approval to its Mattermost post.
    mattermostUrl: config.mattermost?.url ?? null,
    ...(chat && actionSecret
      ? { mattermostActions: { secret: actionSecret, publicUrl: config.publicUrl, chat } }
      : {}),
    slashCommand: { token: commandToken, chat: chat ?? null },
    ...(readinessChecks ? { readinessChecks } : {}),
  });
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await runtime.close();
    throw err;
  }
  const refresh = setInterval(() => {
    policies.refreshIfChanged().catch((err) => log.error({ err }, 'policy refresh failed'));
  }, POLICY_REFRESH_MS);
  refresh.unref();
  // Jobs past their deadline are expired and sealed even if nobody touches them again.
  const sweep = setInterval(() => {
    expireDueJobs(engine).catch((err) => log.error({ err }, 'expiry sweep failed'));
  }, EXPIRY_SWEEP_MS);
  sweep.unref();
  // A mint deferred while Mattermost could not be asked (quorum is re-read before every mint)
  // is retried here; so is one whose trigger (an agent's result) arrived during an outage.
  const mintSweep = setInterval(() => {
    mintDueSteps(engine).catch((err) => log.error({ err }, 'mint sweep failed'));
  }, MINT_SWEEP_MS);
  mintSweep.unref();
  bot?.start();

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      clearInterval(refresh);
      clearInterval(sweep);
      clearInterval(mintSweep);
      await bot?.stop();
      await app.close();
      await runtime.close();
      log.info('stopped');
    })();
    return stopping;
  };

  if (opts.handleSignals) {
    closeWithGrace({ delay: 8_000 }, async ({ signal, err }) => {
      if (err) log.error({ err }, 'shutting down after an error');
      else log.info({ signal }, 'shutting down');
      await stop();
    });
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  // CLI commands that find the embedded database held by this server go through its admin API.
  if (!config.databaseUrl)
    await advertiseServer(config.dataDir, { host: config.host, port }).catch((err: unknown) =>
      log.warn({ err }, 'could not record the admin address for CLI commands'),
    );
  log.info({ url, publicUrl: config.publicUrl }, 'listening');
  return { app, bot, runtime, policies, engine, url, stop };
}
