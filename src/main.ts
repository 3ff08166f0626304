#!/usr/bin/env node
import { existsSync, readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { createCliContext } from './cli/context.js';
import { processOutput } from './cli/output.js';
import { runCli } from './cli/program.js';
import { loadConfig } from './config.js';
import { createLogger } from './logger.js';

// The only place that reads the environment. A `.env` in the working directory fills in
// what the real environment does not set.
const fileEnv = existsSync('.env') ? parseEnv(readFileSync('.env', 'utf8')) : {};
const env: Record<string, string | undefined> = { ...fileEnv, ...process.env };

const ctx = createCliContext({
  loadConfig: () => loadConfig(env),
  makeLogger: (config) => createLogger(config.logLevel),
  output: processOutput,
  defaultActor: env.USER ?? env.LOGNAME ?? 'cli',
});

process.exitCode = await runCli(process.argv, ctx);
