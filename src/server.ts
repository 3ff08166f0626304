import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import type { PolicyService } from './policy/policy-service.js';
import type { EngineContext } from './jobs/context.js';
import { expireDueJobs } from './jobs/revoke-job.js';
import { engineFor, engineParts, openRuntime, policyServiceFor, type Runtime } from './runtime.js';

export interface RunningServer {
  app: FastifyInstance;
  runtime: Runtime;
  policies: PolicyService;
  engine: EngineContext;
  url: string;
  stop(): Promise<void>;
}

const POLICY_REFRESH_MS = 5_000;
const EXPIRY_SWEEP_MS = 10_000;

/** `claw-approvals serve`: database, key, policies, HTTP; stops gracefully on SIGINT/SIGTERM. */
export async function startServer(
  config: Config,
  log: Logger,
  opts: { handleSignals?: boolean } = {},
): Promise<RunningServer> {
  log.info(
    { mode: 'api-only', mattermost: config.mattermost ? 'configured' : 'not configured' },
    'claw-approvals starting in API-only mode: no Mattermost connection in this build',
  );
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

  const engine = engineFor(engineParts(runtime), policies);
  const app = buildApp({ db: database.db, keyRing, policies, log, engine, adminToken: config.adminToken });
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

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      clearInterval(refresh);
      clearInterval(sweep);
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
  log.info({ url, publicUrl: config.publicUrl }, 'listening');
  return { app, runtime, policies, engine, url, stop };
}
