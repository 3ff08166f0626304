#!/usr/bin/env node
import { existsSync, readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { createCliContext } from './cli/context.js';
import { processOutput } from './cli/output.js';
import { runCli } from './cli/program.js';
import { CONFIG_KEYS, configSecrets, loadConfig } from './config.js';
import { createLogger } from './logger.js';
import { pino } from 'pino';

// The only place that reads the environment. A `.env` in the working directory fills in
// what the real environment does not set.
const fileEnv = existsSync('.env') ? parseEnv(readFileSync('.env', 'utf8')) : {};
const env: Record<string, string | undefined> = { ...fileEnv, ...process.env };
for (const key of Object.keys(fileEnv)) {
  // A misspelled setting in .env would otherwise be ignored silently.
  if (!(CONFIG_KEYS as readonly string[]).includes(key))
    process.stderr.write(`warning: .env sets unknown setting ${key}\n`);
}

const ctx = createCliContext({
  loadConfig: () => loadConfig(env),
  makeLogger: (config, stream) =>
    createLogger(config.logLevel, pino.destination(stream === 'stdout' ? 1 : 2), configSecrets(config)),
  output: processOutput,
  defaultActor: env.USER ?? env.LOGNAME ?? 'cli',
});

process.exitCode = await runCli(process.argv, ctx);
