import { readFile } from 'node:fs/promises';
import { ClawClient, isClawError } from '@claw-approvals/client';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { type Command, Option } from 'commander';
import { AppError } from '../errors.js';
import { DEFAULT_PERMISSION_TIMEOUT_SECONDS, MAX_PERMISSION_TIMEOUT_SECONDS } from '../mcp/http-route.js';
import { createMcpServer } from '../mcp/mcp-server.js';
import { MM_ID } from '../mcp/schemas.js';
import { VERSION } from '../version.js';
import type { CliContext } from './context.js';

interface McpOptions {
  url?: string;
  agentKey?: string;
  agentKeyFile?: string;
  channel?: string;
  requester?: string;
  team?: string;
  mattermostUrl?: string;
  permissionTimeout: string;
}

const KEY = /^[\x21-\x7e]{1,512}$/;
const MAX_KEY_FILE_BYTES = 4096;

function invalid(key: string, problem: string): AppError {
  return new AppError('ERR_CONFIG_INVALID', `invalid configuration: ${key} ${problem}`, {
    details: [{ key, problem }],
  });
}

function httpUrl(key: string, value: string): string {
  if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol))
    throw invalid(key, 'must be an http(s) URL');
  return value.replace(/\/+$/, '');
}

function mattermostId(key: string, value: string | undefined): string | null {
  if (value === undefined || value === '') return null;
  if (!MM_ID.test(value)) throw invalid(key, 'must be a Mattermost id (26 lower-case letters and digits)');
  return value;
}

/** The agent key: from CLAW_AGENT_KEY or the file CLAW_AGENT_KEY_FILE names, never an argument. */
async function agentKey(opts: McpOptions, cmd: Command): Promise<string> {
  if (cmd.getOptionValueSource('agentKey') === 'cli')
    throw invalid(
      'CLAW_AGENT_KEY',
      'must come from the environment, not the command line (which others can read)',
    );
  if (opts.agentKey !== undefined && opts.agentKey !== '' && opts.agentKeyFile)
    throw invalid('CLAW_AGENT_KEY_FILE', 'conflicts with CLAW_AGENT_KEY: give one');
  let key = opts.agentKey ?? '';
  if (opts.agentKeyFile) {
    let text: string;
    try {
      const buf = await readFile(opts.agentKeyFile);
      if (buf.length > MAX_KEY_FILE_BYTES) throw new Error('too large');
      text = buf.toString('utf8');
    } catch (cause) {
      throw new AppError(
        'ERR_CONFIG_INVALID',
        `CLAW_AGENT_KEY_FILE ${opts.agentKeyFile} cannot be read as a key file`,
        { cause, details: [{ key: 'CLAW_AGENT_KEY_FILE', problem: 'cannot be read' }] },
      );
    }
    key = text.replace(/\r?\n$/, '');
  }
  if (key === '')
    throw invalid('CLAW_AGENT_KEY', 'is required (or CLAW_AGENT_KEY_FILE): the key from `agents create`');
  if (!KEY.test(key))
    throw invalid('CLAW_AGENT_KEY', 'must be the key `agents create` printed (one line, no spaces)');
  return key;
}

/**
 * `claw-approvals mcp`: the MCP tools over stdio for one agent. Its settings are read by
 * commander from `CLAW_*` variables (flags override them), so that an MCP client configures
 * it the way it configures any MCP server; the key is read only from the environment or a file.
 * stdout carries the protocol and nothing else: logs go to stderr.
 */
export function mcpCommand(program: Command, ctx: CliContext): void {
  program
    .command('mcp')
    .description(
      'serve the MCP tools to an agent over stdio, as the agent whose key CLAW_AGENT_KEY (or the file ' +
        'CLAW_AGENT_KEY_FILE) holds; stdout is the protocol, logs go to stderr',
    )
    .addOption(
      new Option(
        '--url <url>',
        "the claw-approvals server (default: this configuration's HOST and PORT)",
      ).env('CLAW_URL'),
    )
    .addOption(new Option('--agent-key <key>').env('CLAW_AGENT_KEY').hideHelp())
    .addOption(new Option('--agent-key-file <path>', 'file holding the agent key').env('CLAW_AGENT_KEY_FILE'))
    .addOption(
      new Option(
        '--channel <id>',
        'Mattermost channel id: permission prompts go there; request_approval default',
      ).env('CLAW_CHANNEL_ID'),
    )
    .addOption(
      new Option('--requester <id>', 'Mattermost user id the work is for (confirms in the thread)').env(
        'CLAW_REQUESTER_ID',
      ),
    )
    .addOption(new Option('--team <id>', 'Mattermost team id of the channel').env('CLAW_TEAM_ID'))
    .addOption(
      new Option('--mattermost-url <url>', "Mattermost's URL, to link job threads").env(
        'CLAW_MATTERMOST_URL',
      ),
    )
    .addOption(
      new Option(
        '--permission-timeout <seconds>',
        'how long a permission prompt waits for people before it denies',
      )
        .env('CLAW_PERMISSION_TIMEOUT')
        .default(String(DEFAULT_PERMISSION_TIMEOUT_SECONDS)),
    )
    .action(async (opts: McpOptions, cmd: Command) => {
      const key = await agentKey(opts, cmd);
      const timeout = Number(opts.permissionTimeout);
      if (!/^[1-9][0-9]{0,4}$/.test(opts.permissionTimeout) || timeout > MAX_PERMISSION_TIMEOUT_SECONDS)
        throw invalid(
          'CLAW_PERMISSION_TIMEOUT',
          `must be whole seconds from 1 to ${MAX_PERMISSION_TIMEOUT_SECONDS}`,
        );
      const deps = {
        channelId: mattermostId('CLAW_CHANNEL_ID', opts.channel),
        requesterId: mattermostId('CLAW_REQUESTER_ID', opts.requester),
        teamId: mattermostId('CLAW_TEAM_ID', opts.team),
        mattermostUrl: opts.mattermostUrl ? httpUrl('CLAW_MATTERMOST_URL', opts.mattermostUrl) : null,
      };
      let baseUrl: string;
      if (opts.url) baseUrl = httpUrl('CLAW_URL', opts.url);
      else {
        const c = ctx.config();
        const host = c.host === '0.0.0.0' ? '127.0.0.1' : c.host === '::' ? '::1' : c.host;
        baseUrl = `http://${host.includes(':') ? `[${host}]` : host}:${c.port}`;
      }
      const log = ctx.log().child({ component: 'mcp' });
      const client = new ClawClient({ baseUrl, agentKey: key });
      const server = createMcpServer({ client, log, permissionTimeoutSeconds: timeout, ...deps }, VERSION);
      const transport = new StdioServerTransport();
      const closed = new Promise<void>((resolve) => {
        transport.onclose = resolve;
        process.stdin.once('end', resolve);
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.connect(transport);
      log.info({ url: baseUrl, channel: deps.channelId, version: VERSION }, 'MCP server on stdio');
      // Said at once, not at the first tool call: a wrong key or URL is the usual set-up mistake.
      client.readyJobs().catch((err: unknown) => {
        if (isClawError(err, 'ERR_UNREACHABLE'))
          log.warn({ url: baseUrl }, 'claw-approvals is not reachable yet');
        else if (isClawError(err))
          log.error({ url: baseUrl, code: err.code }, 'claw-approvals refused the agent key');
      });
      await closed;
      // Closing aborts tools still waiting; a permission prompt closes its job on the way out.
      await server.close();
    });
}
