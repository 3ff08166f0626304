#!/usr/bin/env node
// `npm run demo [-- --keep]`: the demo's entry point, outside the product (it starts the
// Mattermost sandbox, a test tool). Reads the environment as src/main.ts does.
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs, parseEnv } from 'node:util';
import { pino } from 'pino';
import { processOutput } from '../src/cli/output.js';
import { configSecrets, loadConfig } from '../src/config.js';
import { isAppError } from '../src/errors.js';
import { createLogger } from '../src/logger.js';
import { runDemo } from './run-demo.js';

const fileEnv = existsSync('.env') ? parseEnv(readFileSync('.env', 'utf8')) : {};
const env: Record<string, string | undefined> = { ...fileEnv, ...process.env };

try {
  const { values } = parseArgs({ options: { keep: { type: 'boolean', default: false } }, strict: true });
  const config = loadConfig(env);
  const log = createLogger(config.logLevel, pino.destination(1), configSecrets(config));
  await runDemo({ config, log, say: processOutput.out, keep: values.keep });
} catch (err) {
  if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS_')) {
    processOutput.err(`${(err as Error).message}\nusage: npm run demo [-- --keep]`);
    process.exitCode = 2;
  } else {
    reportFailure(err);
    process.exitCode = 1;
  }
}

/** Errors by code and message, never as stacks, as the CLI prints them. */
function reportFailure(err: unknown): void {
  const code = isAppError(err) ? err.code : 'ERR_INTERNAL';
  processOutput.err(`error ${code}: ${(err as Error)?.message ?? String(err)}`);
  if (isAppError(err) && err.code === 'ERR_CONFIG_INVALID' && Array.isArray(err.details)) {
    for (const d of err.details as { key: string; problem: string }[])
      processOutput.err(`  ${d.key}: ${d.problem}`);
  }
}
